"""What pull/merge request events mean: the desired state they set (pure, no I/O)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from bot.events import Event, Kind
from bot.lifecycle import ACTIVE_AT
from handlers import written

WANTS_STAGING = (Kind.PR_OPENED, Kind.PR_REOPENED, Kind.PR_SYNCHRONIZED)
# Labels, draft state: whether there is a staging is decided by the worker against the rules.
RECHECKS = (Kind.PR_CHANGED,)


def desired_fields(event: Event, now: float) -> dict[str, str]:
    """The desired-state fields an event writes for its staging.

    Only a hint for the worker, which reads the request's current state and head from the
    Git host before acting: an event that arrives late or out of order cannot roll back.
    """
    fields = {
        "host": event.repo.host,
        "repo_id": str(event.repo.id),
        "repo": event.repo.full_name,
        "number": str(event.number),
        "last_event": event.kind.value,
        "last_sender": event.sender,
        "event_at": f"{now:.3f}",
    }
    if event.kind in WANTS_STAGING:
        fields.update(desired="running", desired_sha=event.sha, branch=event.branch)
        fields[ACTIVE_AT] = f"{now:.3f}"  # a push is activity: the idle timer starts again
        fields.update(title=event.title, author=event.author, pr_url=event.url)
        fields.update(request_fields(event.labels, event.draft, event.fork))
    elif event.kind in RECHECKS:
        fields.update(desired_sha=event.sha, branch=event.branch)
        fields.update(title=event.title, author=event.author, pr_url=event.url)
        fields.update(request_fields(event.labels, event.draft, event.fork))
    elif event.kind is Kind.PR_CLOSED:
        fields["desired"] = "gone"
    if event.installation_id is not None:
        fields["installation_id"] = str(event.installation_id)
    return fields


def first_fields(event: Event) -> dict[str, str]:
    """What a request's opening writes when it creates the staging's record: that the bot
    has begun no check run or deployment on any commit of it (handlers.written), so the
    first ones are created without looking for earlier ones."""
    if event.kind is not Kind.PR_OPENED:
        return {}
    return {written.CHECKS: written.NONE, written.DEPLOYMENTS: written.NONE}


def request_fields(labels: Iterable[str], draft: bool, fork: bool) -> dict[str, str]:
    """What the API needs to act as a comment would without asking the host: whether the
    rules skip the request (labels, draft) and whether a deploy approves a fork."""
    return {
        "labels": json.dumps(sorted(labels)),
        "draft": "1" if draft else "",
        "fork": "1" if fork else "",
    }
