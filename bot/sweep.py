"""The sweep: compare the cluster and the Git hosts with Redis, and repair what was lost.

The cluster's labelled namespaces say which stagings exist, each served repository's open
requests which ones should. Redis is an index of both, so a lost webhook or a wiped Redis
costs at most one sweep. `bot.sweep_plan` decides (pure); this module reads and carries
the decision out (an arq cron job, and `stagingbot sweep`).

It deletes nothing of a served repository itself. A staging whose request is not in the
open list is only enqueued: the reconcile job asks the host about that one request and
tears the staging down only when the host says it is closed. A repository whose list
failed is left alone. Orphans (stagings of repositories not served any more) are deleted
only with `sweep.delete_orphans`, and only when two sweeps in a row found them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from bot import metrics, queue, sweep_checks, sweep_extras
from bot.errors import PermanentError, TemporaryError
from bot.model import StagingKey
from bot.services import Services
from bot.sweep_plan import (
    CREATE,
    ENQUEUE,
    KEPT,
    REBUILD,
    REFRESH,
    Action,
    Listing,
    SweepReport,
    plan,
)
from bot.timers import run_timers

log = logging.getLogger("stagingbot.sweep")

__all__ = [
    "CREATE",
    "ENQUEUE",
    "REBUILD",
    "REFRESH",
    "Action",
    "Listing",
    "SweepReport",
    "plan",
    "sweep",
    "sweep_job",
]


async def sweep(svc: Services) -> SweepReport:
    """One sweep: read the cluster, Redis and every served repository, then repair.

    When the cluster cannot be listed nothing is done at all (the report says why); a
    repository whose list fails is left alone. Redis errors raise.
    """
    try:
        cluster = await svc.provisioner.list_stagings(svc.config.kubernetes.instance)
    except (TemporaryError, PermanentError) as exc:
        report = SweepReport(error=f"cannot list the stagings in the cluster: {exc.reason}")
        log.warning("sweep failed, nothing changed: %s", report.error)
        metrics.sweep_done(failed=True)
        await sweep_extras.remember(svc, report)
        return report
    # Records before the hosts: a push seen by both is then written with the newer head.
    keys = {*await svc.store.keys(), *(staging.key for staging in cluster)}
    records = await svc.store.load_many(sorted(keys))
    # A partial record (a job wrote it after a wipe) is rebuilt by the plan: no timer fires
    # on it, and its health is not looked at.
    complete = {key: record for key, record in records.items() if not record.partial}
    served = [entry for entry in svc.config.repos if entry.enabled]
    listings = await asyncio.gather(*(sweep_extras.listing(svc, entry) for entry in served))
    decisions, decisions_error = await sweep_extras.read_decisions(svc)
    unhealthy, looked_at, health_error = await sweep_extras.read_health(svc, complete, listings)
    report = plan(
        cluster, listings, records, svc.config, svc.clock(), decisions, unhealthy, looked_at
    )
    report = replace(report, health_error=health_error, decisions_error=decisions_error)
    report = replace(report, queued=await _carry_out(svc, report.actions))
    report = replace(report, deleted=await sweep_extras.remove_orphans(svc, report))
    timers = await run_timers(svc, complete)  # idle sleep, retention, the quota's slots
    report = replace(report, timers=timers.lines)
    _log(report)
    metrics.sweep_done(report.failed)
    await sweep_extras.remember(svc, report)
    return report


async def sweep_job(ctx: dict[str, Any]) -> str:
    """arq cron entry point."""
    report = await sweep(ctx["services"])
    return report.lines()[-1]


async def _carry_out(svc: Services, actions: Iterable[Action]) -> frozenset[StagingKey]:
    queued = set()
    prefix = svc.config.redis.key_prefix
    for action in actions:
        if action.kind in (CREATE, REBUILD):  # over a partial record too, keeping its ids
            await svc.store.create(action.key, action.fields, KEPT)  # a webhook's record wins
        elif action.kind == REFRESH:
            await svc.store.desire(action.key, action.fields)
        elif action.kind == sweep_checks.HEALTH:  # what was seen, not a desired state
            await svc.store.update(action.key, action.fields)
        if await queue.enqueue_reconcile(svc.queue, prefix, action.key, expedite=False):
            queued.add(action.key)
    return frozenset(queued)


def _log(report: SweepReport) -> None:
    for listing in report.listings:
        if listing.error:
            log.warning(
                "sweep: cannot list %s %s, its stagings left alone: %s",
                listing.host,
                listing.repo,
                listing.error,
            )
    for orphan in report.orphans:
        log.warning(
            "sweep: orphan staging %s (%s %s): repository not served, %s",
            orphan.namespace,
            orphan.key.host,
            orphan.repo,
            "deleted" if orphan in report.deleted else "kept",
        )
    for problem in (report.health_error, report.decisions_error):
        if problem:
            log.warning("sweep: %s", problem)
    for action in report.actions:
        log.info("sweep: %s %s: %s", action.kind, action.key, action.why)
    log.info("sweep: %s", report.lines()[-1])
