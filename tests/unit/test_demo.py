"""The local trial's pieces: `demo-event` deliveries and the generated offline config."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from bot import demo, trial
from bot.cli import main
from bot.cli_remote import Terminal
from bot.config import load_config
from bot.events import Kind
from bot.hosts import github_sansio
from tests.conftest import FIXTURES, ROOT

SHA = "5b4c0f3e9d2a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"


@pytest.mark.parametrize("action", demo.ACTIONS)
def test_the_packaged_payloads_are_the_test_fixtures_unchanged(action: str) -> None:
    name = f"pull_request.{action}.json"

    assert (demo.FIXTURES / name).read_bytes() == (FIXTURES / "github" / name).read_bytes()


@pytest.mark.parametrize(
    ("action", "kind"),
    [
        ("opened", Kind.PR_OPENED),
        ("synchronize", Kind.PR_SYNCHRONIZED),
        ("closed", Kind.PR_CLOSED),
    ],
)
def test_a_demo_delivery_reads_as_that_event_for_the_chosen_request(
    action: str, kind: Kind
) -> None:
    payload = demo.payload(demo.Demo(action, 7, "acme/shop", SHA, "feature/x"))

    (event,) = github_sansio.parse_delivery("pull_request", payload).events

    assert (event.kind, event.number, event.sha, event.branch) == (kind, 7, SHA, "feature/x")
    assert event.repo.full_name == "acme/shop" and event.repo.id == demo.repo_id("acme/shop")
    assert not event.fork


def test_every_push_without_a_sha_is_a_new_commit() -> None:
    first, second = (demo.payload(demo.Demo("synchronize", 7)) for _ in range(2))

    assert first["pull_request"]["head"]["sha"] != second["pull_request"]["head"]["sha"]
    assert first["after"] == first["pull_request"]["head"]["sha"]


def test_the_delivery_is_signed_as_github_signs() -> None:
    body = b'{"action": "opened"}'
    headers = demo.signed_headers(body, "whsec-demo")

    assert github_sansio.verify_signature(b"whsec-demo", body, headers["X-Hub-Signature-256"])
    assert not github_sansio.verify_signature(b"other", body, headers["X-Hub-Signature-256"])


def test_the_trial_config_is_offline_with_the_local_example_and_an_operator_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "demo" / "config.toml"
    argv = ["--root", str(ROOT), "--config", str(path), "--port", "18123"]

    assert trial.main([*argv, "--redis-url", "redis://127.0.0.1:6399/0"]) == 0

    token = capsys.readouterr().out.strip()
    config = load_config(str(path), {})
    assert config.offline and config.staging.provisioner == "command"
    assert config.command.create == ("examples/local/staging.py",)
    assert config.command.workdir == str(ROOT) and config.server.port == 18123
    assert [(t.name, t.role, t.token.reveal()) for t in config.api.tokens] == [
        ("trial", "operator", token)
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_demo_event_says_clearly_when_no_bot_answers(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    argv = ["--root", str(ROOT), "--config", str(path), "--port", "1"]
    assert trial.main([*argv, "--redis-url", "redis://127.0.0.1:6399/0"]) == 0
    out, err = io.StringIO(), io.StringIO()
    terminal = Terminal(out, err, lambda: 0.0, lambda: 0.0, lambda _: None, False)

    code = main(["demo-event", "opened", "--pr", "3", "--config", str(path)], terminal=terminal)

    assert code == 1
    assert "cannot reach the bot at http://127.0.0.1:1/webhooks/github" in err.getvalue()


def test_demo_event_refuses_a_repository_that_is_not_owner_slash_name(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    argv = ["--root", str(ROOT), "--config", str(path), "--port", "1"]
    assert trial.main([*argv, "--redis-url", "redis://127.0.0.1:6399/0"]) == 0
    err = io.StringIO()
    terminal = Terminal(io.StringIO(), err, lambda: 0.0, lambda: 0.0, lambda _: None, False)
    args = ["demo-event", "opened", "--pr", "3", "--config", str(path), "--repo", "nope"]

    assert main(args, terminal=terminal) == 2
    assert "--repo: expected owner/name" in err.getvalue()
