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

from bot import lifecycle, sealed
from bot.config import StagingConfig
from bot.model import Phase
from handlers import plan

MAX_OVERRIDES = 100  # per staging: a ConfigMap holds at most 1 MiB, and a comment shows them all


class Refusal(enum.StrEnum):
    """Why an action changes nothing; each way in says it in its own words."""

    NOTHING_TO_ARCHIVE = "there is no staging to archive"
    NOT_ARCHIVED = "the staging is not archived, so there is nothing to restore"
    TOO_MANY = f"a staging holds at most {MAX_OVERRIDES} overrides"
    CANNOT_EXTEND = "the staging cannot be extended"  # why: Effect.detail
    QA_NOT_AT_HEAD = (
        "the staging does not run the head commit yet: QA signs off once that commit is deployed"
    )
    QA_NOT_RUNNING = "the staging is not running, so QA cannot pass it"


@dataclass(frozen=True)
class Effect:
    """Desired-state fields to write, or why nothing is written."""

    changes: dict[str, str] = field(default_factory=dict)
    refusal: Refusal | None = None
    unknown: tuple[str, ...] = ()  # `unset`: keys that were not set (the others are removed)
    detail: str = ""  # the refusal in words, when they depend on the staging or the config


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


def archive(state: Mapping[str, str], head: str, by: str, via: str = "") -> Effect:
    """Archive while the request's head is `head`; `via` says where it was asked
    (`plan.BY_COMMENT`: a refused archive is answered with a reply)."""
    if not has_staging(state):
        return Effect(refusal=Refusal.NOTHING_TO_ARCHIVE)
    return Effect(
        {
            plan.DECISION: plan.ARCHIVE,
            plan.DECISION_SHA: head,
            plan.DECISION_BY: by,
            plan.DECISION_REASON: "",
            plan.DECISION_VIA: via,
        }
    )


def restore(state: Mapping[str, str], token: str) -> Effect:
    """Bring an archived staging back; one a failed archive left partly scaled down is
    deployed again (`token`, as a redeploy), which scales its workloads back first."""
    if state.get(lifecycle.ARCHIVE_PARTLY) and has_staging(state):
        return redeploy(token)
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
            plan.DECISION_REASON: "",
            plan.DECISION_VIA: "",
            plan.FORCED: "",
        }
    )


def extend(
    state: Mapping[str, str], staging: StagingConfig, now: float, seconds: float | None, by: str
) -> Effect:
    """Keep the staging longer: no idle sleep (archived: no removal) before now + `seconds`
    (None: the configured period). The refusal's words are in `detail`."""
    extension = lifecycle.extend(state, staging, now, seconds, by)
    if extension.refusal:
        return Effect(refusal=Refusal.CANNOT_EXTEND, detail=extension.refusal)
    return Effect(extension.changes)


def set_overrides(state: Mapping[str, str], assignments: Iterable[tuple[str, str]]) -> Effect:
    values, secret = plan.overrides(state), plan.secret_overrides(state)
    values.update(assignments)
    for key in values:  # a key set in the open is no longer a secret one
        secret.pop(key, None)
    if len(values) + len(secret) > MAX_OVERRIDES:
        return Effect(refusal=Refusal.TOO_MANY)
    return Effect(_both(state, values, secret))


def set_secret(state: Mapping[str, str], key: str, entry: Mapping[str, str]) -> Effect:
    """One secret override, as `bot.sealed.seal` gave it: never the value in clear."""
    values, secret = plan.overrides(state), plan.secret_overrides(state)
    values.pop(key, None)
    secret[key] = dict(entry)
    if len(values) + len(secret) > MAX_OVERRIDES:
        return Effect(refusal=Refusal.TOO_MANY)
    return Effect(_both(state, values, secret))


def unset_overrides(state: Mapping[str, str], keys: Iterable[str]) -> Effect:
    """Remove overrides, secret ones included (naming a key reveals nothing)."""
    values, secret = plan.overrides(state), plan.secret_overrides(state)
    keys = list(keys)
    unknown = tuple(key for key in keys if key not in values and key not in secret)
    for key in keys:
        values.pop(key, None)
        secret.pop(key, None)
    return Effect(_both(state, values, secret), unknown=unknown)


def _both(
    state: Mapping[str, str], values: Mapping[str, str], secret: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    changes = {plan.OVERRIDES: plan.encode_overrides(values)}
    if secret or state.get(plan.SECRET_OVERRIDES):
        changes[plan.SECRET_OVERRIDES] = sealed.encode(secret)
    return changes


PASSED = "passed"
FAILED = "failed"


def sign_off(
    state: Mapping[str, str], head: str, by: str, verdict: str, note: str, at: float
) -> Effect:
    """QA's verdict on `head`, which the staging must run (it is what QA tested): reported
    as the `staging/qa` check by `handlers.qa`, and reset when the head moves on. A failure
    may be said of a staging that failed to deploy; a pass only of a running one."""
    if not head or state.get("sha") != head or not has_staging(state):
        return Effect(refusal=Refusal.QA_NOT_AT_HEAD)
    if verdict == PASSED and (state.get("phase") != Phase.RUNNING or is_archived(state)):
        return Effect(refusal=Refusal.QA_NOT_RUNNING)
    return Effect(
        {
            plan.QA: verdict,
            plan.QA_SHA: head,
            plan.QA_BY: by,
            plan.QA_NOTE: note,
            plan.QA_AT: f"{at:.3f}",
        }
    )


def signed_result(verdict: str, note: str) -> str:
    """A sign-off as the history shows its result, whichever way it came in."""
    return f"QA {verdict}" + (f": {note}" if note else "")


def qa_view(state: Mapping[str, str]) -> dict[str, object] | None:
    """QA's last word as the API and dashboard show it; `current`: it is about the head the
    last event named (else `staging/qa` is pending again). None before anyone signed off."""
    verdict = state.get(plan.QA)
    if verdict not in (PASSED, FAILED):
        return None
    at = state.get(plan.QA_AT) or ""
    return {
        "verdict": verdict,
        "sha": state.get(plan.QA_SHA),
        "by": state.get(plan.QA_BY),
        "note": state.get(plan.QA_NOTE),
        "at": float(at) if at.replace(".", "", 1).isdigit() else None,
        "current": state.get(plan.QA_SHA) == state.get("desired_sha"),
    }
