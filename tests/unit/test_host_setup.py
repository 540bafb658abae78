"""The GitHub App's permissions and events (bot/hosts/github_app.py) and the GitLab
webhook's triggers (bot/hosts/gitlab_hooks.py) are exactly what the intake reads, and the
docs show those same tables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.events import MalformedPayload
from bot.hosts import build_sansio, github_app, github_sansio, gitlab_hooks, gitlab_sansio
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[2]
BEGIN = "<!-- BEGIN generated table: edit {source} and run scripts/host-docs -->\n"
END = "<!-- END generated table -->\n"
# Events a GitHub App may subscribe to, beyond those the code names: the ones a
# multi-staging bot could plausibly be expected to hear about.
OTHER_GITHUB_EVENTS = (
    "create",
    "delete",
    "deployment",
    "deployment_status",
    "issues",
    "label",
    "member",
    "membership",
    "pull_request_review_comment",
    "pull_request_review_thread",
    "release",
    "repository",
    "team",
)
OTHER_GITLAB_HOOKS = ("Deployment Hook", "Release Hook", "Emoji Hook", "Member Hook")


def github_reads(event: str) -> bool:
    """Whether the intake reads this event: it parses its payload (a body missing what
    it needs is refused) rather than answering with a fixed reason."""
    try:
        delivery = github_sansio.parse_delivery(event, {})
    except MalformedPayload:
        return True
    return bool(delivery.events)


def gitlab_reads(hook: str) -> bool:
    try:
        delivery = gitlab_sansio.parse_delivery(hook, {})
    except MalformedPayload:
        return True
    return bool(delivery.events)


def candidate_github_events() -> set[str]:
    from_fixtures = {path.name.split(".")[0] for path in (FIXTURES / "github").glob("*.json")}
    return (
        from_fixtures
        | set(github_sansio.IGNORED_EVENTS)
        | set(build_sansio.GITHUB_EVENTS)
        | set(github_app.subscribed_events())
        | set(OTHER_GITHUB_EVENTS)
        | {"pull_request", "issue_comment"}
    )


def generated_block(doc: str, source: str) -> str:
    text = (ROOT / "docs" / doc).read_text()
    begin = BEGIN.format(source=source)
    assert begin in text, f"docs/{doc} lost its generated-table markers"
    return text.partition(begin)[2].partition(END)[0]


def test_the_app_subscribes_to_exactly_the_events_the_intake_reads() -> None:
    read = {event for event in candidate_github_events() if github_reads(event)}
    subscribed = set(github_app.subscribed_events())
    assert read - subscribed == set(), "read by the intake, missing from github_app.NEEDS"
    assert subscribed - read == set(), "in github_app.NEEDS, but the intake ignores it"


def test_no_event_the_intake_ignores_on_purpose_is_subscribed() -> None:
    assert not set(github_sansio.IGNORED_EVENTS) & github_app.subscribed_events()
    assert not set(github_app.ALWAYS_SENT) & github_app.subscribed_events()


@pytest.mark.parametrize("event", sorted(github_app.subscribed_events()))
def test_a_real_delivery_of_each_subscribed_event_is_understood(event: str) -> None:
    paths = sorted((FIXTURES / "github").glob(f"{event}.*.json"))
    assert paths, f"no real {event} payload in tests/fixtures/webhooks/github"
    for path in paths:
        delivery = github_sansio.parse_delivery(event, json.loads(path.read_text()))
        assert "is not used by stagingbot" not in delivery.ignored, path.name


def test_every_permission_row_is_complete_and_named_once() -> None:
    names = [(need.scope, need.permission) for need in github_app.NEEDS]
    assert len(names) == len(set(names))
    for need in github_app.NEEDS:
        assert need.access in ("Read-only", "Read and write")
        assert need.scope in ("Repository", "Organization")
        assert need.why.strip()
    # The gates, QA by team and the reports, as the features need them.
    wanted = {
        ("Checks", "Read and write"),
        ("Commit statuses", "Read and write"),
        ("Actions", "Read-only"),
        ("Members", "Read-only"),
        ("Pull requests", "Read and write"),
        ("Deployments", "Read and write"),
        ("Contents", "Read-only"),
        ("Metadata", "Read-only"),
    }
    assert wanted <= {(need.permission, need.access) for need in github_app.NEEDS}


def test_the_gitlab_webhook_triggers_exactly_the_hooks_the_intake_reads() -> None:
    candidates = set(gitlab_sansio.IGNORED_HOOKS) | gitlab_hooks.hooks() | set(OTHER_GITLAB_HOOKS)
    read = {hook for hook in candidates if gitlab_reads(hook)}
    assert read == gitlab_hooks.hooks()
    assert not set(gitlab_sansio.IGNORED_HOOKS) & gitlab_hooks.hooks()


def test_the_docs_show_the_tables_of_the_code() -> None:
    assert generated_block("github-app.md", "bot/hosts/github_app.py") == (
        github_app.markdown_table()
    ), "docs/github-app.md is out of date: run scripts/host-docs"
    assert generated_block("gitlab.md", "bot/hosts/gitlab_hooks.py") == (
        gitlab_hooks.markdown_table()
    ), "docs/gitlab.md is out of date: run scripts/host-docs"


def test_the_script_finds_the_docs_up_to_date() -> None:
    result = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, str(ROOT / "scripts" / "host-docs"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
