"""What a person's action does to a staging's desired state (pure): one place for both ways in.

A slash-command (`handlers.comment`, run by the worker) and the API or dashboard
(`bot.steering`, run by the web app) turn a verb into the same desired-state fields of
`handlers.plan`. Each caller adds only what it alone knows: a comment checks the author's
write access and which head the comment saw; the API checks the caller's role and that
the head it names is the one stored.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bot.model import Phase
from handlers import plan

MAX_OVERRIDES = 100  # per staging: a ConfigMap holds at most 1 MiB, and a comment shows them all


class Refusal(enum.StrEnum):
    """Why an action changes nothing; each way in says it in its own words."""

    NOTHING_TO_ARCHIVE = "there is no staging to archive"
    NOT_ARCHIVED = "the staging is not archived, so there is nothing to restore"
    TOO_MANY = f"a staging holds at most {MAX_OVERRIDES} overrides"


@dataclass(frozen=True)
class Effect:
    """Desired-state fields to write, or why nothing is written."""

    changes: dict[str, str] = field(default_factory=dict)
    refusal: Refusal | None = None
    unknown: tuple[str, ...] = ()  # `unset`: keys that were not set (the others are removed)


def has_staging(state: Mapping[str, str]) -> bool:
    """Something was built and is not being (or has not been) torn down."""
    phase = state.get("phase") or Phase.PENDING.value
    return bool(state.get("sha")) and phase not in (Phase.GONE, Phase.DESTROYING)


def is_archived(state: Mapping[str, str]) -> bool:
    return state.get(plan.DECISION) == plan.ARCHIVE or state.get("phase") == Phase.ARCHIVED


def approve(head: str, by: str) -> Effect:
    """A fork's head may run: a person with the right to say so reviewed exactly `head`."""
    return Effect({plan.APPROVED_SHA: head, plan.APPROVED_BY: by})


def deploy(*, skipped: bool) -> Effect:
    """Undo an archive or destroy; when the rules give the request no staging (`skipped`),
    a person's deploy overrides them for this request."""
    changes = {plan.DECISION: ""}
    if skipped:
        changes[plan.FORCED] = "1"
    return Effect(changes)


def redeploy(token: str) -> Effect:
    """Apply again even if nothing changed: a new token changes the pod-template annotation.
    Unlike deploy, it does not override the rules."""
    return Effect({plan.DECISION: "", plan.REDEPLOY_TOKEN: token})


def archive(state: Mapping[str, str], head: str, by: str) -> Effect:
    if not has_staging(state):
        return Effect(refusal=Refusal.NOTHING_TO_ARCHIVE)
    return Effect({plan.DECISION: plan.ARCHIVE, plan.DECISION_SHA: head, plan.DECISION_BY: by})


def restore(state: Mapping[str, str]) -> Effect:
    if not is_archived(state):
        return Effect(refusal=Refusal.NOT_ARCHIVED)
    return Effect({plan.DECISION: ""})


def destroy(head: str, by: str) -> Effect:
    """Remove the staging while the request's head is `head`; a later push or deploy brings
    it back. A forced staging stops being forced."""
    return Effect(
        {
            plan.DECISION: plan.DESTROY,
            plan.DECISION_SHA: head,
            plan.DECISION_BY: by,
            plan.FORCED: "",
        }
    )


def set_overrides(state: Mapping[str, str], assignments: Iterable[tuple[str, str]]) -> Effect:
    values = plan.overrides(state)
    values.update(assignments)
    if len(values) > MAX_OVERRIDES:
        return Effect(refusal=Refusal.TOO_MANY)
    return Effect({plan.OVERRIDES: plan.encode_overrides(values)})


def unset_overrides(state: Mapping[str, str], keys: Iterable[str]) -> Effect:
    values = plan.overrides(state)
    keys = list(keys)
    unknown = tuple(key for key in keys if key not in values)
    for key in keys:
        values.pop(key, None)
    return Effect({plan.OVERRIDES: plan.encode_overrides(values)}, unknown=unknown)
