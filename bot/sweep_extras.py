"""The sweep's reads and deeds around its plan: conditional lists, kept decisions, health,
orphans, and what the last sweep found (for the dashboard and `/metrics`).

Every read here fails closed: what could not be read changes nothing, and says so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

from redis.asyncio import Redis

from bot import metrics, sweep_summary
from bot.config import RepoConfig
from bot.errors import PermanentError, TemporaryError
from bot.hosts.base import ConditionalLister, ListPage
from bot.model import ClusterStaging, Phase, PullRequest, RepoRef, StagingKey, Target
from bot.provision.decisions import Decision
from bot.services import Services
from bot.store import StagingRecord
from bot.sweep_checks import looks_running
from bot.sweep_plan import Listing, SweepReport
from bot.targets import build_target
from handlers import plan as staging_plan

log = logging.getLogger("stagingbot.sweep")

LIST_CACHE_TTL = 86400  # seconds an unused ETag and its list are kept
ORPHAN_REASON = "orphan: its repository is not served by this bot any more"


def _list_key(prefix: str, entry: RepoConfig) -> str:
    return f"{prefix}:sweep:list:{entry.host}:{entry.repo.lower()}"


# -- the open requests of one repository ---------------------------------------------------


async def listing(svc: Services, entry: RepoConfig) -> Listing:
    """One repository's open requests: conditionally where the host can (GitHub's ETags,
    kept in Redis with the list they validate), in full otherwise (GitLab)."""
    host = svc.hosts.get(entry.host)
    if host is None:
        return Listing(entry.host, entry.repo, error=f"no {entry.host} client is configured")
    # Id 0: the configured name is all the sweep knows; each request carries the id.
    repo = RepoRef(entry.host, 0, entry.repo)
    try:
        if isinstance(host, ConditionalLister):
            key = _list_key(svc.config.redis.key_prefix, entry)
            answer = await host.open_pulls_since(repo, await _cached_pages(svc.store.redis, key))
            await _cache_pages(svc.store.redis, key, answer.pages)
            pulls = answer.pulls
            unchanged = bool(answer.pages) and answer.not_modified == len(answer.pages)
        else:
            pulls, unchanged = tuple(await host.open_pulls(repo)), False
    except (TemporaryError, PermanentError) as exc:
        metrics.sweep_list(entry.host, "failed")
        gone = isinstance(exc, PermanentError) and ": HTTP 404" in exc.reason
        return Listing(entry.host, entry.repo, error=exc.reason, gone=gone)
    metrics.sweep_list(entry.host, "not_modified" if unchanged else "read")
    return Listing(entry.host, entry.repo, tuple(pulls))


async def _cached_pages(redis: Redis, key: str) -> tuple[ListPage, ...]:
    raw = await redis.get(key)
    try:
        data = json.loads(raw) if raw else []
        return tuple(
            ListPage(page["url"], page["etag"], _pulls(page["pulls"]), page["next_url"])
            for page in data
        )
    except (ValueError, KeyError, TypeError):
        return ()  # unreadable: read the list in full, and keep a good copy


async def _cache_pages(redis: Redis, key: str, pages: Sequence[ListPage]) -> None:
    if not pages:
        await redis.delete(key)
        return
    await redis.set(key, json.dumps([asdict(page) for page in pages]), ex=LIST_CACHE_TTL)


def _pulls(items: Iterable[Mapping[str, Any]]) -> tuple[PullRequest, ...]:
    return tuple(
        PullRequest(**{**item, "repo": RepoRef(**item["repo"]), "labels": tuple(item["labels"])})
        for item in items
    )


# -- decisions kept outside Redis, and health -----------------------------------------------


async def read_decisions(svc: Services) -> tuple[Mapping[StagingKey, Decision] | None, str]:
    """The kept decisions, or None and why they could not be read."""
    try:
        return await svc.provisioner.decisions(svc.config.kubernetes.instance), ""
    except (TemporaryError, PermanentError) as exc:
        return None, exc.reason


async def read_health(
    svc: Services, records: Mapping[StagingKey, StagingRecord], listings: Sequence[Listing]
) -> tuple[Mapping[StagingKey, str] | None, frozenset[StagingKey], str]:
    """Why running stagings are unavailable, which were looked at, and any failure to look."""
    targets = _running_targets(svc, records, listings)
    if not targets:
        return {}, frozenset(), ""
    try:
        found = await svc.provisioner.health(svc.config.kubernetes.instance, targets)
    except (TemporaryError, PermanentError) as exc:
        return None, frozenset(), exc.reason
    return found, frozenset(target.key for target in targets), ""


def _running_targets(
    svc: Services, records: Mapping[StagingKey, StagingRecord], listings: Sequence[Listing]
) -> list[Target]:
    """What the provisioner needs to check the stagings that should be running: those of
    repositories whose list was read, at the commit they run."""
    pulls = {
        StagingKey(p.repo.host, p.repo.id, p.number): p
        for item in listings
        if not item.error
        for p in item.pulls
    }
    targets = []
    for key, record in records.items():
        pr, entry = pulls.get(key), svc.config.repo(key.host, record.get("repo"))
        if pr is None or entry is None or not looks_running(record) or not record.get("sha"):
            continue
        try:
            targets.append(
                build_target(
                    svc.config,
                    entry,
                    key,
                    replace(pr, head_sha=record.get("sha")),
                    record.get(staging_plan.REDEPLOY_TOKEN),
                    namespace=record.get("namespace"),
                    overrides=staging_plan.overrides(record.fields),
                    secret_overrides=staging_plan.secret_overrides(record.fields),
                )
            )
        except PermanentError:
            continue  # cannot be built: its reconcile job says why
    return targets


# -- orphans ------------------------------------------------------------------------------


async def remove_orphans(svc: Services, report: SweepReport) -> tuple[ClusterStaging, ...]:
    """With `sweep.delete_orphans`, delete the orphans the previous sweep found too (one
    answer alone never deletes); their records, if any, say why."""
    if not svc.config.sweep.delete_orphans or not report.orphans or svc.config.offline:
        return ()
    previous = await sweep_summary.load(svc.store.redis, _prefix(svc))
    before = {str(item.get("key")) for item in sweep_summary.orphans(previous)}
    deleted = []
    for orphan in report.orphans:
        if orphan.terminating or str(orphan.key) not in before:
            continue
        try:
            await svc.provisioner.destroy(_orphan_target(svc, orphan))
        except (TemporaryError, PermanentError) as exc:
            log.warning("sweep: cannot delete orphan %s: %s", orphan.namespace, exc.reason)
            continue
        deleted.append(orphan)
        if await svc.store.load(orphan.key) is not None:
            await svc.store.update(orphan.key, {"phase": Phase.GONE, "reason": ORPHAN_REASON})
        entry = {"at": round(svc.clock(), 3), "action": "destroy", "result": "started"}
        await svc.store.add_history(
            orphan.key, {**entry, "by": "automatic", "event": "sweep", "reason": ORPHAN_REASON}
        )
    return tuple(deleted)


def _orphan_target(svc: Services, orphan: ClusterStaging) -> Target:
    """Enough of a target to delete the namespace, which must still carry the key's labels."""
    return Target(
        key=orphan.key,
        repo=orphan.repo,
        number=orphan.key.number,
        sha=orphan.sha,
        branch="",
        namespace=orphan.namespace,
        name="",
        hostname="",
        url=orphan.url,
        image="",
        manifests="",
        instance=svc.config.kubernetes.instance,
    )


# -- what the last sweep found ---------------------------------------------------------------


async def remember(svc: Services, report: SweepReport) -> None:
    """What the dashboard and `/metrics` show until the next sweep."""
    summary = {
        "at": round(svc.clock(), 3),
        "failed": report.failed,
        "problems": [line for line in report.lines() if _problem(line)],
        "orphans": [
            {
                "key": str(orphan.key),
                "namespace": orphan.namespace,
                "host": orphan.key.host,
                "repo": orphan.repo,
                "number": orphan.key.number,
                "deleted": orphan in report.deleted,
            }
            for orphan in report.orphans
        ],
    }
    await sweep_summary.save(svc.store.redis, _prefix(svc), summary)


def _problem(line: str) -> bool:
    return line.startswith(("sweep failed", "cannot ")) or ": cannot list" in line


def _prefix(svc: Services) -> str:
    return svc.config.redis.key_prefix
