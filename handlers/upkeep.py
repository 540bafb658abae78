"""The reconcile job's side of timers and quotas: slots taken and freed, replies owed.

`bot.lifecycle` decides (pure); the sweep writes what a timer decided (`bot.timers`);
this is what the staging's own job does about it: take a slot before deploying (or learn
its place in the queue), free it when the staging is archived, removed or closed (and
wake the stagings waiting for one), post a reply a timer left for the request, and drop
an archive the provisioner refused (`refuse_archive`).
"""

from __future__ import annotations

import contextlib
import logging

from bot import lifecycle, queue, replies
from bot.errors import ArchiveFailed, ArchiveRefused, PermanentError
from bot.hosts.base import GitHost
from bot.lifecycle import Limits
from bot.model import Phase, PullRequest, StagingKey
from bot.services import Services
from bot.store import StagingRecord
from handlers import plan

log = logging.getLogger("stagingbot.upkeep")

QUEUED_FROM = "queued_from"  # the phase a staging was in when it joined the queue


def limits(svc: Services, record: StagingRecord) -> Limits:
    """The quotas the staging is under: its repository's own cap, if it has one."""
    staging = svc.config.staging
    own = own_cap(svc, record)
    caps = {} if own is None else {lifecycle.repo_of(record.key): own}
    return Limits(staging.max_active, staging.max_active_per_repo, caps)


def own_cap(svc: Services, record: StagingRecord) -> int | None:
    """The staging's repository's own `max_active` ([[repos]]), None when it has none."""
    entry = svc.config.repo(record.key.host, record.get("repo"))
    return None if entry is None else entry.max_active


def phase_before_queue(record: StagingRecord, phase: Phase) -> Phase:
    """What a queued staging was before it queued (archived: it is restored); else `phase`."""
    if phase is not Phase.QUEUED:
        return phase
    try:
        return Phase(record.get(QUEUED_FROM) or Phase.PENDING.value)
    except ValueError:
        return Phase.PENDING


def deployed(now: float) -> dict[str, str]:
    """What an apply writes besides the rollout: a deploy is activity, ends any wait, and
    applies the templates as they are now (a refused archive may go through after it)."""
    return {
        lifecycle.DEPLOYED_AT: f"{now:.3f}",
        lifecycle.QUEUE_POSITION: "",
        QUEUED_FROM: "",
        **lifecycle.NOT_REFUSED,
    }


def sticky_note(svc: Services, record: StagingRecord, phase: Phase) -> str:
    prefix = svc.config.commands.prefix
    return lifecycle.sticky_note(record.fields, phase, svc.config.staging, prefix)


async def take_slot(svc: Services, record: StagingRecord) -> int:
    """0 when the staging may be deployed (it holds a slot), else its place in the queue."""
    staging = svc.config.staging
    return await svc.store.claim(
        record.key,
        runs=lifecycle.runs(record.fields),
        most=staging.max_active,
        most_per_repo=staging.max_active_per_repo,
        now=svc.clock(),
        own=own_cap(svc, record),
    )


async def free_slot(svc: Services, key: StagingKey) -> None:
    """The staging stops counting (archived, removed, closed, or no longer waiting): every
    staging still waiting is woken, to take the slot or show its new place."""
    waiting = await svc.store.release(key)
    await wake(svc, waiting)


async def wake(svc: Services, keys: list[StagingKey]) -> None:
    if not keys:
        return
    await svc.store.nudge(keys)
    prefix = svc.config.redis.key_prefix
    for key in keys:
        await queue.enqueue_reconcile(svc.queue, prefix, key, expedite=False)
    log.info("slot freed: woke %d waiting stagings", len(keys))


async def post_notice(svc: Services, host: GitHost, pr: PullRequest, record: StagingRecord) -> None:
    """Post the reply a timer left (an idle warning, a removal), once: it is cleared after
    it was posted, unless a newer one replaced it meanwhile. A host that refuses it for
    good (a locked conversation) loses the reply, never the staging's round."""
    text = record.get(lifecycle.NOTICE)
    if not text:
        return
    if lifecycle.notice_stale(record.fields, svc.config.staging):
        log.info("dropped an idle warning on %s: it was active again meanwhile", record.key)
    else:
        try:
            await host.reply(pr.repo, pr.number, replies.reply(text))
        except PermanentError as exc:
            log.warning("could not post a notice on %s: %s", record.key, exc.reason)
    await svc.store.clear_if(record.key, lifecycle.NOTICE, text)


# The desired-state fields of an archive decision: dropped together when it is refused.
DECIDED = (
    plan.DECISION,
    plan.DECISION_SHA,
    plan.DECISION_BY,
    plan.DECISION_REASON,
    plan.DECISION_VIA,
)


async def refuse_archive(
    svc: Services, host: GitHost, pr: PullRequest, record: StagingRecord, refused: ArchiveRefused
) -> None:
    """The provisioner refused to archive, before changing anything, or the archive failed
    for good (`ArchiveFailed`, with what it left): record why (the idle timer does not try
    again under the same deadline), answer the person whose comment asked, and drop the
    archive decision, so that neither this job nor the sweep tries again (`/staging
    archive` does). A decision written meanwhile is left for the next round."""
    staging, prefix = svc.config.staging, svc.config.commands.prefix
    failed = refused if isinstance(refused, ArchiveFailed) else None
    state, partly = (failed.state, failed.partly) if failed else ("", False)
    fields = lifecycle.archive_refused(
        record.fields, staging, refused.why, refused.remedy, state, partly
    )
    await svc.store.update(record.key, fields)
    by = record.get(plan.DECISION_BY)
    if by and record.get(plan.DECISION_VIA) == plan.BY_COMMENT:
        if failed is not None:
            answer = replies.ARCHIVE_PARTLY if partly else replies.ARCHIVE_FAILED
            shown = state[:1].upper() + state[1:]
            text = answer.format(author=by, why=failed.why, state=shown, prefix=prefix)
        else:
            text = replies.ARCHIVE_REFUSED.format(
                author=by, why=refused.why, remedy=refused.remedy, prefix=prefix
            )
        try:
            await host.reply(pr.repo, pr.number, replies.reply(text))
        except PermanentError as exc:  # a locked conversation: the sticky comment says it
            log.warning("could not answer the archive on %s: %s", record.key, exc.reason)
    asked = {name: record.get(name) for name in DECIDED}

    def drop(current: StagingRecord) -> dict[str, str]:
        if any(current.get(name) != value for name, value in asked.items()):
            return {}
        return {name: "" for name in DECIDED}

    with contextlib.suppress(LookupError):  # forgotten meanwhile: nothing left to drop
        await svc.store.change(record.key, drop)
