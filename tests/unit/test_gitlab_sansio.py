"""GitLab deliveries become the same normalized events, checked with GitLab's own payloads."""

from __future__ import annotations

import copy

import pytest

from bot.events import Kind, MalformedPayload
from bot.hosts.gitlab_sansio import delivery_id, parse_delivery, verify_token
from tests.conftest import load_fixture


def gitlab(name: str) -> dict:  # type: ignore[type-arg]
    return load_fixture(name, host="gitlab")


def test_the_token_is_compared_exactly() -> None:
    assert verify_token(b"s3cret", "s3cret")
    assert not verify_token(b"s3cret", "s3cret ")
    assert not verify_token(b"s3cret", None)
    assert not verify_token(b"s3cret", "")
    assert not verify_token(b"", "")  # no secret configured: nothing is authentic


def test_an_opened_merge_request_becomes_a_normalized_event() -> None:
    (event,) = parse_delivery("Merge Request Hook", gitlab("merge_request.open.json")).events
    assert event.kind is Kind.PR_OPENED
    assert (event.repo.host, event.repo.id, event.repo.full_name) == (
        "gitlab",
        1,
        "gitlabhq/gitlab-test",
    )
    assert event.number == 1
    assert event.sha.startswith("da15608")
    assert event.branch == "ms-viewport"
    assert event.sender == "root"
    assert str(event.key) == "gitlab:1:1"


@pytest.mark.parametrize(
    "name, kind, merged",
    [
        ("merge_request.reopen.captured-woodpecker.json", Kind.PR_REOPENED, False),
        ("merge_request.close.captured-woodpecker.json", Kind.PR_CLOSED, False),
        ("merge_request.merge.captured-woodpecker.json", Kind.PR_CLOSED, True),
        ("merge_request.update.with-oldrev.captured-woodpecker.json", Kind.PR_SYNCHRONIZED, False),
    ],
)
def test_every_merge_request_action_that_changes_a_staging_parses(
    name: str, kind: Kind, merged: bool
) -> None:
    payload = gitlab(name)
    (event,) = parse_delivery("Merge Request Hook", payload).events
    assert event.kind is kind and event.merged is merged
    assert event.number == payload["object_attributes"]["iid"]
    assert event.sha == payload["object_attributes"]["last_commit"]["id"]
    assert event.repo.id == payload["project"]["id"]


@pytest.mark.parametrize(
    "name",
    [
        "merge_request.update.no-oldrev.title-edit.captured-woodpecker.json",
        "merge_request.update.marked-draft.captured-go-scm.json",
    ],
)
def test_an_update_without_new_commits_asks_for_a_recheck_of_the_rules(name: str) -> None:
    payload = gitlab(name)
    (event,) = parse_delivery("Merge Request Hook", payload).events
    assert event.kind is Kind.PR_CHANGED
    assert event.number == payload["object_attributes"]["iid"]
    assert event.sha == payload["object_attributes"]["last_commit"]["id"]
    assert event.branch == payload["object_attributes"]["source_branch"]


def test_an_update_with_new_commits_is_a_synchronization_even_when_labels_changed() -> None:
    payload = copy.deepcopy(gitlab("merge_request.update.with-oldrev.captured-woodpecker.json"))
    payload["labels"] = gitlab("merge_request.open.json")["labels"]
    (event,) = parse_delivery("Merge Request Hook", payload).events
    assert event.kind is Kind.PR_SYNCHRONIZED
    assert event.labels == ("API",)


@pytest.mark.parametrize(
    "name, labels",
    [
        ("merge_request.open.json", ("API",)),
        ("merge_request.reopen.captured-woodpecker.json", ("documentation",)),
        ("merge_request.update.no-oldrev.title-edit.captured-woodpecker.json", ("documentation",)),
        ("merge_request.update.with-oldrev.captured-woodpecker.json", ()),
        ("merge_request.close.captured-woodpecker.json", ()),
    ],
)
def test_every_merge_request_event_carries_the_requests_labels(
    name: str, labels: tuple[str, ...]
) -> None:
    (event,) = parse_delivery("Merge Request Hook", gitlab(name)).events
    assert event.labels == labels


def test_labels_come_from_the_top_level_list_as_gitlab_spells_them() -> None:
    payload = copy.deepcopy(gitlab("merge_request.open.json"))
    api = payload["labels"][0]
    payload["labels"] = [api | {"title": "No Staging"}, api]
    (event,) = parse_delivery("Merge Request Hook", payload).events
    assert event.labels == ("No Staging", "API")
    (bare,) = parse_delivery("Merge Request Hook", payload | {"labels": None}).events
    assert bare.labels == ()


@pytest.mark.parametrize(
    "name, draft",
    [
        ("merge_request.update.marked-draft.captured-go-scm.json", True),
        ("merge_request.update.no-oldrev.title-edit.captured-woodpecker.json", False),
        ("merge_request.open.json", False),
    ],
)
def test_a_draft_merge_request_is_marked_draft(name: str, draft: bool) -> None:
    (event,) = parse_delivery("Merge Request Hook", gitlab(name)).events
    assert event.draft is draft


def test_the_older_work_in_progress_flag_also_marks_a_draft() -> None:
    payload = copy.deepcopy(gitlab("merge_request.update.marked-draft.captured-go-scm.json"))
    payload["object_attributes"].pop("draft")
    (event,) = parse_delivery("Merge Request Hook", payload).events
    assert event.draft


@pytest.mark.parametrize("action", ["approved", "unapproved", "approval", "unapproval"])
def test_approvals_are_ignored_with_a_reason(action: str) -> None:
    payload = copy.deepcopy(gitlab("merge_request.open.json"))
    payload["object_attributes"]["action"] = action
    delivery = parse_delivery("Merge Request Hook", payload)
    assert delivery.events == ()
    assert delivery.ignored == f"merge request {action}: approvals do not change a staging"


def test_an_unknown_merge_request_action_is_ignored_with_a_reason() -> None:
    payload = copy.deepcopy(gitlab("merge_request.open.json"))
    payload["object_attributes"]["action"] = "some_future_action"
    delivery = parse_delivery("Merge Request Hook", payload)
    assert delivery.events == () and "does not change a staging" in delivery.ignored


def test_a_note_on_a_merge_request_becomes_a_comment_event() -> None:
    payload = gitlab("note.merge_request.json")
    (event,) = parse_delivery("Note Hook", payload).events
    assert event.kind is Kind.COMMENT_CREATED
    assert event.comment_id == payload["object_attributes"]["id"]
    assert event.comment_body == payload["object_attributes"]["note"]
    assert event.number == payload["merge_request"]["iid"]


def test_a_note_carries_the_head_the_commenter_saw() -> None:
    payload = gitlab("note.merge_request.json")
    (event,) = parse_delivery("Note Hook", payload).events
    assert event.sha == payload["merge_request"]["last_commit"]["id"]


@pytest.mark.parametrize("last_commit", ["absent", None, {}, {"id": 12}, "562e173be03b"])
def test_a_note_without_a_readable_head_has_no_sha(last_commit: object) -> None:
    payload = copy.deepcopy(gitlab("note.merge_request.json"))
    if last_commit == "absent":
        payload["merge_request"].pop("last_commit")
    else:
        payload["merge_request"]["last_commit"] = last_commit
    (event,) = parse_delivery("Note Hook", payload).events
    assert event.sha == ""


def test_a_note_without_action_from_older_gitlab_counts_as_created() -> None:
    payload = copy.deepcopy(gitlab("note.merge_request.json"))
    payload["object_attributes"].pop("action", None)
    assert parse_delivery("Note Hook", payload).events


def test_a_note_edited_on_older_gitlab_is_ignored() -> None:
    # Before 16.11 an edit re-sends the hook without an action; only the times tell.
    payload = copy.deepcopy(gitlab("note.merge_request.json"))
    payload["object_attributes"].pop("action", None)
    payload["object_attributes"]["updated_at"] = "2015-05-17 18:30:00 UTC"
    assert "edited" in parse_delivery("Note Hook", payload).ignored


def test_an_edited_note_is_ignored() -> None:
    payload = copy.deepcopy(gitlab("note.merge_request.json"))
    payload["object_attributes"]["action"] = "update"
    assert parse_delivery("Note Hook", payload).ignored


@pytest.mark.parametrize(
    "hook, name",
    [
        ("Push Hook", "push.json"),
        ("Tag Push Hook", "tag_push.json"),
        ("Deployment Hook", "push.json"),
    ],
)
def test_hooks_the_bot_does_not_use_are_ignored_with_a_reason(hook: str, name: str) -> None:
    delivery = parse_delivery(hook, gitlab(name))
    assert delivery.events == () and delivery.ignored


def test_a_custom_template_body_is_malformed_not_a_crash() -> None:
    with pytest.raises(MalformedPayload, match="object_attributes"):
        parse_delivery("Merge Request Hook", {"text": "MR opened by a custom template"})


def test_delivery_identity_prefers_the_idempotency_key_then_uuid_with_object_id() -> None:
    payload = gitlab("merge_request.open.json")
    assert (
        delivery_id({"idempotency-key": "f5e5", "x-gitlab-event-uuid": "u"}, payload) == "idem:f5e5"
    )
    assert delivery_id({"x-gitlab-event-uuid": "u-1"}, payload) == "uuid:u-1:99"
    assert delivery_id({}, payload) == ""


def test_a_merge_request_from_a_fork_is_recognized() -> None:
    payload = copy.deepcopy(gitlab("merge_request.open.json"))
    (same,) = parse_delivery("Merge Request Hook", payload).events
    assert not same.fork
    payload["object_attributes"]["source_project_id"] = 4242
    (fork,) = parse_delivery("Merge Request Hook", payload).events
    assert fork.fork
