"""GitLab deliveries without I/O: token check, delivery identity, payload → normalized events."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from bot.events import Delivery, Event, Kind, label_names, required
from bot.hosts import build_sansio
from bot.model import RepoRef

HOST = "gitlab"

MR_ACTIONS = {
    "open": Kind.PR_OPENED,
    "reopen": Kind.PR_REOPENED,
    "close": Kind.PR_CLOSED,
    "merge": Kind.PR_CLOSED,
}

# Merge request actions ignored on purpose, and why; any other action gets a generic reason.
# https://docs.gitlab.com/user/project/integrations/webhook_events/#merge-request-events
IGNORED_MR_ACTIONS = {
    "approved": "approvals do not change a staging",
    "unapproved": "approvals do not change a staging",
    "approval": "approvals do not change a staging",
    "unapproval": "approvals do not change a staging",
}

# Hooks the bot receives but ignores on purpose, and why (answered 202 with the reason).
IGNORED_HOOKS = {
    "Push Hook": "pushes to a merge request arrive as Merge Request Hook updates",
    "Tag Push Hook": "tags do not change a staging",
    "Job Hook": "jobs are not used yet",
    "Issue Hook": "issues have no staging",
    "Wiki Page Hook": "wiki pages have no staging",
}


def verify_token(secret: bytes, header: str | None) -> bool:
    """True when `X-Gitlab-Token` is the configured secret, compared in constant time.

    GitLab sends the secret itself, not an HMAC of the body.
    https://docs.gitlab.com/user/project/integrations/webhooks/#create-a-webhook
    """
    if not header or not secret:
        return False
    return hmac.compare_digest(secret, header.encode("utf-8", "surrogateescape"))


def delivery_id(headers: Mapping[str, str], payload: Mapping[str, Any]) -> str:
    """What makes a delivery unique across GitLab's retries.

    `Idempotency-Key` (GitLab ≥ 17.4) is stable across retries. Before it, the event UUID
    is shared by hooks triggered by other hooks, so it is paired with the object's id.
    """
    key = headers.get("idempotency-key", "")
    if key:
        return f"idem:{key}"
    event_uuid = headers.get("x-gitlab-event-uuid", "")
    attributes = payload.get("object_attributes")
    object_id = attributes.get("id", "") if isinstance(attributes, dict) else ""
    if event_uuid:
        return f"uuid:{event_uuid}:{object_id}"
    return ""


def parse_delivery(hook: str, payload: Mapping[str, Any]) -> Delivery:
    """Turn one GitLab delivery (X-Gitlab-Event + decoded body) into what the bot does with it.

    Raises `MalformedPayload` for a known hook whose body lacks what the bot needs (for
    example a custom webhook template): the caller answers 202 with the reason, because
    GitLab disables a webhook that keeps failing.
    """
    if hook == "Merge Request Hook":
        return _merge_request(payload)
    if hook == "Note Hook":
        return _note(payload)
    if hook == "Pipeline Hook":  # a pipeline moved: the build gate may open
        return build_sansio.gitlab_pipeline(payload, HOST)
    if hook in IGNORED_HOOKS:
        return Delivery(ignored=f"{hook}: {IGNORED_HOOKS[hook]}")
    return Delivery(ignored=f"hook {hook!r} is not used by stagingbot")


def _merge_request(payload: Mapping[str, Any]) -> Delivery:
    attributes = required(payload, "object_attributes", dict)
    action = str(attributes.get("action") or "")
    if action == "update":
        # `oldrev` is only present when commits were pushed; labels, draft state and title
        # changes arrive as an update without it.
        kind = Kind.PR_SYNCHRONIZED if "oldrev" in attributes else Kind.PR_CHANGED
    elif action in MR_ACTIONS:
        kind = MR_ACTIONS[action]
    else:
        reason = IGNORED_MR_ACTIONS.get(action, "does not change a staging")
        return Delivery(ignored=f"merge request {action or 'event'}: {reason}")
    last_commit = required(attributes, "last_commit", dict)
    event = Event(
        kind=kind,
        repo=_project(payload),
        number=required(attributes, "iid", int),
        sha=required(last_commit, "id", str),
        branch=required(attributes, "source_branch", str),
        title=str(attributes.get("title") or ""),
        url=str(attributes.get("url") or ""),
        sender=_username(payload.get("user")),
        merged=action == "merge",
        # `work_in_progress` is the older name of `draft`; GitLab still sends both.
        draft=bool(attributes.get("draft") or attributes.get("work_in_progress")),
        labels=label_names(payload.get("labels"), "title"),
        fork=attributes.get("source_project_id") != attributes.get("target_project_id"),
    )
    return Delivery(events=(event,))


def _note(payload: Mapping[str, Any]) -> Delivery:
    attributes = required(payload, "object_attributes", dict)
    if attributes.get("noteable_type") != "MergeRequest":
        return Delivery(ignored="comment on something other than a merge request")
    # GitLab before 16.11 sends no `action`, and sends a hook again when a note is edited:
    # there, a note updated after it was created is an edit (its id de-duplicates the rest).
    action = attributes.get("action")
    edited_before_16_11 = action is None and attributes.get("updated_at") != attributes.get(
        "created_at"
    )
    if (action is not None and action != "create") or edited_before_16_11:
        return Delivery(ignored="note edited: only new comments carry commands")
    merge_request = required(payload, "merge_request", dict)
    last_commit = merge_request.get("last_commit")
    head = last_commit.get("id") if isinstance(last_commit, dict) else None
    event = Event(
        kind=Kind.COMMENT_CREATED,
        repo=_project(payload),
        number=required(merge_request, "iid", int),
        # The head when the comment was written: a fork's commit is approved at that SHA,
        # never at one pushed after the approver looked.
        sha=head if isinstance(head, str) else "",
        title=str(merge_request.get("title") or ""),
        url=str(merge_request.get("url") or ""),
        sender=_username(payload.get("user")),
        comment_id=required(attributes, "id", int),
        comment_body=str(attributes.get("note") or ""),
    )
    return Delivery(events=(event,))


def _project(payload: Mapping[str, Any]) -> RepoRef:
    project = required(payload, "project", dict)
    return RepoRef(
        HOST, required(project, "id", int), required(project, "path_with_namespace", str)
    )


def _username(user: object) -> str:
    return str(user.get("username") or "") if isinstance(user, dict) else ""
