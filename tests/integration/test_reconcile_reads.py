"""The reconcile job's reads and look-ups: a round that only follows the rollout reuses the
request as last read, unless an event came; a write whose answer was lost is not doubled
although the job skips the look-up on commits it never wrote on (real Redis, recording host).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from bot.errors import TemporaryError
from bot.model import CheckReport, DeployState, Phase, RepoRef
from bot.services import Services
from bot.store import Store
from tests.fakes.recording import RecordingHost, RecordingProvisioner
from tests.helpers import make_config
from tests.integration.test_reconcile import (
    KEY,
    REPO_REF,
    SHA1,
    SHA2,
    deliver,
    host_of,
    phase,
    prov_of,
    run,
)


@pytest.fixture
async def svc(redis_url: str) -> AsyncIterator[Services]:
    """As tests/integration/test_reconcile.py's: request #2 open at SHA1."""
    config = make_config(redis_url)
    redis = ArqRedis(ConnectionPool.from_url(redis_url))
    host, provisioner = RecordingHost(), RecordingProvisioner()
    host.open_pull(REPO_REF, 2, SHA1)
    yield Services(
        config, Store(redis, config.redis.key_prefix), redis, {"github": host}, provisioner
    )
    await redis.aclose(close_connection_pool=True)


async def test_rounds_that_follow_the_rollout_reuse_the_request_as_read(svc: Services) -> None:
    host = host_of(svc)
    await deliver(svc, "opened")
    assert await run(svc) is not None  # applied: the rollout is followed later
    assert await run(svc) is None
    assert await phase(svc) == Phase.RUNNING
    assert host.calls.count("get_pull") == 1


async def test_an_event_while_following_makes_the_next_round_read_the_host_again(
    svc: Services,
) -> None:
    host, prov = host_of(svc), prov_of(svc)
    await deliver(svc, "opened")
    assert await run(svc) is not None  # deploying SHA1
    host.push(2, SHA2)
    await deliver(svc, "synchronize", SHA2)
    await run(svc), await run(svc)
    assert host.calls.count("get_pull") == 2
    assert [t.sha for t in prov.applied] == [SHA1, SHA2]
    record = await svc.store.load(KEY)
    assert record is not None and record.get("sha") == SHA2


async def test_a_push_creates_its_check_and_deployment_once_when_an_answer_is_lost(
    svc: Services,
) -> None:
    """The job lists the commits it began writing on before it writes: a retry after an
    answer lost on the way (created on the host, id never stored) looks up, not creates."""
    lossy = Watched(**vars(host_of(svc)))
    svc.hosts = {"github": lossy}
    await deliver(svc, "opened")
    await run(svc), await run(svc)
    lossy.push(2, SHA2)
    await deliver(svc, "synchronize", SHA2)
    lossy.lose = {"report_check", "report_deployment"}
    for _ in range(6):  # two lost answers, each retried; then the rollout followed
        if await run(svc) is None:
            break
    assert await phase(svc) == Phase.RUNNING
    assert [sha for sha, _ in lossy.checks.values()].count(SHA2) == 1
    assert [sha for _, sha in lossy.deployments.values()].count(SHA2) == 1
    assert lossy.lost == ["report_check", "report_deployment"]


async def test_the_first_check_and_deployment_of_an_opened_request_are_not_looked_for(
    svc: Services,
) -> None:
    """A record its request's opening created proves the bot wrote nothing on it yet; a
    record created by any other event (say, a push after Redis lost the record) does not."""
    looks = Watched(**vars(host_of(svc)))
    svc.hosts = {"github": looks}
    await deliver(svc, "opened")
    await run(svc), await run(svc)
    assert await phase(svc) == Phase.RUNNING
    assert looks.looked == []

    await svc.queue.flushall()  # the record lost: a push creates a new one
    looks.push(2, SHA2)
    await deliver(svc, "synchronize", SHA2)
    await run(svc), await run(svc)
    assert await phase(svc) == Phase.RUNNING
    assert looks.looked == ["report_check", "report_deployment"]  # on its first writes only
    assert len(looks.checks) == len(looks.deployments) == 2  # one per commit, none doubled


async def test_an_opening_that_arrives_after_a_push_proves_nothing(svc: Services) -> None:
    looks = Watched(**vars(host_of(svc)))
    svc.hosts = {"github": looks}
    await deliver(svc, "synchronize", SHA1)  # GitHub's order is not guaranteed
    await deliver(svc, "opened")
    await run(svc), await run(svc)
    assert looks.looked == ["report_check", "report_deployment"]


@dataclass
class Watched(RecordingHost):
    """Notes each check-run / deployment write that would look for an earlier one first
    (`looked`); writes, then fails as if the answer never came back, once per method in
    `lose`."""

    looked: list[str] = field(default_factory=list)
    lose: set[str] = field(default_factory=set)
    lost: list[str] = field(default_factory=list)

    async def report_check(
        self,
        repo: RepoRef,
        sha: str,
        check: CheckReport,
        known_id: int | None,
        gate: str = "",
        *,
        unseen: bool = False,
    ) -> int | None:
        self._note("report_check", known_id, unseen)
        check_id = await super().report_check(repo, sha, check, known_id, gate, unseen=unseen)
        self._maybe_lose("report_check")
        return check_id

    async def report_deployment(
        self,
        repo: RepoRef,
        environment: str,
        sha: str,
        state: DeployState,
        url: str,
        description: str,
        known_id: int | None,
        *,
        unseen: bool = False,
    ) -> int:
        self._note("report_deployment", known_id, unseen)
        deployment_id = await super().report_deployment(
            repo, environment, sha, state, url, description, known_id, unseen=unseen
        )
        self._maybe_lose("report_deployment")
        return deployment_id

    def _note(self, method: str, known_id: int | None, unseen: bool) -> None:
        if known_id is None and not unseen:
            self.looked.append(method)

    def _maybe_lose(self, method: str) -> None:
        if method in self.lose:
            self.lose.discard(method)
            self.lost.append(method)
            raise TemporaryError(f"{method}: connection reset (the answer was lost)")
