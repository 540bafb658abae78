"""Bearer tokens and roles, dashboard sessions, staging references and views (pure)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot import stagings, tokens
from bot.config import ApiConfig, ApiToken, CommandsConfig, Config, DashboardConfig, Secret
from bot.model import StagingKey
from bot.stagings import Ref
from bot.store import StagingRecord
from handlers import plan

CI = ApiToken("ci", Secret("ci-token-0123456789"), "operator")
PM = ApiToken("pm", Secret("pm-token-0123456789"), "viewer")
CONFIG = Config(api=ApiConfig((CI, PM)), staging=replace(Config().staging, secret_key=Secret("k")))


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", ""), ("", ""), (None, "")],
)
def test_the_bearer_token_is_read_from_the_authorization_header(
    header: str | None, token: str
) -> None:
    assert tokens.bearer(header) == token


def test_a_token_is_found_only_when_equal_and_gives_its_name_and_role() -> None:
    assert tokens.caller_of(CONFIG, "ci-token-0123456789") == tokens.Caller("ci", "operator")
    assert tokens.caller_of(CONFIG, "ci-token-012345678") is None
    assert tokens.caller_of(CONFIG, "") is None
    assert tokens.caller_of(Config(), "anything") is None


def test_roles_are_ordered_viewer_qa_operator() -> None:
    assert tokens.Caller("a", "operator").may("qa") and tokens.Caller("a", "qa").may("viewer")
    assert not tokens.Caller("a", "qa").may("operator")
    assert not tokens.Caller("a", "viewer").operator


def test_a_session_names_a_token_by_fingerprint_and_ends_when_the_token_changes() -> None:
    mark = tokens.fingerprint(CONFIG, CI)
    assert "ci-token" not in mark
    assert tokens.from_session(CONFIG, "ci", mark) == tokens.Caller("ci", "operator", "dashboard")
    changed = replace(CONFIG, api=ApiConfig((replace(CI, token=Secret("new-token-0123456789")),)))
    assert tokens.from_session(changed, "ci", mark) is None
    assert tokens.from_session(CONFIG, "pm", mark) is None
    assert tokens.from_session(CONFIG, None, None) is None


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("github:owner/repo#12", Ref("github", "owner/repo", 12)),
        ("gitlab:group/sub/project!7", Ref("gitlab", "group/sub/project", 7)),
        ("github:owner/repo", None),
        ("bitbucket:owner/repo#1", None),
        ("github:#1", None),
    ],
)
def test_a_reference_names_host_repository_and_number(text: str, ref: Ref | None) -> None:
    assert Ref.parse(text) == ref
    if ref is not None:
        assert str(ref) == text


def test_the_detail_masks_secret_values_and_hides_details_when_asked() -> None:
    record = StagingRecord(
        StagingKey("gitlab", 5, 7),
        {
            "repo": "group/app",
            "phase": "failed",
            "sha": "a" * 40,
            "namespace": "staging-app-mr-7",
            "reason": "crash loop: password=hunter2 in the log",
            plan.OVERRIDES: plan.encode_overrides({"TOKEN": "s3cret", "MODE": "demo"}),
        },
    )
    config = replace(
        CONFIG,
        commands=CommandsConfig(secret_keys=("TOKEN",)),
        dashboard=DashboardConfig(show_details=False),
    )
    history = [{"at": 1.0, "action": "failed", "reason": "crash loop: password=hunter2"}]

    viewer = stagings.detail(record, history, config, operator=False)
    operator = stagings.detail(record, history, config, operator=True)

    assert viewer["ref"] == "gitlab:group/app!7"
    assert viewer["overrides"] == {"MODE": "demo", "TOKEN": "**********"}
    assert viewer["namespace"] is None and viewer["reason"] is None
    assert "hunter2" not in str(viewer) and "s3cret" not in str(viewer)
    assert operator["namespace"] == "staging-app-mr-7" and "hunter2" in operator["reason"]
    assert "s3cret" not in str(operator)
    assert list(stagings.summary(record)) == list(stagings.SUMMARY_FIELDS)
