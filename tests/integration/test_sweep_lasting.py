"""The sweep's decisions, health and orphans over a real Redis with recording fakes, and what
the dashboard and `/metrics` show of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from arq import Retry
from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from bot.config import DashboardConfig, SweepConfig
from bot.errors import PermanentError, TemporaryError
from bot.model import ClusterStaging, Phase, StagingKey
from bot.provision.decisions import KEPT, Decision
from bot.services import Services
from bot.store import Store
from bot.sweep import sweep
from handlers import health, plan
from handlers.reconcile import reconcile
from tests.fakes.recording import RecordingHost, RecordingProvisioner
from tests.integration.test_api import OPERATOR, VIEWER, api_config, client_for
from tests.integration.test_dashboard import sign_in
from tests.integration.test_sweep import (
    KEY,
    REPO_REF,
    SHA1,
    SHA3,
    deployed,
    host_of,
    prov_of,
    settle,
)

ORPHAN = ClusterStaging(
    StagingKey("github", 4242, 7), "staging-retired-pr-7", "acme/retired", SHA3, ""
)


@pytest.fixture
async def svc(redis_url: str) -> AsyncIterator[Services]:
    config = api_config(redis_url)
    redis = ArqRedis(ConnectionPool.from_url(redis_url))
    host, provisioner = RecordingHost(), RecordingProvisioner()
    host.open_pull(REPO_REF, 2, SHA1)
    yield Services(
        config, Store(redis, config.redis.key_prefix), redis, {"github": host}, provisioner
    )
    await redis.aclose(close_connection_pool=True)


async def destroyed_by_a_person(svc: Services) -> None:
    await deployed(svc)
    await svc.store.desire(
        KEY, {plan.DECISION: plan.DESTROY, plan.DECISION_SHA: SHA1, plan.DECISION_BY: "octocat"}
    )
    await settle(svc)
    record = await svc.store.load(KEY)
    assert record is not None and record.get("phase") == Phase.GONE


async def test_a_destroy_is_kept_outside_redis_before_the_staging_goes(svc: Services) -> None:
    prov = prov_of(svc)
    prov.decision_error = TemporaryError("the API server is down")
    await deployed(svc)
    await svc.store.desire(KEY, {plan.DECISION: plan.DESTROY, plan.DECISION_SHA: SHA1})
    with pytest.raises(Retry):  # the job backs off: it could not keep the decision
        await reconcile({"services": svc}, str(KEY))
    assert prov.destroyed == []  # not kept: not removed either

    prov.decision_error = None
    await settle(svc)
    assert prov.destroyed and prov.kept[KEY].sha == SHA1


async def test_after_flushall_a_destroyed_staging_stays_gone_until_a_push(svc: Services) -> None:
    await destroyed_by_a_person(svc)
    prov = prov_of(svc)
    assert prov.kept[KEY].by == "octocat"
    applies = len(prov.applied)
    await svc.queue.flushall()

    report = await sweep(svc)
    assert [(a.kind, a.key) for a in report.actions] == [("create", KEY)]
    await settle(svc)
    record = await svc.store.load(KEY)
    assert record is not None and record.get("phase") == Phase.GONE
    assert len(prov.applied) == applies and host_of(svc).comments  # nothing built or said anew
    assert (await sweep(svc)).actions == ()

    host_of(svc).push(2, SHA3)
    await sweep(svc)  # the push's webhook was lost too: the sweep writes the new head
    await settle(svc)
    assert prov.applied[-1].sha == SHA3
    assert KEY not in prov.kept  # asked for again: the kept decision is dropped
    record = await svc.store.load(KEY)
    assert record is not None and not record.get(KEPT)


async def test_without_the_kept_decisions_no_record_is_created_or_rebuilt(
    svc: Services,
) -> None:
    await destroyed_by_a_person(svc)
    await svc.queue.flushall()
    prov_of(svc).decision_error = TemporaryError("configmaps is forbidden")

    report = await sweep(svc)

    assert report.failed and report.actions == () and report.skipped == (KEY,)
    assert "cannot read the decisions" in "\n".join(report.lines())
    assert await svc.store.load(KEY) is None


async def test_a_closed_request_drops_its_kept_decision(svc: Services) -> None:
    await destroyed_by_a_person(svc)
    host_of(svc).close(2)
    await svc.store.desire(KEY, {"desired": "gone"})
    await settle(svc)
    assert prov_of(svc).kept == {}


async def test_health_is_asked_once_for_the_running_stagings_and_failures_change_nothing(
    svc: Services,
) -> None:
    await deployed(svc)
    prov = prov_of(svc)
    prov.health_error = TemporaryError("deployments is forbidden")
    report = await sweep(svc)
    assert report.failed and report.actions == ()
    assert prov.health_asked == [[KEY]]

    prov.health_error = None
    prov.unhealthy = {KEY: "deployment web: 0/1 available"}
    waiting = "waiting for deployment web: 0/1 available"
    prov.rollout = replace(prov.rollout, ready=False, reason=waiting)
    report = await sweep(svc)
    assert [(a.kind, a.key) for a in report.actions] == [("health", KEY)]
    await settle(svc)
    record = await svc.store.load(KEY)
    assert record is not None and record.get("phase") == Phase.FAILED
    assert record.get("reason") == "no longer available: deployment web: 0/1 available"
    assert record.get("failure") == health.FAILURE
    assert "no longer available" in next(iter(host_of(svc).comments.values()))
    latest = (await svc.store.history(KEY))[0]
    assert (latest["action"], latest["by"], latest["event"]) == ("failed", "automatic", "sweep")

    prov.unhealthy, prov.rollout = {}, replace(prov.rollout, ready=True, reason="")
    await sweep(svc)
    await settle(svc)
    record = await svc.store.load(KEY)
    assert record is not None and record.get("phase") == Phase.RUNNING
    assert (await sweep(svc)).actions == ()


async def test_an_archived_staging_is_not_asked_about(svc: Services) -> None:
    await deployed(svc)
    await svc.store.update(KEY, {"phase": Phase.ARCHIVED})
    prov_of(svc).unhealthy = {KEY: "deployment web: 0/1 available"}
    report = await sweep(svc)
    assert "health" not in [a.kind for a in report.actions]
    assert prov_of(svc).health_asked == []


async def test_orphans_show_on_the_dashboard_and_in_metrics(svc: Services) -> None:
    prov_of(svc).stagings[ORPHAN.namespace] = ORPHAN
    await sweep(svc)
    hidden = replace(svc.config, dashboard=DashboardConfig(show_details=False))
    async with client_for(hidden) as app:
        await sign_in(app, VIEWER)
        page = (await app.get("/")).text
        assert "Orphans" in page and "acme/retired#7" in page
        assert ORPHAN.namespace not in page  # a viewer sees no namespaces here
        scraped = (await app.get("/metrics")).text
        assert "stagingbot_orphan_stagings 1.0" in scraped
    async with client_for(svc.config) as app:
        await sign_in(app, OPERATOR)
        assert ORPHAN.namespace in (await app.get("/")).text
    assert prov_of(svc).destroyed == []


async def test_orphans_are_deleted_at_the_second_sighting_with_delete_orphans(
    svc: Services,
) -> None:
    svc.config = replace(svc.config, sweep=SweepConfig(interval=0, delete_orphans=True))
    prov_of(svc).stagings[ORPHAN.namespace] = ORPHAN
    first = await sweep(svc)
    assert first.deleted == () and prov_of(svc).destroyed == []
    second = await sweep(svc)
    assert [o.namespace for o in second.deleted] == [ORPHAN.namespace]
    assert prov_of(svc).destroyed == [ORPHAN.namespace]


async def test_a_kept_decision_reads_back_from_a_rebuilt_record(svc: Services) -> None:
    """A namespace still terminating when Redis was wiped keeps being torn down."""
    await destroyed_by_a_person(svc)
    prov = prov_of(svc)
    terminating = ClusterStaging(KEY, "staging-x", REPO_REF.full_name, SHA1, "", terminating=True)
    prov.stagings["staging-x"] = terminating
    prov.kept[KEY] = Decision(KEY, SHA1, by="octocat")
    await svc.queue.flushall()
    report = await sweep(svc)
    (action,) = report.actions
    assert action.kind == "rebuild" and action.fields[plan.DECISION] == plan.DESTROY
    assert "stays gone" in action.why


async def test_a_repository_the_host_says_is_gone_makes_its_stagings_orphans(
    svc: Services,
) -> None:
    await deployed(svc)
    host_of(svc).failing["open_pulls"] = PermanentError(
        f"list the open pull requests of {REPO_REF.full_name}: HTTP 404: Not Found"
    )
    report = await sweep(svc)
    assert [o.key for o in report.orphans] == [KEY] and report.skipped == ()
    assert report.failed and report.actions == ()
    assert prov_of(svc).destroyed == []  # reported, kept: delete_orphans is off

    host_of(svc).failing["open_pulls"] = TemporaryError("HTTP 502")
    report = await sweep(svc)
    assert report.orphans == () and report.skipped == (KEY,)  # doubt is not "gone"
