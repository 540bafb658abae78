"""End to end: the sweep with the real clients against the fake GitHub and Kubernetes APIs,
the running bot's worker doing the reconcile jobs it queues, and a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import naming, queue
from bot.config import Config
from bot.model import Phase, StagingKey
from bot.services import Services
from bot.sweep import SweepReport, sweep
from bot.web import redis_client
from bot.worker import build_services, close_services
from handlers import plan
from tests.fakes.github import FakeGitHub
from tests.fakes.kube import FakeKube
from tests.helpers import REPO, REPO_ID, pr_payload
from tests.integration.test_end_to_end import (
    NAMESPACE,
    SHA1,
    URL,
    bot_config,
    completed,
    deliver,
    eventually,
    running_bot,
)

KEY = StagingKey("github", REPO_ID, 2)
KEY3 = StagingKey("github", REPO_ID, 3)
SHA3 = "3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f"
APPLY = "application/apply-patch+yaml"


@contextlib.asynccontextmanager
async def sweeper(config: Config) -> AsyncIterator[Services]:
    """Clients like `stagingbot sweep` builds, beside the running bot."""
    redis = redis_client(config)
    services = await build_services(config, redis)
    try:
        yield services
    finally:
        await close_services(services)
        await redis.aclose(close_connection_pool=True)


async def settled_as(svc: Services, key: StagingKey, phase: Phase) -> bool:
    """The staging in `phase`, every event handled, and no job queued or running (a job
    stays in the queue while it runs, so its last writes are done too)."""
    record = await svc.store.load(key)
    return (
        record is not None
        and record.get("phase") == phase
        and not await svc.store.needs_work(key)
        # The queue's length, not arq's queued_jobs(): that reads each job after listing
        # them and fails when the worker finishes one in between.
        and not await svc.queue.zcard(queue.queue_name("stagingbot-test"))
    )


async def running(svc: Services, key: StagingKey) -> bool:
    return await settled_as(svc, key, Phase.RUNNING)


async def wait_settled(svc: Services, key: StagingKey, phase: Phase) -> None:
    for _ in range(500):
        if await settled_as(svc, key, phase):
            return
        await _sleep()
    pytest.fail(f"{key} never settled as {phase.value}")


async def wait_running(svc: Services, key: StagingKey) -> None:
    await wait_settled(svc, key, Phase.RUNNING)


async def _sleep() -> None:
    await asyncio.sleep(0.02)


def orphan_namespace() -> dict[str, object]:
    """A staging of a repository this bot no longer serves."""
    key = StagingKey("github", 4242, 7)
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "staging-retired-pr-7",
            "labels": {**naming.selector_labels(key, "default"), naming.LABEL_SHA: SHA3},
            "annotations": {naming.ANNOTATION_REPO: "acme/retired"},
        },
    }


async def test_a_lost_close_is_repaired_a_host_outage_deletes_nothing_orphans_are_kept(
    redis_url: str,
    github: FakeGitHub,
    kube: FakeKube,
    tmp_path: Path,
) -> None:
    config = bot_config(redis_url, github, kube, tmp_path, app=True)
    kube.add(orphan_namespace())
    async with running_bot(config) as bot, sweeper(config) as svc:
        await deliver(bot, pr_payload("opened"))
        await eventually(lambda: completed(github.check_runs(REPO, SHA1)), "staging running")
        await wait_running(svc, KEY)
        github.close_pull(REPO, 2)  # and the webhook is lost

        # The host answers 500: nothing is deleted, the failure is reported.
        github.fail_next(500, method="GET", path=r"/pulls$")
        report = await sweep(svc)
        assert report.failed and report.actions == () and KEY in report.skipped
        assert any("HTTP 500" in line for line in report.lines())
        assert [o.namespace for o in report.orphans] == ["staging-retired-pr-7"]
        assert kube.count("DELETE") == 0

        # Next time the host answers: the reconcile job asks about #2 and tears it down.
        report = await sweep(svc)
        assert not report.failed
        assert [(a.kind, a.key) for a in report.actions] == [("enqueue", KEY)]
        await eventually(lambda: kube.namespace(NAMESPACE) is None, "namespace deleted")
        await eventually(lambda: "gone" in github.comments(REPO, 2)[0]["body"], "says gone")
        assert kube.namespace("staging-retired-pr-7") is not None  # the orphan is kept


async def test_after_flushall_one_sweep_rebuilds_every_record_without_a_new_apply(
    redis_url: str,
    github: FakeGitHub,
    kube: FakeKube,
    tmp_path: Path,
) -> None:
    config = bot_config(redis_url, github, kube, tmp_path, app=True)
    async with running_bot(config) as bot, sweeper(config) as svc:
        await deliver(bot, pr_payload("opened"))
        await wait_running(svc, KEY)
        # What `/staging set GREETING=hi` writes, then the job it queues.
        await svc.store.desire(KEY, {plan.OVERRIDES: plan.encode_overrides({"GREETING": "hi"})})
        await queue.enqueue_reconcile(svc.queue, "stagingbot-test", KEY)
        await eventually(
            lambda: (kube.get("ConfigMap", NAMESPACE, "stagingbot-overrides") or {}).get("data"),
            "overrides applied",
        )
        await wait_running(svc, KEY)
        applies = kube.count("PATCH", content_type=APPLY)

        await svc.queue.flushall()
        github.add_pull(REPO, 3, SHA3, branch="more")  # opened while its webhook was lost
        report = await sweep(svc)

        assert [(a.kind, a.key) for a in report.actions] == [("rebuild", KEY), ("create", KEY3)]
        record = await svc.store.load(KEY)
        assert record is not None
        assert (record.get("sha"), record.get("staging_url")) == (SHA1, URL)
        assert plan.overrides(record.fields) == {"GREETING": "hi"}
        await wait_running(svc, KEY3)
        await wait_running(svc, KEY)
        applied_to = [r.path for r in kube.requests if r.content_type.startswith(APPLY)]
        assert kube.count("PATCH", content_type=APPLY) > applies  # #3 was built...
        assert not any(f"/namespaces/{NAMESPACE}/" in path for path in applied_to[applies:])
        assert not any(path.endswith(f"/namespaces/{NAMESPACE}") for path in applied_to[applies:])
        assert _in_step(await sweep(svc))  # ...and nothing else is left to repair


def _in_step(report: SweepReport) -> bool:
    return not report.failed and report.actions == ()
