"""Fixtures shared by the integration tests: the local fake GitHub and fake Kubernetes API,
and services over the recording fakes (`svc`; a module defining its own `svc` overrides it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from bot.model import RepoRef
from bot.services import Services
from bot.store import Store
from tests.fakes.github import FakeGitHub
from tests.fakes.kube import FakeKube
from tests.fakes.recording import RecordingHost, RecordingProvisioner
from tests.helpers import PR_HEAD, REPO, REPO_ID, make_config


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    """GitHub's example repository with its example pull request #2 open at `PR_HEAD`."""
    with FakeGitHub() as fake:
        fake.add_repo(REPO, REPO_ID, installation_id=1)
        fake.add_pull(REPO, 2, PR_HEAD, branch="changes")
        yield fake


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube() as fake:
        yield fake


@pytest.fixture
async def svc(redis_url: str) -> AsyncIterator[Services]:
    """Services over a real Redis and the recording host and provisioner, with pull request
    #2 open at `PR_HEAD`."""
    config = make_config(redis_url)
    redis = ArqRedis(ConnectionPool.from_url(redis_url))
    host, provisioner = RecordingHost(), RecordingProvisioner()
    host.open_pull(RepoRef("github", REPO_ID, REPO), 2, PR_HEAD)
    yield Services(
        config, Store(redis, config.redis.key_prefix), redis, {"github": host}, provisioner
    )
    await redis.aclose(close_connection_pool=True)
