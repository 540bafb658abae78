"""GitHub deliveries without I/O: signature check, body decoding, payload → normalized events."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from bot.events import (
    Delivery,
    Event,
    Kind,
    MalformedPayload,
    decode_json,
    label_names,
    required,
)
from bot.hosts import build_sansio
from bot.model import RepoRef

HOST = "github"

PR_ACTIONS = {
    "opened": Kind.PR_OPENED,
    "reopened": Kind.PR_REOPENED,
    "synchronize": Kind.PR_SYNCHRONIZED,
    "closed": Kind.PR_CLOSED,
    # The head did not move, but the rules on labels and drafts may now decide otherwise.
    "labeled": Kind.PR_CHANGED,
    "unlabeled": Kind.PR_CHANGED,
    "converted_to_draft": Kind.PR_CHANGED,
    "ready_for_review": Kind.PR_CHANGED,
}

# pull_request actions ignored on purpose, and why; any other action gets a generic reason.
# https://docs.github.com/en/webhooks/webhook-events-and-payloads#pull_request
IGNORED_PR_ACTIONS = {
    "edited": "title, body and base branch edits do not change a staging",
    "assigned": "assignees do not change a staging",
    "unassigned": "assignees do not change a staging",
    "review_requested": "review requests do not change a staging",
    "review_request_removed": "review requests do not change a staging",
    "milestoned": "milestones do not change a staging",
    "demilestoned": "milestones do not change a staging",
    "locked": "locking the conversation does not change a staging",
    "unlocked": "locking the conversation does not change a staging",
    "auto_merge_enabled": "auto-merge does not change a staging",
    "auto_merge_disabled": "auto-merge does not change a staging",
    "enqueued": "the merge queue does not change a staging",
    "dequeued": "the merge queue does not change a staging",
}

# Events the bot receives but ignores on purpose, and why (answered 202 with the reason).
IGNORED_EVENTS = {
    "push": "pushes to a pull request arrive as pull_request.synchronize",
    "installation": "installations are discovered when needed",
    "installation_repositories": "installations are discovered when needed",
    "pull_request_review": "reviews do not change a staging",
}


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """True when `X-Hub-Signature-256` is the body's HMAC-SHA256, compared in constant time.

    https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
    """
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


def decode_body(body: bytes, content_type: str) -> dict[str, Any]:
    """The JSON object of a delivery; GitHub's form-encoded variant carries it in `payload=`."""
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        form = parse_qs(body.decode("utf-8", "replace"))
        if "payload" not in form:
            raise MalformedPayload("form-encoded body without a payload field")
        body = form["payload"][0].encode()
    return decode_json(body)


def parse_delivery(event: str, payload: Mapping[str, Any]) -> Delivery:
    """Turn one GitHub delivery (event name + decoded body) into what the bot does with it."""
    if event == "ping":
        return Delivery(ping=True)
    if event == "pull_request":
        return _pull_request(payload)
    if event == "issue_comment":
        return _issue_comment(payload)
    if event in build_sansio.GITHUB_EVENTS:  # a build finished: the build gate may open
        return build_sansio.github(event, payload)
    if event in IGNORED_EVENTS:
        return Delivery(ignored=f"{event}: {IGNORED_EVENTS[event]}")
    return Delivery(ignored=f"event {event!r} is not used by stagingbot")


def _pull_request(payload: Mapping[str, Any]) -> Delivery:
    action = required(payload, "action", str)
    kind = PR_ACTIONS.get(action)
    if kind is None:
        reason = IGNORED_PR_ACTIONS.get(action, "does not change a staging")
        return Delivery(ignored=f"pull_request.{action}: {reason}")
    pr = required(payload, "pull_request", dict)
    head = required(pr, "head", dict)
    return Delivery(
        events=(
            Event(
                kind=kind,
                repo=_repo(payload),
                number=required(pr, "number", int),
                sha=required(head, "sha", str),
                branch=required(head, "ref", str),
                title=str(pr.get("title") or ""),
                author=_login(pr.get("user")),
                url=str(pr.get("html_url") or ""),
                sender=_login(payload.get("sender")),
                merged=bool(pr.get("merged")),
                draft=bool(pr.get("draft")),  # absent before drafts existed (2019)
                labels=label_names(pr.get("labels"), "name"),
                fork=_is_fork(pr),
                installation_id=_installation(payload),
            ),
        )
    )


def _issue_comment(payload: Mapping[str, Any]) -> Delivery:
    action = required(payload, "action", str)
    issue = required(payload, "issue", dict)
    if not issue.get("pull_request"):
        return Delivery(ignored="comment on an issue, not a pull request")
    if action != "created":
        return Delivery(ignored=f"issue_comment.{action}: only new comments carry commands")
    comment = required(payload, "comment", dict)
    return Delivery(
        events=(
            Event(
                kind=Kind.COMMENT_CREATED,
                repo=_repo(payload),
                number=required(issue, "number", int),
                title=str(issue.get("title") or ""),
                url=str(issue.get("html_url") or ""),
                sender=_login(comment.get("user")),
                installation_id=_installation(payload),
                comment_id=required(comment, "id", int),
                comment_body=str(comment.get("body") or ""),
            ),
        )
    )


def _is_fork(pr: Mapping[str, Any]) -> bool:
    """Head in another repository than base (or in a deleted one: `head.repo` is null)."""
    head_repo = (pr.get("head") or {}).get("repo")
    base_repo = (pr.get("base") or {}).get("repo") or {}
    return not isinstance(head_repo, dict) or head_repo.get("id") != base_repo.get("id")


def _repo(payload: Mapping[str, Any]) -> RepoRef:
    repo = required(payload, "repository", dict)
    return RepoRef(HOST, required(repo, "id", int), required(repo, "full_name", str))


def _installation(payload: Mapping[str, Any]) -> int | None:
    installation = payload.get("installation")
    if isinstance(installation, dict) and isinstance(installation.get("id"), int):
        return int(installation["id"])
    return None


def _login(user: object) -> str:
    return str(user.get("login") or "") if isinstance(user, dict) else ""
