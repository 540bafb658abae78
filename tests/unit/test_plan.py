"""What a request's staging should be: rules, people's decisions, fork approvals (pure)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.config import Rules
from bot.model import PullRequest, RepoRef, StagingKey
from bot.store import StagingRecord
from handlers import plan
from handlers.plan import Want

REPO = RepoRef("github", 1, "acme/shop")
HEAD = "a" * 40
OLD = "b" * 40
PR = PullRequest(REPO, 7, HEAD, "feature", "Title", "alice", "https://x/pull/7", open=True)
RULES = Rules(require_label="", skip_labels=frozenset(), skip_authors=frozenset(), drafts=True)


def record(**fields: str) -> StagingRecord:
    return StagingRecord(StagingKey("github", 1, 7), fields)


def test_an_open_request_gets_a_staging_at_its_head() -> None:
    assert plan.decide(PR, RULES, record()) == plan.Plan(Want.RUNNING, HEAD)


@pytest.mark.parametrize(
    ("merged", "reason"), [(False, "this pull request was closed"), (True, "was merged")]
)
def test_a_closed_or_merged_request_has_none(merged: bool, reason: str) -> None:
    decided = plan.decide(replace(PR, open=False, merged=merged), RULES, record())
    assert decided.want is Want.NONE and reason in decided.reason


@pytest.mark.parametrize(
    ("pr", "rules", "why"),
    [
        (replace(PR, draft=True), replace(RULES, drafts=False), "draft"),
        (PR, replace(RULES, require_label="staging"), "labelled `staging`"),
        (replace(PR, labels=("WIP",)), replace(RULES, skip_labels=frozenset({"wip"})), "`wip`"),
        (
            replace(PR, author="Dependabot[bot]"),
            replace(RULES, skip_authors=frozenset({"dependabot[bot]"})),
            "Dependabot[bot]",
        ),
    ],
    ids=["draft", "missing opt-in label", "skip label", "skipped author"],
)
def test_the_rules_can_say_no_staging_and_why(pr: PullRequest, rules: Rules, why: str) -> None:
    decided = plan.decide(pr, rules, record())
    assert decided.want is Want.NONE and why in decided.reason


def test_the_opt_in_label_compares_without_case() -> None:
    rules = replace(RULES, require_label="staging")
    assert plan.decide(replace(PR, labels=("Staging",)), rules, record()).want is Want.RUNNING


def test_a_person_with_write_access_overrides_the_rules() -> None:
    rules = replace(RULES, drafts=False)
    forced = record(**{plan.FORCED: "1"})
    assert plan.decide(replace(PR, draft=True), rules, forced).want is Want.RUNNING


def test_a_destroy_lasts_until_the_head_moves() -> None:
    destroyed = record(
        **{plan.DECISION: plan.DESTROY, plan.DECISION_SHA: HEAD, plan.DECISION_BY: "bob"}
    )
    decided = plan.decide(PR, RULES, destroyed)
    assert decided.want is Want.NONE and "@bob" in decided.reason
    assert plan.decide(replace(PR, head_sha=OLD), RULES, destroyed).want is Want.RUNNING


def test_an_archive_lasts_until_the_head_moves() -> None:
    archived = record(**{plan.DECISION: plan.ARCHIVE, plan.DECISION_SHA: HEAD})
    assert plan.decide(PR, RULES, archived).want is Want.ARCHIVED
    assert plan.decide(replace(PR, head_sha=OLD), RULES, archived).want is Want.RUNNING


def test_a_fork_without_approval_runs_nothing() -> None:
    decided = plan.decide(replace(PR, fork=True), RULES, record())
    assert decided.awaiting_approval and decided.unapproved == HEAD and decided.sha == ""


def test_a_fork_runs_the_approved_head() -> None:
    approved = record(**{plan.APPROVED_SHA: HEAD})
    assert plan.decide(replace(PR, fork=True), RULES, approved) == plan.Plan(Want.RUNNING, HEAD)


def test_a_fork_push_after_approval_keeps_the_approved_commit_running() -> None:
    approved = record(**{plan.APPROVED_SHA: OLD, "sha": OLD})
    decided = plan.decide(replace(PR, fork=True), RULES, approved)
    assert decided == plan.Plan(Want.RUNNING, OLD, unapproved=HEAD)
    assert not decided.awaiting_approval


def test_an_approved_fork_commit_that_never_ran_is_not_run_once_the_fork_moves_on() -> None:
    approved = record(**{plan.APPROVED_SHA: OLD})
    assert plan.decide(replace(PR, fork=True), RULES, approved).awaiting_approval


def test_a_change_of_overrides_or_redeploy_token_needs_a_new_apply() -> None:
    before = record(sha=HEAD)
    assert plan.last_applied(before) == plan.applied_signature(HEAD, before)
    with_override = record(sha=HEAD, **{plan.OVERRIDES: plan.encode_overrides({"A": "1"})})
    assert plan.applied_signature(HEAD, with_override) != plan.applied_signature(HEAD, before)
    redeploy = record(sha=HEAD, **{plan.REDEPLOY_TOKEN: "comment-1"})
    assert plan.applied_signature(HEAD, redeploy) != plan.last_applied(redeploy)


def test_unreadable_overrides_read_as_none() -> None:
    assert plan.overrides({plan.OVERRIDES: "not json"}) == {}
    assert plan.overrides({plan.OVERRIDES: "[1]"}) == {}
