"""The sweep over a real Redis with recording fakes: it repairs, and never deletes on doubt."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from arq import Retry
from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from bot import queue
from bot.config import SweepConfig
from bot.errors import TemporaryError
from bot.hosts.github_sansio import parse_delivery
from bot.model import ClusterStaging, Phase, RepoRef, StagingKey
from bot.services import Services
from bot.sweep import sweep
from bot.web import update_for
from bot.worker import make_worker, sweep_schedule
from handlers import plan
from handlers.reconcile import reconcile
from tests.fakes.recording import RecordingHost, host_of, prov_of
from tests.helpers import REPO, REPO_ID, make_config, pr_payload

REPO_REF = RepoRef("github", REPO_ID, REPO)
KEY = StagingKey("github", REPO_ID, 2)
SHA1 = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
SHA3 = "3" * 40


async def deliver_opened(svc: Services) -> None:
    (event,) = parse_delivery("pull_request", pr_payload("opened")).events
    await svc.store.record_delivery(f"d-{time.monotonic_ns()}", 60, [update_for(event, 0)])


async def settle(svc: Services, key: StagingKey = KEY) -> None:
    """Run the staging's reconcile job until it neither loops nor asks to come back soon."""
    for _ in range(10):
        try:
            await reconcile({"services": svc}, str(key))
        except Retry:
            continue
        return
    pytest.fail(f"the job of {key} never settled: it still asks to come back")


async def queued(svc: Services) -> list[str]:
    jobs = await svc.queue.queued_jobs(queue_name=queue.queue_name(svc.config.redis.key_prefix))
    return sorted(job.job_id or "" for job in jobs)


async def deployed(svc: Services) -> None:
    await deliver_opened(svc)
    await settle(svc)
    record = await svc.store.load(KEY)
    assert record is not None and record.get("phase") == Phase.RUNNING


async def test_after_a_redis_wipe_one_sweep_rebuilds_the_record_and_nothing_is_applied_again(
    svc: Services,
) -> None:
    await deliver_opened(svc)
    await svc.store.update(KEY, {plan.OVERRIDES: plan.encode_overrides({"GREETING": "hi"})})
    await settle(svc)
    prov = prov_of(svc)
    assert len(prov.applied) == 1 and prov.applied[0].overrides == (("GREETING", "hi"),)
    await svc.queue.flushall()

    report = await sweep(svc)
    assert [(a.kind, a.key) for a in report.actions] == [("rebuild", KEY)]
    assert report.queued == {KEY} and await queued(svc) == [queue.job_id(KEY)]
    record = await svc.store.load(KEY)
    assert record is not None
    # Deploying until its job sees the rollout ready: the namespace does not say.
    assert record.get("sha") == SHA1 and record.get("phase") == Phase.DEPLOYING
    assert record.get("staging_url") == prov.applied[0].url
    assert plan.overrides(record.fields) == {"GREETING": "hi"}

    await settle(svc)
    record = await svc.store.load(KEY)
    assert record is not None and record.get("handled") == str(record.generation)
    assert record.get("phase") == Phase.RUNNING
    assert "get_pull" in host_of(svc).calls  # the job ran, and asked the host
    assert len(prov.applied) == 1  # nothing redeployed
    assert prov.destroyed == []
    assert await sweep(svc) == await sweep(svc)  # and the next sweeps find it in step
    assert (await sweep(svc)).actions == ()


async def test_a_lost_closed_webhook_is_repaired_by_the_reconcile_job_the_sweep_queues(
    svc: Services,
) -> None:
    await deployed(svc)
    host_of(svc).close(2)  # closed on the host; the webhook never arrived

    report = await sweep(svc)

    assert [(a.kind, a.key) for a in report.actions] == [("enqueue", KEY)]
    assert prov_of(svc).destroyed == []  # the sweep itself deletes nothing
    await settle(svc)
    assert prov_of(svc).destroyed == [prov_of(svc).applied[0].namespace]
    record = await svc.store.load(KEY)
    assert record is not None and record.get("phase") == Phase.GONE


async def test_a_host_error_during_the_sweep_changes_nothing_and_is_reported(
    svc: Services,
) -> None:
    await deployed(svc)
    host_of(svc).close(2)
    host_of(svc).fail_next.append(TemporaryError("list pulls: HTTP 500: Server Error"))

    report = await sweep(svc)

    assert report.failed and report.actions == () and report.skipped == (KEY,)
    assert any("HTTP 500" in line for line in report.lines())
    assert await queued(svc) == []
    assert prov_of(svc).destroyed == []


async def test_a_request_missing_from_the_list_is_asked_about_and_kept_while_open(
    svc: Services,
) -> None:
    """An empty (or short) page cannot delete: the job asks the host about the request."""
    await deployed(svc)

    class EmptyList(RecordingHost):
        async def open_pulls(self, repo: RepoRef) -> list:  # type: ignore[type-arg]
            return []

    empty = EmptyList(pulls=host_of(svc).pulls)
    svc.hosts = {"github": empty}

    report = await sweep(svc)
    assert [a.kind for a in report.actions] == ["enqueue"]
    await settle(svc)
    assert prov_of(svc).destroyed == [] and "get_pull" in empty.calls
    record = await svc.store.load(KEY)
    assert record is not None and record.get("phase") == Phase.RUNNING


async def test_an_open_request_without_a_record_gets_its_staging(svc: Services) -> None:
    report = await sweep(svc)

    assert [(a.kind, a.key) for a in report.actions] == [("create", KEY)]
    await settle(svc)
    assert [t.sha for t in prov_of(svc).applied] == [SHA1]


async def test_a_cluster_that_cannot_be_listed_stops_the_sweep_before_anything(
    svc: Services,
) -> None:
    prov_of(svc).list_error = TemporaryError("list Namespace in the cluster: HTTP 503")

    report = await sweep(svc)

    assert report.failed and report.actions == ()
    assert report.lines() == [
        "sweep failed, nothing changed: cannot list the stagings in the cluster: "
        "list Namespace in the cluster: HTTP 503"
    ]
    assert host_of(svc).calls == [] and await svc.store.keys() == []


async def test_an_orphan_is_reported_and_kept(svc: Services) -> None:
    orphan = ClusterStaging(StagingKey("github", 7, 1), "staging-gone-pr-1", "acme/gone", SHA3, "")
    prov_of(svc).stagings[orphan.namespace] = orphan

    report = await sweep(svc)

    assert report.orphans == (orphan,)
    assert [a.key for a in report.actions] == [KEY]  # the served request's record only
    assert prov_of(svc).destroyed == [] and await svc.store.load(orphan.key) is None


def test_the_worker_sweeps_every_interval_with_one_job_id_or_not_at_all(redis_url: str) -> None:
    config = make_config(redis_url)
    assert sweep_schedule(config) == []  # interval 0
    (job,) = sweep_schedule(replace(config, sweep=SweepConfig(interval=300)))
    assert job.job_id == "sweep:stagingbot-test" and job.max_tries == 1
    assert job.minute == set(range(0, 60, 5)) and job.second == {0}


async def test_the_worker_runs_the_sweep_when_its_cron_time_comes(svc: Services) -> None:
    svc.config = replace(svc.config, sweep=SweepConfig(interval=60))
    worker = make_worker(
        svc.config,
        ArqRedis(ConnectionPool.from_url(svc.config.redis.url)),
        svc,
        burst=True,
        handle_signals=False,
    )
    (job,) = worker.cron_jobs
    job.next_run = datetime.now(tz=UTC)  # due now rather than at the next full minute

    await worker.main()
    await worker.close()

    assert "open_pulls" in host_of(svc).calls
    record = await svc.store.load(KEY)  # the sweep created the record, the job built it
    assert record is not None and [t.sha for t in prov_of(svc).applied] == [SHA1]
