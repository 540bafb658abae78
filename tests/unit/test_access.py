"""The RoleBinding that gives the bot its rights inside a staging, and its two config keys."""

from __future__ import annotations

import kubernetes_validate
import pytest

from bot.config import ConfigError, load_config
from bot.provision.access import ROLE_BINDING, Access, from_config, role_binding
from tests.unit.test_config import REQUIRED


def test_no_role_configured_means_no_binding() -> None:
    assert from_config("", "") is None
    assert from_config("", "stagingbot/stagingbot") is None


def test_the_binding_names_the_role_and_the_bots_own_service_account() -> None:
    grant = from_config("stagingbot-staging", "stagingbot/stagingbot")
    assert grant == Access("stagingbot-staging", "stagingbot", "stagingbot")

    binding = role_binding(grant, "staging-shop-pr-12", "Default")

    kubernetes_validate.validate(binding, "1.33", strict=True)
    assert binding["metadata"]["name"] == ROLE_BINDING
    assert binding["metadata"]["namespace"] == "staging-shop-pr-12"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "stagingbot-staging",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "stagingbot", "namespace": "stagingbot"}
    ]
    # The instance's labels, not a staging's: pruning (by the staging's labels) skips it.
    assert binding["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "stagingbot",
        "stagingbot.dev/instance": "default",
    }


@pytest.mark.parametrize(
    ("role", "account", "message"),
    [
        ("stagingbot-staging", "", "kubernetes.service_account: required when"),
        ("stagingbot-staging", "stagingbot", 'expected "namespace/name"'),
        ("stagingbot-staging", "Bad_NS/x", 'expected "namespace/name"'),
        ("Not A Role", "stagingbot/stagingbot", "kubernetes.staging_role: 'Not A Role' is not"),
    ],
)
def test_a_wrong_setting_stops_start_up_naming_the_key(
    role: str, account: str, message: str
) -> None:
    environ = {
        **REQUIRED,
        "STAGINGBOT_KUBERNETES_STAGING_ROLE": role,
        "STAGINGBOT_KUBERNETES_SERVICE_ACCOUNT": account,
    }
    with pytest.raises(ConfigError, match=message):
        load_config(None, environ)


def test_both_settings_load() -> None:
    environ = {
        **REQUIRED,
        "STAGINGBOT_KUBERNETES_STAGING_ROLE": "stagingbot-staging",
        "STAGINGBOT_KUBERNETES_SERVICE_ACCOUNT": "stagingbot/stagingbot",
    }
    config = load_config(None, environ)
    assert config.kubernetes.staging_role == "stagingbot-staging"
    assert config.kubernetes.service_account == "stagingbot/stagingbot"
