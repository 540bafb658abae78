"""GitHub deliveries become normalized events, checked with GitHub's own example payloads."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from urllib.parse import urlencode

import pytest

from bot.events import Kind, MalformedPayload
from bot.hosts.github_sansio import decode_body, parse_delivery, verify_signature
from tests.conftest import FIXTURES, load_fixture

DOC_SECRET = b"It's a Secret to Everybody"
DOC_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def test_signature_matches_githubs_documented_vector() -> None:
    assert verify_signature(DOC_SECRET, b"Hello, World!", DOC_SIGNATURE)


@pytest.mark.parametrize(
    "body, header",
    [
        (b"Hello, World?", DOC_SIGNATURE),  # tampered body
        (b"Hello, World! ", DOC_SIGNATURE),  # one byte more
        (b"Hello, World!", None),  # missing header
        (b"Hello, World!", ""),
        (b"Hello, World!", DOC_SIGNATURE.replace("sha256=", "sha1=")),
        (b"Hello, World!", DOC_SIGNATURE[:-1] + "0"),
        (b"Hello, World!", "sha256=not-hex"),
    ],
)
def test_signature_refuses_anything_else(body: bytes, header: str | None) -> None:
    assert not verify_signature(DOC_SECRET, body, header)


def test_signature_with_another_secret_is_refused() -> None:
    assert not verify_signature(b"another secret", b"Hello, World!", DOC_SIGNATURE)


def test_pull_request_opened_becomes_a_normalized_event() -> None:
    delivery = parse_delivery("pull_request", load_fixture("pull_request.opened.json"))
    (event,) = delivery.events
    assert event.kind is Kind.PR_OPENED
    assert (event.repo.host, event.repo.id, event.repo.full_name) == (
        "github",
        186853002,
        "Codertocat/Hello-World",
    )
    assert event.number == 2
    assert event.sha == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    assert event.branch == "changes"
    assert event.author == "Codertocat"
    assert event.installation_id == 1
    assert str(event.key) == "github:186853002:2"


@pytest.mark.parametrize(
    "name, kind",
    [
        ("pull_request.opened.json", Kind.PR_OPENED),
        ("pull_request.opened.with-null-body.json", Kind.PR_OPENED),
        ("pull_request.opened.legacy-developer-github-com.json", Kind.PR_OPENED),
        ("pull_request.reopened.json", Kind.PR_REOPENED),
        ("pull_request.synchronize.json", Kind.PR_SYNCHRONIZED),
        ("pull_request.closed.json", Kind.PR_CLOSED),
        ("pull_request.closed.merged.captured-woodpecker.json", Kind.PR_CLOSED),
    ],
)
def test_every_pull_request_fixture_that_changes_a_staging_parses(name: str, kind: Kind) -> None:
    payload = load_fixture(name)
    (event,) = parse_delivery("pull_request", payload).events
    assert event.kind is kind
    assert event.number == payload["pull_request"]["number"]
    assert event.sha == payload["pull_request"]["head"]["sha"]
    assert event.repo.id == payload["repository"]["id"]


def test_merged_close_is_marked_merged() -> None:
    (event,) = parse_delivery(
        "pull_request", load_fixture("pull_request.closed.merged.captured-woodpecker.json")
    ).events
    assert event.merged
    (plain,) = parse_delivery("pull_request", load_fixture("pull_request.closed.json")).events
    assert not plain.merged


@pytest.mark.parametrize(
    "name",
    [
        "pull_request.labeled.json",
        "pull_request.unlabeled.json",
        "pull_request.converted_to_draft.json",
        "pull_request.ready_for_review.json",
    ],
)
def test_label_and_draft_changes_ask_for_a_recheck_of_the_rules(name: str) -> None:
    payload = load_fixture(name)
    (event,) = parse_delivery("pull_request", payload).events
    assert event.kind is Kind.PR_CHANGED
    assert event.number == payload["pull_request"]["number"]
    assert event.sha == payload["pull_request"]["head"]["sha"]
    assert event.branch == payload["pull_request"]["head"]["ref"]
    assert event.author == payload["pull_request"]["user"]["login"]
    assert event.draft is payload["pull_request"]["draft"]


@pytest.mark.parametrize(
    "name, labels",
    [
        ("pull_request.opened.json", ("bug",)),
        ("pull_request.labeled.json", ("bug",)),
        ("pull_request.synchronize.json", ("bug",)),
        ("pull_request.closed.merged.captured-woodpecker.json", ()),
        ("pull_request.opened.legacy-developer-github-com.json", ()),
    ],
)
def test_every_pull_request_event_carries_the_requests_labels(
    name: str, labels: tuple[str, ...]
) -> None:
    (event,) = parse_delivery("pull_request", load_fixture(name)).events
    assert event.labels == labels


def test_labels_are_kept_as_github_spells_them_in_order() -> None:
    payload = copy.deepcopy(load_fixture("pull_request.labeled.json"))
    bug = payload["pull_request"]["labels"][0]
    payload["pull_request"]["labels"] = [bug | {"name": "No-Staging"}, bug]
    (event,) = parse_delivery("pull_request", payload).events
    assert event.labels == ("No-Staging", "bug")


@pytest.mark.parametrize(
    "name, draft",
    [
        ("pull_request.converted_to_draft.json", True),
        ("pull_request.ready_for_review.json", False),
        ("pull_request.opened.json", False),
        ("pull_request.opened.legacy-developer-github-com.json", False),  # before drafts existed
    ],
)
def test_a_draft_pull_request_is_marked_draft(name: str, draft: bool) -> None:
    (event,) = parse_delivery("pull_request", load_fixture(name)).events
    assert event.draft is draft


@pytest.mark.parametrize(
    "name, action, reason",
    [
        ("pull_request.edited.captured-go-scm.json", "edited", "edits do not change a staging"),
        ("pull_request.opened.json", "assigned", "assignees do not change a staging"),
        ("pull_request.opened.json", "review_requested", "review requests do not"),
        ("pull_request.opened.json", "auto_merge_enabled", "auto-merge does not"),
        ("pull_request.opened.json", "some_future_action", "does not change a staging"),
    ],
)
def test_pull_request_actions_that_do_not_change_a_staging_are_ignored_with_a_reason(
    name: str, action: str, reason: str
) -> None:
    delivery = parse_delivery("pull_request", load_fixture(name) | {"action": action})
    assert delivery.events == ()
    assert delivery.ignored.startswith(f"pull_request.{action}: ")
    assert reason in delivery.ignored


def test_an_edit_of_the_base_branch_is_still_ignored() -> None:
    payload = load_fixture("pull_request.edited.captured-go-scm.json")
    edited = payload | {
        "changes": {"base": {"ref": {"from": "develop"}, "sha": {"from": "0" * 40}}}
    }
    assert parse_delivery("pull_request", edited).events == ()


@pytest.mark.parametrize("name", sorted(p.name for p in (FIXTURES / "github").glob("ping*.json")))
def test_ping_is_recognized(name: str) -> None:
    assert parse_delivery("ping", load_fixture(name)).ping


def test_comment_on_a_pull_request_becomes_a_comment_event() -> None:
    payload = load_fixture("issue_comment.created.on-pull-request.captured-go-scm.json")
    (event,) = parse_delivery("issue_comment", payload).events
    assert event.kind is Kind.COMMENT_CREATED
    assert event.comment_id == payload["comment"]["id"]
    assert event.comment_body == payload["comment"]["body"]
    assert event.number == payload["issue"]["number"]
    assert event.sha == ""  # GitHub does not say which head the commenter saw


@pytest.mark.parametrize(
    "name",
    ["issue_comment.created.json", "issue_comment.edited.json", "issue_comment.deleted.json"],
)
def test_comments_on_issues_and_edits_are_ignored(name: str) -> None:
    delivery = parse_delivery("issue_comment", load_fixture(name))
    assert delivery.events == () and delivery.ignored


@pytest.mark.parametrize(
    "event, name",
    [
        ("push", "push.json"),
        ("push", "push.with-new-branch.json"),
        ("check_run", "check_run.rerequested.json"),  # only completed runs open the gate
        ("check_suite", "check_suite.rerequested.json"),
        ("installation", "installation.created.json"),
        ("pull_request_review", "pull_request_review.submitted.json"),
        ("star", "ping.json"),
    ],
)
def test_events_the_bot_does_not_use_are_ignored_with_a_reason(event: str, name: str) -> None:
    delivery = parse_delivery(event, load_fixture(name))
    assert delivery.events == () and not delivery.ping
    assert delivery.ignored


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda p: p.pop("pull_request"), "pull_request"),
        (lambda p: p["pull_request"]["head"].pop("sha"), "sha"),
        (lambda p: p["pull_request"].__setitem__("number", "2"), "number"),
        (lambda p: p["pull_request"].__setitem__("number", True), "number"),
        (lambda p: p["repository"].__setitem__("id", None), "id"),
        (lambda p: p.pop("action"), "action"),
    ],
)
def test_a_pull_request_missing_what_the_bot_needs_is_malformed(mutate, field) -> None:  # type: ignore[no-untyped-def]
    payload = copy.deepcopy(load_fixture("pull_request.opened.json"))
    mutate(payload)
    with pytest.raises(MalformedPayload, match=field):
        parse_delivery("pull_request", payload)


def test_body_is_decoded_from_json_and_from_githubs_form_encoding() -> None:
    payload = load_fixture("pull_request.opened.json")
    raw = json.dumps(payload).encode()
    assert decode_body(raw, "application/json") == payload
    form = urlencode({"payload": raw.decode()}).encode()
    assert decode_body(form, "application/x-www-form-urlencoded; charset=utf-8") == payload


@pytest.mark.parametrize(
    "body, content_type, message",
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b"[1, 2]", "application/json", "not a JSON object"),
        (b"\xff\xfe", "application/json", "not valid JSON"),
        (b"other=1", "application/x-www-form-urlencoded", "without a payload"),
    ],
)
def test_bodies_that_are_not_a_json_object_are_malformed(
    body: bytes, content_type: str, message: str
) -> None:
    with pytest.raises(MalformedPayload, match=message):
        decode_body(body, content_type)


def test_a_pull_request_from_a_fork_is_recognized() -> None:
    payload = copy.deepcopy(load_fixture("pull_request.opened.json"))
    (same,) = parse_delivery("pull_request", payload).events
    assert not same.fork
    payload["pull_request"]["head"]["repo"]["id"] = 999
    payload["pull_request"]["head"]["repo"]["full_name"] = "mallory/Hello-World"
    (fork,) = parse_delivery("pull_request", payload).events
    assert fork.fork
    payload["pull_request"]["head"]["repo"] = None  # the fork was deleted
    (gone,) = parse_delivery("pull_request", payload).events
    assert gone.fork
