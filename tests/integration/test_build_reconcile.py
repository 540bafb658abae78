"""The build gate inside the reconcile job (real Redis, recording host and provisioner):
what is asked when, and what is written to the wake-up index."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from bot import build_gate, build_index
from bot.model import BuildReport, Phase
from bot.services import Services
from bot.store import Store
from tests.fakes.recording import RecordingHost, RecordingProvisioner
from tests.helpers import make_config
from tests.integration.test_reconcile import (
    KEY,
    REPO_ID,
    REPO_REF,
    SHA1,
    SHA2,
    deliver,
    host_of,
    phase,
    prov_of,
    run,
)

BUILT = BuildReport((build_gate.from_check_run("build", "completed", "success"),))


@pytest.fixture
async def svc(redis_url: str) -> AsyncIterator[Services]:
    config = make_config(redis_url)
    config = replace(config, staging=replace(config.staging, wait_for=("build",)))
    redis = ArqRedis(ConnectionPool.from_url(redis_url))
    host, provisioner = RecordingHost(), RecordingProvisioner()
    host.open_pull(REPO_REF, 2, SHA1)
    yield Services(
        config, Store(redis, config.redis.key_prefix), redis, {"github": host}, provisioner
    )
    await redis.aclose(close_connection_pool=True)


async def waiting_on(svc: Services, sha: str) -> list[str]:
    keys = await build_index.waiting_on(svc.store, "github", REPO_ID, sha)
    return [str(key) for key in keys]


async def test_a_waiting_staging_is_indexed_by_its_commit_until_the_build_passes(
    svc: Services,
) -> None:
    host, prov = host_of(svc), prov_of(svc)
    await deliver(svc, "opened")

    assert await run(svc) is None  # nothing to poll: a build event or the sweep wakes it
    assert await phase(svc) == Phase.WAITING_FOR_BUILD
    assert prov.applied == []
    assert await waiting_on(svc, SHA1) == [str(KEY)]

    host.builds[SHA1] = BUILT
    await svc.store.desire(KEY, {"last_event": "check_run.completed"})
    await run(svc)

    assert [t.sha for t in prov.applied] == [SHA1]
    assert await waiting_on(svc, SHA1) == []


async def test_a_newer_push_moves_the_index_entry_to_the_new_commit(svc: Services) -> None:
    await deliver(svc, "opened")
    await run(svc)
    host_of(svc).push(2, SHA2)
    await deliver(svc, "synchronize", SHA2)

    await run(svc)

    assert await waiting_on(svc, SHA1) == []
    assert await waiting_on(svc, SHA2) == [str(KEY)]


async def test_a_redeploy_of_the_running_commit_does_not_wait_for_its_build_again(
    svc: Services,
) -> None:
    host, prov = host_of(svc), prov_of(svc)
    host.builds[SHA1] = BUILT
    await deliver(svc, "opened")
    await run(svc)
    await run(svc)
    assert await phase(svc) == Phase.RUNNING
    asked = host.calls.count("build_report")
    host.builds.clear()  # whatever the host says now, the commit was built

    await svc.store.desire(KEY, {"redeploy_token": "api-0123"})
    await run(svc)

    assert len(prov.applied) == 2 and host.calls.count("build_report") == asked
