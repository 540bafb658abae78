"""Offline mode's Git host over a real Redis: the request is its last signed webhook, reports
land in the staging's record, and neither a sweep nor a lost record removes a staging."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from arq import Retry
from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from bot.config import ServerConfig
from bot.errors import PermanentError
from bot.hosts import offline
from bot.hosts.base import Access
from bot.hosts.github_sansio import parse_delivery
from bot.hosts.offline import OfflineHost
from bot.model import CheckReport, CheckState, ClusterStaging, DeployState, RepoRef, StagingKey
from bot.services import Services
from bot.store import Store
from bot.sweep import sweep
from bot.web import update_for
from handlers.reconcile import reconcile
from tests.fakes.recording import RecordingProvisioner
from tests.helpers import PR_HEAD, REPO, REPO_ID, make_config, pr_payload

REPO_REF = RepoRef("github", REPO_ID, REPO)
SHA2 = "2" * 40


@pytest.fixture
async def svc(redis_url: str) -> AsyncIterator[Services]:
    redis = ArqRedis(ConnectionPool.from_url(redis_url))
    config = replace(make_config(redis_url), server=ServerConfig(mode="offline"))
    store = Store(redis, config.redis.key_prefix)
    yield Services(config, store, redis, {"github": OfflineHost(store)}, RecordingProvisioner())
    await redis.aclose(close_connection_pool=True)


async def accept(svc: Services, action: str, number: int, sha: str | None = None) -> None:
    """What the web intake stores for a signed delivery."""
    payload = pr_payload(action, sha)
    payload["number"] = payload["pull_request"]["number"] = number
    (event,) = parse_delivery("pull_request", payload).events
    await svc.store.record_delivery(f"{action}-{number}-{sha}", 60, [update_for(event, 0)])


async def test_the_request_is_what_its_last_signed_webhook_said(svc: Services) -> None:
    host = svc.hosts["github"]
    await accept(svc, "opened", 2)
    await accept(svc, "synchronize", 2, SHA2)

    pr = await host.get_pull(REPO_REF, 2)
    assert (pr.open, pr.head_sha, pr.branch, pr.fork) == (True, SHA2, "changes", False)
    assert [p.number for p in await host.open_pulls(REPO_REF)] == [2]

    await accept(svc, "closed", 2)
    assert (await host.get_pull(REPO_REF, 2)).open is False
    assert await host.open_pulls(REPO_REF) == []


async def test_a_request_no_webhook_told_of_is_not_made_up(svc: Services) -> None:
    with pytest.raises(PermanentError, match="no webhook was received for .* #9"):
        await svc.hosts["github"].get_pull(REPO_REF, 9)


async def test_reports_are_kept_in_the_record_and_nobody_may_write(svc: Services) -> None:
    host, key = svc.hosts["github"], StagingKey("github", REPO_ID, 2)
    await accept(svc, "opened", 2)

    check = CheckReport(CheckState.SUCCESS, "Staging is running", "summary")
    await host.report_check(REPO_REF, PR_HEAD, check, None)
    await host.upsert_comment(REPO_REF, 2, "the sticky comment", None)
    url = "https://x.example/"
    await host.report_deployment(REPO_REF, "pr-2", PR_HEAD, DeployState.SUCCESS, url, "ok", None)

    record = await svc.store.load(key)
    assert record is not None
    assert '"state": "success"' in record.get(offline.CHECKS)
    assert record.get(offline.COMMENT) == "the sticky comment"
    assert '"url": "https://x.example/"' in record.get(offline.DEPLOYMENT)
    assert await host.permission(REPO_REF, "Codertocat") is Access.READ


async def test_in_offline_mode_the_sweep_and_the_reconcile_it_queues_remove_nothing(
    svc: Services,
) -> None:
    provisioner = svc.provisioner
    assert isinstance(provisioner, RecordingProvisioner)
    await accept(svc, "opened", 2)
    # A staging in the cluster whose record Redis lost: no webhook says anything of it.
    lost = StagingKey("github", REPO_ID, 3)
    url = "https://lost.example/"
    provisioner.stagings["ns-3"] = ClusterStaging(lost, "ns-3", REPO, SHA2, url)

    report = await sweep(svc)
    for key in sorted({action.key for action in report.actions}):
        with contextlib.suppress(Retry):  # a deploy comes back later to follow its rollout
            await reconcile({"services": svc}, str(key))

    assert provisioner.destroyed == []
    assert "ns-3" in provisioner.stagings
    record = await svc.store.load(lost)
    assert record is not None and "no webhook was received" in record.get("reason")
