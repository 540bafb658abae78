"""The command line: a valid config is printed masked, a wrong one stops naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.serve import safe_url

QUICKSTART = Path(__file__).resolve().parents[2] / "scripts" / "quickstart.toml"


def test_check_config_prints_the_effective_config_with_secrets_masked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check-config", "--config", str(QUICKSTART)]) == 0
    out = capsys.readouterr().out
    printed = json.loads(out)
    assert printed["github"]["webhook_secret"] == "**********"
    assert printed["staging"]["secret_key"] == "**********"
    assert "ghp-replace-with-your-token" not in out
    assert printed["repos"][0]["repo"] == "acme/hello"


def test_a_wrong_key_stops_with_exit_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(QUICKSTART.read_text().replace("[server]", "[server]\nprot = 1"))
    assert main(["check-config", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "server.prot" in err and "server.port" in err


def test_the_config_path_comes_from_the_environment_when_not_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAGINGBOT_CONFIG", str(tmp_path / "missing.toml"))
    assert main(["check-config"]) == 2
    assert "missing.toml" in capsys.readouterr().err


def test_unknown_commands_are_refused_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["deploy-everything"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_passwords_in_redis_urls_never_reach_a_log_line() -> None:
    assert (
        safe_url("redis://:hunter2@redis.internal:6380/0") == "redis://:****@redis.internal:6380/0"
    )
    assert safe_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
