"""The sweep: compare the cluster and the Git hosts with Redis, and repair what was lost.

The cluster's labelled namespaces say which stagings exist, each served repository's open
requests which ones should. Redis is an index of both, so a lost webhook or a wiped Redis
costs at most one sweep. `bot.sweep_plan` decides (pure); this module reads and carries
the decision out (an arq cron job, and `stagingbot sweep`).

It never deletes anything itself. A staging whose request is not in the open list is only
enqueued: the reconcile job asks the host about that one request and tears the staging
down only when the host says it is closed. A repository whose list failed is left alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from bot import queue
from bot.config import RepoConfig
from bot.errors import PermanentError, TemporaryError
from bot.model import RepoRef, StagingKey
from bot.services import Services
from bot.sweep_plan import (
    CREATE,
    ENQUEUE,
    REBUILD,
    REFRESH,
    Action,
    Listing,
    SweepReport,
    plan,
)

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
        return report
    # Records before the hosts: a push seen by both is then written with the newer head.
    keys = {*await svc.store.keys(), *(staging.key for staging in cluster)}
    records = await svc.store.load_many(sorted(keys))
    served = [entry for entry in svc.config.repos if entry.enabled]
    listings = await asyncio.gather(*(_listing(svc, entry) for entry in served))
    report = plan(cluster, listings, records, svc.config, svc.clock())
    report = replace(report, queued=await _carry_out(svc, report.actions))
    _log(report)
    return report


async def sweep_job(ctx: dict[str, Any]) -> str:
    """arq cron entry point."""
    report = await sweep(ctx["services"])
    return report.lines()[-1]


async def _listing(svc: Services, entry: RepoConfig) -> Listing:
    host = svc.hosts.get(entry.host)
    if host is None:
        return Listing(entry.host, entry.repo, error=f"no {entry.host} client is configured")
    try:
        # Id 0: the configured name is all the sweep knows; each request carries the id.
        pulls = await host.open_pulls(RepoRef(entry.host, 0, entry.repo))
    except (TemporaryError, PermanentError) as exc:
        return Listing(entry.host, entry.repo, error=exc.reason)
    return Listing(entry.host, entry.repo, tuple(pulls))


async def _carry_out(svc: Services, actions: Iterable[Action]) -> frozenset[StagingKey]:
    queued = set()
    prefix = svc.config.redis.key_prefix
    for action in actions:
        if action.kind in (CREATE, REBUILD):
            await svc.store.create(action.key, action.fields)  # a webhook's record wins
        elif action.kind == REFRESH:
            await svc.store.desire(action.key, action.fields)
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
            "sweep: orphan staging %s (%s %s): repository not served, kept",
            orphan.namespace,
            orphan.key.host,
            orphan.repo,
        )
    for action in report.actions:
        log.info("sweep: %s %s: %s", action.kind, action.key, action.why)
    log.info("sweep: %s", report.lines()[-1])
