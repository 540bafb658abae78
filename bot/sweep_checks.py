"""What the sweep adds to its repairs: kept decisions and the health of running stagings (pure).

- A record the sweep creates or rebuilds (Redis lost it) carries the decision kept
  outside Redis, if any: a staging a person destroyed stays gone. When the kept decisions
  could not be read, no record is created or rebuilt at all this time — one missing could
  bring back a staging a person removed.
- A running staging whose workloads the provisioner reports unavailable gets its `health`
  field written and its job queued (`handlers.health` decides); one that failed that way
  and is available again too.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.model import ClusterStaging, Phase, PullRequest, StagingKey
from bot.provision.decisions import KEPT, Decision
from bot.store import StagingRecord
from handlers import health
from handlers import plan as staging_plan

HEALTH = "health"  # an action: the health field written (not a desired-state change), job queued
REBUILDING = ("create", "rebuild")  # the sweep_plan kinds that write a whole new record


def decision_fields(
    decision: Decision, pr: PullRequest | None, staging: ClusterStaging | None
) -> dict[str, str]:
    """The record fields of a kept decision (as `/staging destroy` wrote them)."""
    fields = {
        staging_plan.DECISION: staging_plan.DESTROY,
        staging_plan.DECISION_SHA: decision.sha,
        staging_plan.DECISION_BY: decision.by,
        staging_plan.DECISION_REASON: decision.reason,
        KEPT: decision.sha,
    }
    valid = pr is not None and pr.head_sha == decision.sha
    if valid and staging is None:
        fields["phase"] = Phase.GONE.value  # nothing to build, nothing to say
    return fields


def stays_gone(decision: Decision | None, pr: PullRequest | None) -> bool:
    return decision is not None and pr is not None and pr.head_sha == decision.sha


def health_change(
    record: StagingRecord | None, seen: str | None
) -> tuple[str, dict[str, str]] | None:
    """Why to queue the job and the field to write, or None; `seen` None: not looked at."""
    if record is None or seen is None:
        return None
    phase = record.get("phase")
    # The history then says the sweep noticed ("automatic"), not the last person who acted.
    by_sweep = {"last_event": "sweep", "last_sender": ""}
    if phase == Phase.RUNNING.value and seen:
        return f"running, but unavailable: {seen}", {health.FIELD: seen, **by_sweep}
    failed_so = phase == Phase.FAILED.value and record.get("failure") == health.FAILURE
    if failed_so and not seen:
        return "failed as unavailable, available again", {health.FIELD: "", **by_sweep}
    return None


def seen_health(
    key: StagingKey, unhealthy: Mapping[StagingKey, str] | None, looked_at: frozenset[StagingKey]
) -> str | None:
    """What the health check said of `key`: its reason, "" healthy, None not looked at."""
    if unhealthy is None or key not in looked_at:
        return None
    return unhealthy.get(key, "")


def looks_running(record: StagingRecord) -> bool:
    """Whether the sweep asks the provisioner about this staging's health."""
    phase = record.get("phase")
    return phase == Phase.RUNNING.value or (
        phase == Phase.FAILED.value and record.get("failure") == health.FAILURE
    )
