"""The real arq worker over a real Redis: backoff holds, failures don't spin, events aren't lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from bot import queue
from bot.errors import PermanentError, TemporaryError
from bot.hosts.github_sansio import parse_delivery
from bot.model import RepoRef, StagingKey
from bot.services import Services
from bot.store import Store
from bot.web import update_for
from bot.worker import make_worker, stop_worker
from tests.fakes.recording import RecordingHost, RecordingProvisioner
from tests.helpers import REPO, REPO_ID, idle, make_config, pr_payload

REPO_REF = RepoRef("github", REPO_ID, REPO)
KEY = StagingKey("github", REPO_ID, 2)
SHA1 = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
SHA2 = "2" * 40


class NoDeploymentsPermission(RecordingHost):
    async def report_deployment(self, *args: Any, **kwargs: Any) -> int:
        self._call("report_deployment")
        raise PermanentError("deployment: HTTP 403: Resource not accessible by integration")


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[ArqRedis]:
    client = ArqRedis(ConnectionPool.from_url(redis_url))
    yield client
    await client.aclose(close_connection_pool=True)


async def accept(svc: Services, action: str, sha: str | None = None, delivery: str = "d-1") -> None:
    """What the web intake does with a delivery: store its effect and queue its job, in one
    script (so the worker below runs jobs queued the intake's way, not arq's enqueue_job)."""
    (event,) = parse_delivery("pull_request", pr_payload(action, sha)).events
    jobs = queue.reconcile_jobs(svc.config.redis.key_prefix, [KEY], svc.queue.job_serializer)
    await svc.store.record_delivery(delivery, 60, [update_for(event, 0)], jobs)


async def run_worker(
    redis_url: str,
    svc: Services,
    seconds: float,
    until: Callable[[], Awaitable[bool]] | None = None,
) -> None:
    """Run a worker for `seconds` (what it must not do in that time, it has not done), and
    on until `until` holds: a slow machine gets there later, it is not cut short."""
    worker = make_worker(
        svc.config, ArqRedis(ConnectionPool.from_url(redis_url)), svc, handle_signals=False
    )
    task = asyncio.create_task(worker.async_run())
    try:
        await asyncio.sleep(seconds)
        deadline = time.monotonic() + 20
        while until is not None and not await until():
            if time.monotonic() > deadline:
                pytest.fail("never happened while the worker ran")
            await asyncio.sleep(0.02)
    finally:
        await stop_worker(worker, task, grace=2)


def idle_after(svc: Services, done: Callable[[], Awaitable[bool]]) -> Callable[[], Awaitable[bool]]:
    """`done`, and then nothing left for the worker to do (no job queued or running)."""

    async def probe() -> bool:
        return await done() and await idle(svc.queue, svc.config.redis.key_prefix)

    return probe


def services(redis_url: str, redis: ArqRedis, host: RecordingHost) -> Services:
    config = make_config(redis_url)
    host.open_pull(REPO_REF, 2, SHA1)
    store = Store(redis, config.redis.key_prefix)
    return Services(config, store, redis, {"github": host}, RecordingProvisioner())


async def test_a_temporary_error_waits_the_delay_it_asked_for(
    redis_url: str, redis: ArqRedis
) -> None:
    host = RecordingHost()
    svc = services(redis_url, redis, host)
    svc.provisioner.apply_error = TemporaryError("cluster: HTTP 503", delay=30.0)  # type: ignore[attr-defined]
    await accept(svc, "opened")
    await run_worker(redis_url, svc, 1.5)
    assert host.calls.count("get_pull") == 1  # tried once, then waits 30 s
    record = await svc.store.load(KEY)
    assert record is not None and record.get("attempts") == "1"


async def test_a_report_the_host_refuses_for_good_neither_blocks_the_staging_nor_spins(
    redis_url: str, redis: ArqRedis
) -> None:
    host = NoDeploymentsPermission()
    svc = services(redis_url, redis, host)
    await accept(svc, "opened")

    async def running() -> bool:
        record = await svc.store.load(KEY)
        return record is not None and record.get("phase") == "running"

    await run_worker(redis_url, svc, 1.5, until=idle_after(svc, running))
    record = await svc.store.load(KEY)
    assert record is not None and record.get("phase") == "running"
    assert len(host.comments) == 1 and "running" in next(iter(host.comments.values()))
    assert host.calls.count("report_deployment") <= 3  # pending, running: no loop


async def test_an_event_that_arrives_while_the_job_runs_is_acted_on(
    redis_url: str, redis: ArqRedis
) -> None:
    host = RecordingHost()
    svc = services(redis_url, redis, host)
    original = host.get_pull
    pushed: list[bool] = []

    async def push_during_the_job(repo: RepoRef, number: int) -> Any:
        pull = await original(repo, number)
        if not pushed:
            pushed.append(True)
            host.push(2, SHA2)
            await accept(svc, "synchronize", SHA2, delivery="d-2")  # enqueue refused: job exists
        return pull

    host.get_pull = push_during_the_job  # type: ignore[method-assign]
    await accept(svc, "opened")

    async def pushed_applied() -> bool:
        return any(t.sha == SHA2 for t in svc.provisioner.applied)  # type: ignore[attr-defined]

    await run_worker(redis_url, svc, 0, until=idle_after(svc, pushed_applied))
    applied = [t.sha for t in svc.provisioner.applied]  # type: ignore[attr-defined]
    assert applied[-1] == SHA2
    assert not await svc.store.needs_work(KEY)
