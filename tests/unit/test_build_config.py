"""The build gate's configuration: `staging.wait_for`, `wait_for_image`, `[registry]`."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_config, redacted
from tests.unit.test_config import env

REGISTRY_PASSWORD = "registry-token-4f1e9c"


def test_the_gate_is_off_by_default_and_a_repository_may_set_its_own() -> None:
    repos = '[{"host": "github", "repo": "a/b", "wait_for": ["images"]}, '
    repos += '{"host": "github", "repo": "a/c"}]'
    config = load_config(None, env(STAGING_WAIT_FOR="build, test", REPOS=repos))

    assert not load_config(None, env()).gate().active
    assert config.gate().wait_for == ("build", "test")
    assert config.gate(config.repo("github", "a/b")).wait_for == ("images",)
    assert config.gate(config.repo("github", "a/c")).wait_for == ("build", "test")


def test_waiting_for_the_bots_own_check_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"staging.wait_for: \"staging\" is the bot's own check"):
        load_config(None, env(STAGING_WAIT_FOR="build,staging"))


def test_registry_credentials_need_their_host_and_each_other_and_are_never_shown() -> None:
    with pytest.raises(ConfigError) as missing_host:
        load_config(None, env(REGISTRY_USERNAME="ci", REGISTRY_PASSWORD=REGISTRY_PASSWORD))
    with pytest.raises(ConfigError, match="registry.password: required together"):
        load_config(None, env(REGISTRY_HOST="ghcr.io", REGISTRY_USERNAME="ci"))

    assert "registry.host: required" in str(missing_host.value)
    assert REGISTRY_PASSWORD not in str(missing_host.value)
    config = load_config(
        None,
        env(REGISTRY_HOST="ghcr.io", REGISTRY_USERNAME="ci", REGISTRY_PASSWORD=REGISTRY_PASSWORD),
    )
    assert config.registry.password.reveal() == REGISTRY_PASSWORD
    assert redacted(config)["registry"]["password"] == "**********"
    assert REGISTRY_PASSWORD not in repr(config)
