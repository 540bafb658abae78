"""`mode`: offline only when written so, and never alongside host credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_config

BASE = """\
[github]
webhook_secret = "whsec-offline-test"

[staging]
base_domain = "staging.localhost"
secret_key = "trial-key"
"""
TOKEN = "ghp_realTokenValue-never-print"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return str(path)


def error_of(path: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {})
    return str(caught.value)


def test_a_top_level_mode_offline_needs_no_host_credentials(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, 'mode = "offline"\n' + BASE), {})

    assert config.offline and config.server.mode == "offline"


def test_offline_can_be_written_in_the_server_table_too(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE + '\n[server]\nmode = "offline"\n'), {})

    assert config.offline


def test_the_default_is_online_and_missing_credentials_are_an_error_not_offline(
    tmp_path: Path,
) -> None:
    message = error_of(write(tmp_path, BASE))

    assert "github.token: required" in message
    assert load_config(write(tmp_path, BASE), {"STAGINGBOT_GITHUB_TOKEN": TOKEN}).offline is False


@pytest.mark.parametrize("mode", ["ofline", "Offline", "local", ""])
def test_a_mistyped_mode_is_refused_by_name(tmp_path: Path, mode: str) -> None:
    message = error_of(write(tmp_path, f'mode = "{mode}"\n' + BASE))

    assert f'server.mode: expected one of online, offline, got "{mode}"' in message


def test_a_mode_that_is_not_a_string_is_refused(tmp_path: Path) -> None:
    assert "mode: expected a string, got true" in error_of(write(tmp_path, "mode = true\n" + BASE))


def test_two_modes_that_disagree_are_refused(tmp_path: Path) -> None:
    text = 'mode = "offline"\n' + BASE + '\n[server]\nmode = "online"\n'

    assert 'mode: "offline" contradicts server.mode "online"' in error_of(write(tmp_path, text))


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("STAGINGBOT_GITHUB_TOKEN", TOKEN, "github.token"),
        ("STAGINGBOT_GITHUB_APP_ID", "123", "github.app_id"),
        ("STAGINGBOT_GITLAB_TOKEN", "glpat-never-print", "gitlab.token"),
    ],
)
def test_a_production_config_that_says_offline_by_mistake_is_refused(
    tmp_path: Path, variable: str, value: str, key: str
) -> None:
    message = error_of(write(tmp_path, 'mode = "offline"\n' + BASE), {variable: value})

    assert f'{key}: set, but mode is "offline"' in message
    assert value not in message


def test_the_environment_can_turn_offline_mode_off_again(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + '\n[server]\nmode = "offline"\n')
    environ = {"STAGINGBOT_SERVER_MODE": "online", "STAGINGBOT_GITHUB_TOKEN": TOKEN}

    assert load_config(path, environ).offline is False


def test_offline_mode_works_with_the_kubernetes_provisioner_too(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, 'mode = "offline"\n' + BASE), {})

    assert config.offline and config.staging.provisioner == "kubernetes"


GITLAB_PROJECT = '\n[[repos]]\nhost = "gitlab"\nrepo = "gitlabhq/gitlab-test"\n'


def test_offline_with_a_gitlab_project_needs_its_webhook_secret_but_no_token(
    tmp_path: Path,
) -> None:
    """GitLab's deliveries are checked against gitlab.webhook_secret offline too: without
    one the bot would answer 401 to each, so the file is refused up front instead."""
    text = 'mode = "offline"\n' + BASE + GITLAB_PROJECT

    message = error_of(write(tmp_path, text))
    config = load_config(write(tmp_path, text), {"STAGINGBOT_GITLAB_WEBHOOK_SECRET": "glsec"})

    assert "gitlab.webhook_secret: required" in message and "gitlab.token" not in message
    assert config.offline and config.gitlab.webhook_secret.reveal() == "glsec"
