"""The reconcile queue on arq: one job id per staging, so bursts coalesce."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import Serializer, serialize_job
from arq.utils import timestamp_ms, to_ms

from bot.model import StagingKey

RECONCILE = "reconcile"
SWEEP = "sweep"
# arq drops a job whose key outlives this (its default is a day, not renewed on Retry):
# a staging retrying through a long outage must not be forgotten.
JOB_EXPIRES = timedelta(days=30)


def queue_name(prefix: str) -> str:
    return f"{prefix}:queue"


def job_id(key: StagingKey) -> str:
    return f"{RECONCILE}:{key}"


@dataclass(frozen=True)
class QueuedJobs:
    """Reconcile jobs to queue inside another Redis script (`Store.record_delivery`), written
    as arq's `enqueue_job` writes them: the job under `arq:job:<id>` (arq's serialized job,
    expiring after `JOB_EXPIRES`) and the id in the queue's sorted set scored with the
    enqueue time, unless the job or its result already exists; then, as
    `enqueue_reconcile` does, the waiting entry is moved to now (ZADD XX LT).
    """

    queue: str
    ids: tuple[str, ...]
    payloads: tuple[bytes, ...]
    now_ms: int
    expires_ms: int

    def keys(self) -> list[str]:
        """[queue, then per job: job key, result key]."""
        keys = [self.queue]
        for job in self.ids:
            keys += [job_key_prefix + job, result_key_prefix + job]
        return keys

    def args(self) -> list[str | bytes]:
        """[now ms, expiry ms, then per job: id, serialized job]."""
        args: list[str | bytes] = [str(self.now_ms), str(self.expires_ms)]
        for job, payload in zip(self.ids, self.payloads, strict=True):
            args += [job, payload]
        return args


def reconcile_jobs(
    prefix: str, keys: Iterable[StagingKey], serializer: Serializer | None = None
) -> QueuedJobs:
    """The reconcile jobs of `keys`, serialized as `enqueue_reconcile` would queue them now
    (`serializer`: the ArqRedis's `job_serializer`; None is arq's default, pickle)."""
    now_ms = timestamp_ms()
    unique = tuple(dict.fromkeys(keys))
    payloads = tuple(
        serialize_job(RECONCILE, (str(key),), {}, None, now_ms, serializer=serializer)
        for key in unique
    )
    return QueuedJobs(
        queue_name(prefix),
        tuple(job_id(key) for key in unique),
        payloads,
        now_ms,
        to_ms(JOB_EXPIRES) or 0,
    )


def sweep_job_id(prefix: str) -> str:
    """The one id every sweep runs under (the cron's and a person's): never two at once."""
    return f"{SWEEP}:{prefix}"


async def enqueue_sweep(redis: ArqRedis, prefix: str) -> bool:
    """Queue a sweep now; False when one is already queued or running (it covers this one)."""
    job = await redis.enqueue_job(
        SWEEP, _job_id=sweep_job_id(prefix), _queue_name=queue_name(prefix)
    )
    return job is not None


def key_of_job(job: str) -> StagingKey | None:
    name, _, key = job.partition(":")
    return StagingKey.parse(key) if name == RECONCILE and key else None


async def enqueue_reconcile(
    redis: ArqRedis, prefix: str, key: StagingKey, *, expedite: bool = True
) -> bool:
    """Queue a reconcile of `key`; True if a new job was queued.

    arq refuses a job id while that job exists. Then either it is running — it re-reads
    the generation before it exits, and `requeue_if_needed` runs after it ends — or it
    is waiting, possibly deferred for a rollout check: move it to now, so a push is not
    held back by a poll interval (ZADD XX LT only ever moves an existing entry earlier).
    """
    job = await redis.enqueue_job(
        RECONCILE,
        str(key),
        _job_id=job_id(key),
        _queue_name=queue_name(prefix),
        _expires=JOB_EXPIRES,
    )
    if job is not None:
        return True
    if not expedite:
        return False
    now_ms = int(time.time() * 1000)
    await redis.zadd(queue_name(prefix), {job_id(key): now_ms}, xx=True, lt=True)
    return False
