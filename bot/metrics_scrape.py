"""`GET /metrics`: this process's counters plus gauges read from Redis when scraped.

The gauges (queue depth and wait, stagings by state) are the same seen from any
process, so only the web app serves them; their cost is bounded (a fixed number of
keys read, in pipelines) and a result is reused for a few seconds, so an eager
scraper cannot turn into a load on Redis.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from dataclasses import dataclass, field

from arq.constants import in_progress_key_prefix
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from bot import metrics, queue, sweep_summary
from bot.config import Config
from bot.model import Phase

MAX_STAGINGS = 10_000  # records read per scrape; past it, `stagingbot_stagings` counts these
MAX_DUE_JOBS = 1_000  # due jobs looked at to tell running from waiting
CHUNK = 1_000  # keys per pipeline
REUSE_SECONDS = 5.0


@dataclass(frozen=True)
class Snapshot:
    """What Redis says at one moment; `ok` False when it could not be read."""

    taken: float
    ok: bool = True
    stagings: dict[str, int] = field(default_factory=dict)  # phase -> count
    records: int = 0  # every record in the index, counted or not
    waiting: int = 0  # due and not picked up by a worker
    running: int = 0
    deferred: int = 0  # due later (a rollout check, a backoff)
    oldest_waiting: float = 0.0  # seconds the longest-waiting due job has waited
    orphans: int = 0  # orphan stagings the last sweep found (bot.sweep_summary)
    sweep_failed: bool = False  # the last sweep could not read something


async def read_snapshot(redis: Redis, prefix: str, now: float) -> Snapshot:
    stagings, records = await _stagings(redis, prefix)
    name = queue.queue_name(prefix)
    now_ms = int(now * 1000)
    due = await redis.zrangebyscore(
        name, "-inf", now_ms, start=0, num=MAX_DUE_JOBS, withscores=True
    )
    due_count = await redis.zcount(name, "-inf", now_ms)
    deferred = await redis.zcount(name, f"({now_ms}", "+inf")
    async with redis.pipeline(transaction=False) as pipe:
        for job_id, _ in due:
            pipe.exists(in_progress_key_prefix + _text(job_id))
        started = await pipe.execute()
    running = sum(1 for found in started if found)
    waiting_scores = [score for (_, score), found in zip(due, started, strict=True) if not found]
    oldest = max(0.0, now - min(waiting_scores) / 1000) if waiting_scores else 0.0
    summary = await sweep_summary.load(redis, prefix)
    return Snapshot(
        orphans=sum(1 for item in sweep_summary.orphans(summary) if not item.get("deleted")),
        sweep_failed=bool((summary or {}).get("failed")),
        taken=now,
        stagings=stagings,
        records=records,
        waiting=due_count - running,
        running=running,
        deferred=deferred,
        oldest_waiting=oldest,
    )


async def _stagings(redis: Redis, prefix: str) -> tuple[dict[str, int], int]:
    """Phase counts over at most MAX_STAGINGS records, and how many records there are."""
    index = f"{prefix}:stagings"
    records = int(await redis.scard(index))  # type: ignore[misc]  # redis-py types it loosely
    keys: list[str] = []
    async for member in redis.sscan_iter(index, count=CHUNK):
        keys.append(_text(member))
        if len(keys) >= MAX_STAGINGS:
            break
    tally: Tally[str] = Tally()
    for start in range(0, len(keys), CHUNK):
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys[start : start + CHUNK]:
                pipe.hget(f"{prefix}:staging:{key}", "phase")
            phases = await pipe.execute()
        tally.update(_text(phase) if phase else Phase.PENDING.value for phase in phases)
    return dict(tally), records


def exposition(snapshot: Snapshot) -> bytes:
    """The snapshot in Prometheus' text format (a registry of its own, built per scrape)."""
    registry = CollectorRegistry()
    up = Gauge("stagingbot_redis_up", "1 when Redis answered this scrape", registry=registry)
    up.set(1 if snapshot.ok else 0)
    if not snapshot.ok:
        return generate_latest(registry)
    stagings = Gauge(
        "stagingbot_stagings",
        f"Stagings by state, over at most {MAX_STAGINGS} records",
        ["state"],
        registry=registry,
    )
    for phase in Phase:  # every state present, at 0 when none is in it
        stagings.labels(phase.value).set(snapshot.stagings.get(phase.value, 0))
    records = Gauge("stagingbot_staging_records", "Records in the store's index", registry=registry)
    records.set(snapshot.records)
    jobs = Gauge(
        "stagingbot_queue_jobs",
        "Jobs in arq's queue: waiting (due, not started), running, deferred (due later)",
        ["state"],
        registry=registry,
    )
    for state in ("waiting", "running", "deferred"):
        jobs.labels(state).set(getattr(snapshot, state))
    oldest = Gauge(
        "stagingbot_queue_oldest_waiting_seconds",
        "How long the longest-waiting due job has waited for a worker",
        registry=registry,
    )
    oldest.set(snapshot.oldest_waiting)
    orphans = Gauge(
        "stagingbot_orphan_stagings",
        "Staging namespaces of repositories the bot does not serve any more, as the last "
        "sweep found them (kept unless sweep.delete_orphans)",
        registry=registry,
    )
    orphans.set(snapshot.orphans)
    failed = Gauge(
        "stagingbot_sweep_last_failed",
        "1 when the last sweep could not read the cluster, a repository, the kept decisions "
        "or the stagings' health (it changed nothing on that account)",
        registry=registry,
    )
    failed.set(1 if snapshot.sweep_failed else 0)
    return generate_latest(registry)


async def endpoint(request: Request) -> Response:
    """Prometheus' scrape: never fails because Redis does (stagingbot_redis_up says so)."""
    config: Config = request.app.state.config
    now = time.time()
    last: Snapshot | None = getattr(request.app.state, "metrics_snapshot", None)
    if last is None or now - last.taken >= REUSE_SECONDS:
        try:
            last = await read_snapshot(request.app.state.redis, config.redis.key_prefix, now)
        except (RedisError, OSError):
            last = Snapshot(now, ok=False)
        request.app.state.metrics_snapshot = last
    body = generate_latest(metrics.REGISTRY) + exposition(last)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
