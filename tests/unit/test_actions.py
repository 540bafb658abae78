"""What people's actions write into the desired state, for comments and the API alike (pure)."""

from __future__ import annotations

from bot import lifecycle
from handlers import actions, plan
from handlers.actions import Refusal

HEAD = "a" * 40
RUNNING = {"phase": "running", "sha": HEAD}


def test_deploy_clears_a_decision_and_forces_only_a_request_the_rules_skip() -> None:
    assert actions.deploy(skipped=False).changes == {plan.DECISION: ""}
    assert actions.deploy(skipped=True).changes == {plan.DECISION: "", plan.FORCED: "1"}


def test_redeploy_sets_a_new_token_but_never_forces() -> None:
    changes = actions.redeploy("api-1").changes
    assert changes == {plan.DECISION: "", plan.REDEPLOY_TOKEN: "api-1"}


def test_approve_names_the_head_and_who_approved_it() -> None:
    assert actions.approve(HEAD, "ci").changes == {plan.APPROVED_SHA: HEAD, plan.APPROVED_BY: "ci"}


def test_archive_needs_a_staging_that_exists() -> None:
    for state in ({}, {"phase": "gone", "sha": HEAD}, {"phase": "destroying", "sha": HEAD}):
        assert actions.archive(state, HEAD, "ci").refusal is Refusal.NOTHING_TO_ARCHIVE
    assert actions.archive(RUNNING, HEAD, "ci", "API").changes == {
        plan.DECISION: plan.ARCHIVE,
        plan.DECISION_SHA: HEAD,
        plan.DECISION_BY: "ci",
        plan.DECISION_REASON: "",  # a person's archive, not a timer's
        plan.DECISION_VIA: "API",  # where a refusal is answered: only a comment gets a reply
    }


def test_restore_needs_an_archived_staging_or_an_archive_decision() -> None:
    assert actions.restore(RUNNING, "api-1").refusal is Refusal.NOT_ARCHIVED
    assert actions.restore({"phase": "archived"}, "api-1").changes == {plan.DECISION: ""}
    assert actions.restore({plan.DECISION: plan.ARCHIVE}, "api-1").changes == {plan.DECISION: ""}


def test_restore_of_a_partly_archived_staging_deploys_it_again() -> None:
    """A failed archive left some workloads scaled down: a restore scales them back (a
    deploy does, lifecycle.ARCHIVE_PARTLY) instead of answering "not archived"."""
    partly = {**RUNNING, lifecycle.ARCHIVE_PARTLY: "1"}
    changes = actions.restore(partly, "comment-7").changes
    assert changes == {plan.DECISION: "", plan.REDEPLOY_TOKEN: "comment-7"}


def test_destroy_holds_for_the_head_and_ends_a_forced_staging() -> None:
    assert actions.destroy(HEAD, "ci").changes == {
        plan.DECISION: plan.DESTROY,
        plan.DECISION_SHA: HEAD,
        plan.DECISION_BY: "ci",
        plan.DECISION_REASON: "",
        plan.DECISION_VIA: "",
        plan.FORCED: "",
    }


def test_overrides_are_set_and_unset_with_unknown_keys_named() -> None:
    state = {plan.OVERRIDES: plan.encode_overrides({"A": "1"})}

    set_ = actions.set_overrides(state, [("B", "2")])
    unset = actions.unset_overrides(state, ["A", "C"])

    assert plan.overrides(set_.changes) == {"A": "1", "B": "2"}
    assert plan.overrides(unset.changes) == {} and unset.unknown == ("C",)


def test_a_staging_holds_a_bounded_number_of_overrides() -> None:
    many = [(f"K{i}", "v") for i in range(actions.MAX_OVERRIDES + 1)]
    assert actions.set_overrides({}, many).refusal is Refusal.TOO_MANY
