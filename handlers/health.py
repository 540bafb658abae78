"""A running staging whose workloads stop being available turns failed, and back (pure).

The sweep notices (`bot.provision.health`: two cluster-wide list calls) and writes what it
saw into the record's `health` field, then queues the staging's reconcile job. The job
looks at that one staging closely (`Provisioner.status`: the pods' reasons in words) and
decides with `verdict`: a running staging that is not available turns `failed` with the
reason on its comment and check; one that failed this way runs again once available.
"""

from __future__ import annotations

from bot.model import Phase, Rollout
from bot.store import StagingRecord

FIELD = "health"  # written by the sweep: why the workloads are unavailable; "" healthy
FAILURE = "health"  # the record's `failure` when a running staging went bad


def needs_look(phase: Phase, record: StagingRecord) -> bool:
    """Whether the reconcile job should look at the staging's health this round."""
    if phase is Phase.RUNNING:
        return bool(record.get(FIELD))
    return phase is Phase.FAILED and record.get("failure") == FAILURE and not record.get(FIELD)


def verdict(phase: Phase, rollout: Rollout, seen: str) -> tuple[Phase, str] | None:
    """The phase (and reason) the staging moves to, or None when it stays as it is.

    `seen` is what the sweep saw, the reason when the close look finds none in words.
    """
    if phase is Phase.RUNNING and not rollout.ready:
        return Phase.FAILED, unavailable_reason(rollout.reason or seen)
    if phase is Phase.FAILED and rollout.ready:
        return Phase.RUNNING, ""
    return None


def unavailable_reason(why: str) -> str:
    """The reason people read: the workloads' own words, as a rollout failure says them."""
    why = why.removeprefix("waiting for ")
    return f"no longer available: {why}" if why else "no longer available"
