"""The sweep's timers pass: idle warnings and sleep, retention, and the quota's bookkeeping.

Run once per sweep over the records the sweep already read. A timer that fired
(`bot.lifecycle.due`) is written as desired-state fields in one optimistic transaction
that checks it again on the fresh record (a push in between wins), and the staging's
reconcile job is queued: it archives, removes, edits the sticky comment and posts the
reply. So a sweep calls no Git host, and each staging that needs action costs its job's
few calls. Stagings whose timers did not fire cost nothing.

The slots of the quotas are counted again from the records (a Redis wipe, stagings from
before the quotas), and waiting stagings that fit are woken: a lost wake-up costs at most
one sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from bot import lifecycle, queue
from bot.lifecycle import Due
from bot.model import Phase, StagingKey
from bot.services import Services
from bot.store import StagingRecord

log = logging.getLogger("stagingbot.timers")

# A slot claimed (or a place in the queue taken) this long ago whose record does not show
# it is counted as a leftover: a reconcile round writes its phase within minutes.
GRACE = 3600.0
GONE_AT = "gone_at"  # when the sweep first saw the staging gone (see _FORGET in bot/store.py)
GONE_GENERATION = "gone_generation"  # the record's generation then


@dataclass(frozen=True)
class TimersReport:
    fired: tuple[Due, ...] = ()
    woken: tuple[StagingKey, ...] = ()  # waiting stagings that fit in a free slot
    forgotten: tuple[StagingKey, ...] = ()  # closed and gone past staging.history_retention
    lines: tuple[str, ...] = field(default=())


async def run_timers(svc: Services, records: Mapping[StagingKey, StagingRecord]) -> TimersReport:
    """Fire what is due, count the slots again, wake who fits; what was done, in words."""
    now, staging, prefix = svc.clock(), svc.config.staging, svc.config.commands.prefix
    fired: list[Due] = []
    forgotten: list[StagingKey] = []
    for key, record in sorted(records.items()):
        if await _forget_gone(svc, record, now):
            forgotten.append(key)
            continue
        due = lifecycle.due(key, record.fields, staging, now, prefix)
        if due is None:
            await _stamp_archived(svc, record, now)
            continue
        if await _write(svc, due, now):
            fired.append(due)
            await queue.enqueue_reconcile(svc.queue, svc.config.redis.key_prefix, key)
    woken = await _resync_slots(svc, records, now)
    lines = [f"{due.kind} {due.key}: {due.why}" for due in fired]
    lines += [f"wake {key}: a slot is free" for key in woken]
    kept = _duration(staging.history_retention)
    lines += [f"forget {key}: closed and gone for {kept}" for key in forgotten]
    for line in lines:
        log.info("timers: %s", line)
    return TimersReport(
        tuple(fired), tuple(woken), forgotten=tuple(forgotten), lines=tuple(lines)
    )


async def _forget_gone(svc: Services, record: StagingRecord, now: float) -> bool:
    """A closed request's gone staging: stamp when it went, and forget it (record, history)
    `staging.history_retention` later. One a person removed from an open request is kept:
    its record is what keeps it gone."""
    retention, fields = svc.config.staging.history_retention, record.fields
    if retention <= 0 or lifecycle.phase_of(fields) is not Phase.GONE:
        return False
    if fields.get("desired") != "gone":
        return False
    # Stamped with the generation: a request reopened and closed again since starts over.
    stamped = lifecycle.number(fields, GONE_AT) is not None
    if not stamped or fields.get(GONE_GENERATION) != str(record.generation):
        stamp = {GONE_AT: f"{now:.3f}", GONE_GENERATION: str(record.generation)}
        await svc.store.update(record.key, stamp)
        return False
    return await svc.store.forget_if_gone(record.key, now - retention)


def _duration(seconds: float) -> str:
    days = seconds / 86400
    return f"{days:g} days" if days >= 1 else f"{seconds / 3600:g} hours"


async def _write(svc: Services, due: Due, now: float) -> bool:
    """Write what fired, only if it still fires on the record as it is now."""
    staging = svc.config.staging

    def decide(record: StagingRecord) -> Mapping[str, str]:
        return due.fields if lifecycle.still_due(due, record.fields, staging, now) else {}

    try:
        _, written = await svc.store.change(due.key, decide)
    except LookupError:
        return False
    return bool(written)


async def _stamp_archived(svc: Services, record: StagingRecord, now: float) -> None:
    """An archived staging with no known archive time (archived before this bot version, or
    rebuilt after a Redis wipe): its retention counts from now, never from earlier."""
    fields = record.fields
    if (
        svc.config.staging.archive_retention > 0
        and lifecycle.phase_of(fields) is Phase.ARCHIVED
        and lifecycle.number(fields, lifecycle.ARCHIVED_AT) is None
    ):
        await svc.store.update(record.key, {lifecycle.ARCHIVED_AT: f"{now:.3f}"})


async def _resync_slots(
    svc: Services, records: Mapping[StagingKey, StagingRecord], now: float
) -> list[StagingKey]:
    """Make the slots say what the records say, then wake the waiting stagings that fit."""
    holders, waiting = await svc.store.slots()
    running = {key for key, record in records.items() if lifecycle.runs(record.fields)}
    missing = running - set(holders)
    stale = {
        key
        for key, since in holders.items()
        if key not in running and (key not in records or now - since > GRACE)
    }
    leave = {
        key
        for key, since in waiting.items()
        if key not in records or (_not_queued(records[key]) and now - since > GRACE)
    }
    lost = [  # queued, but neither waiting nor holding: it claims again when woken
        key
        for key, record in records.items()
        if lifecycle.phase_of(record.fields) is Phase.QUEUED
        and key not in waiting
        and key not in holders
    ]
    changed = bool(missing or stale or leave)
    if changed and not await svc.store.resync_slots(missing, stale, leave, holders):
        return []  # a slot was claimed or freed meanwhile: the next sweep looks again
    staging = svc.config.staging
    still_waiting = [key for key in waiting if key not in leave]
    caps = _own_caps(svc, still_waiting, records)
    quota = lifecycle.Limits(staging.max_active, staging.max_active_per_repo, caps)
    counted = [key for key in {*holders, *missing} if key not in stale]
    fits = lifecycle.admissible(still_waiting, counted, quota)
    woken = sorted({*fits, *lost})
    if woken:
        await svc.store.nudge(woken)
        for key in woken:
            await queue.enqueue_reconcile(
                svc.queue, svc.config.redis.key_prefix, key, expedite=False
            )
    return woken


def _own_caps(
    svc: Services, keys: list[StagingKey], records: Mapping[StagingKey, StagingRecord]
) -> dict[tuple[str, int], int]:
    """The waiting stagings' repositories whose [[repos]] entry sets a cap of its own."""
    caps = {}
    for key in keys:
        entry = svc.config.repo(key.host, records[key].get("repo"))
        if entry is not None and entry.max_active is not None:
            caps[lifecycle.repo_of(key)] = entry.max_active
    return caps


def _not_queued(record: StagingRecord) -> bool:
    return lifecycle.phase_of(record.fields) is not Phase.QUEUED
