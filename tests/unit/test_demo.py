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
from bot.hosts import github_sansio, gitlab_sansio
from tests.conftest import FIXTURES, ROOT

SHA = "5b4c0f3e9d2a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"


PACKAGED = [(host, name) for host, files in demo.FILES.items() for name in files.values()]


@pytest.mark.parametrize(("host", "name"), PACKAGED)
def test_the_packaged_payloads_are_the_test_fixtures_unchanged(host: str, name: str) -> None:
    assert (demo.FIXTURES / name).read_bytes() == (FIXTURES / host / name).read_bytes()


def test_every_packaged_payload_is_named_in_its_sources_note() -> None:
    note = (demo.FIXTURES / "SOURCES.md").read_text()
    packaged = {path.name for path in demo.FIXTURES.glob("*.json")}

    assert packaged == {name for _, name in PACKAGED}
    assert [name for name in sorted(packaged) if name not in note] == []


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


@pytest.mark.parametrize(
    ("action", "kind"),
    [
        ("opened", Kind.PR_OPENED),
        ("synchronize", Kind.PR_SYNCHRONIZED),
        ("closed", Kind.PR_CLOSED),
    ],
)
def test_a_gitlab_demo_delivery_reads_as_that_merge_request_event(action: str, kind: Kind) -> None:
    sent = demo.Demo(action, 7, "acme/web/shop", SHA, "feature/x", host="gitlab")
    payload = demo.payload(sent)

    (event,) = gitlab_sansio.parse_delivery("Merge Request Hook", payload).events

    assert (event.kind, event.number, event.sha, event.branch) == (kind, 7, SHA, "feature/x")
    assert event.repo.full_name == "acme/web/shop"
    assert event.repo.id == demo.repo_id("acme/web/shop", "gitlab") and not event.fork
    assert event.url == "https://gitlab.com/acme/web/shop/-/merge_requests/7"
    assert payload["object_attributes"]["target"]["path_with_namespace"] == "acme/web/shop"


def test_a_gitlab_demo_comment_is_a_note_on_the_merge_request_with_the_command() -> None:
    sent = demo.Demo("comment", 7, "acme/shop", SHA, host="gitlab", body="/staging status")
    first, second = demo.payload(sent), demo.payload(sent)

    (event,) = gitlab_sansio.parse_delivery("Note Hook", first).events

    assert (event.kind, event.number, event.sha) == (Kind.COMMENT_CREATED, 7, SHA)
    assert event.comment_body == "/staging status" and event.repo.full_name == "acme/shop"
    assert first["object_attributes"]["id"] != second["object_attributes"]["id"]  # new comment


def test_the_gitlab_trial_project_keeps_the_id_of_gitlabs_example() -> None:
    assert demo.repo_id(trial.TRIAL_PROJECT, "gitlab") == demo.FIXTURE_PROJECT_ID
    assert demo.repo_id(trial.TRIAL_REPO) == demo.FIXTURE_REPO_ID


def test_the_gitlab_delivery_carries_the_token_and_a_fresh_idempotency_key() -> None:
    first = demo.gitlab_headers("Merge Request Hook", "glsec-demo")
    second = demo.gitlab_headers("Merge Request Hook", "glsec-demo")
    lower = {key.lower(): value for key, value in first.items()}

    assert gitlab_sansio.verify_token(b"glsec-demo", first["X-Gitlab-Token"])
    assert not gitlab_sansio.verify_token(b"other", first["X-Gitlab-Token"])
    assert first["X-Gitlab-Event"] == "Merge Request Hook"
    assert gitlab_sansio.delivery_id(lower, {}) == f"idem:{first['Idempotency-Key']}"
    assert first["Idempotency-Key"] != second["Idempotency-Key"]
    assert first["X-Gitlab-Event-UUID"] != second["X-Gitlab-Event-UUID"]


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
    served = [(r.host, r.repo) for r in config.repos]
    assert served == [("github", trial.TRIAL_REPO), ("gitlab", trial.TRIAL_PROJECT)]
    github, gitlab = config.github.webhook_secret, config.gitlab.webhook_secret
    assert github and gitlab and github != gitlab


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
    assert '--repo: expected "owner/name", got "nope"' in err.getvalue()


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    terminal = Terminal(out, err, lambda: 0.0, lambda: 0.0, lambda _: None, False)
    code = main(["demo-event", *argv], terminal=terminal)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def trial_file(tmp_path: Path) -> str:
    """A trial configuration whose bot does not run (port 1): nothing answers."""
    path = tmp_path / "config.toml"
    argv = ["--root", str(ROOT), "--config", str(path), "--port", "1"]
    assert trial.main([*argv, "--redis-url", "redis://127.0.0.1:6399/0"]) == 0
    return str(path)


def test_demo_event_posts_gitlab_deliveries_to_the_gitlab_webhook(trial_file: str) -> None:
    code, _, err = run_cli("opened", "--pr", "3", "--host", "gitlab", "--config", trial_file)

    assert code == 1
    assert "cannot reach the bot at http://127.0.0.1:1/webhooks/gitlab" in err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["comment", "--pr", "3"], "only for GitLab merge requests (--host gitlab)"),
        (["opened", "--pr", "3", "--host", "gitlab", "--body", "hi"], "--body is the text of"),
        (["opened", "--pr", "3", "--host", "gitlab", "--repo", "nope"], "--repo: expected"),
        (["opened", "--pr", "3", "--repo", "acme/web/shop"], '--repo: expected "owner/name"'),
        (["opened", "--pr", "0", "--host", "gitlab"], "--pr must be a positive number"),
    ],
)
def test_demo_event_refuses_what_it_cannot_send(
    trial_file: str, argv: list[str], said: str
) -> None:
    code, _, err = run_cli(*argv, "--config", trial_file)

    assert code == 2 and said in err


def test_demo_event_for_gitlab_needs_the_gitlab_webhook_secret(tmp_path: Path) -> None:
    """A trial file written before the trial served GitLab has GitHub's secret only."""
    path = tmp_path / "config.toml"
    path.write_text(
        'mode = "offline"\n[github]\nwebhook_secret = "whsec-x"\n'
        '[staging]\nbase_domain = "staging.localhost"\nsecret_key = "k"\n'
        "[server]\nport = 1\n"
    )

    code, _, err = run_cli("opened", "--pr", "3", "--host", "gitlab", "--config", str(path))

    assert code == 2 and "no gitlab.webhook_secret" in err


def test_demo_event_plays_gitlab_by_default_when_only_gitlab_is_served(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        'mode = "offline"\n[gitlab]\nwebhook_secret = "glsec-x"\n'
        '[staging]\nbase_domain = "staging.localhost"\nsecret_key = "k"\n'
        '[server]\nport = 1\n[[repos]]\nhost = "gitlab"\nrepo = "acme/web/shop"\n'
    )

    code, _, err = run_cli("comment", "--pr", "3", "--config", str(path))

    assert code == 1 and "http://127.0.0.1:1/webhooks/gitlab" in err
