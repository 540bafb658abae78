"""Redis wiped under a running job (docs/reliability.md, findings 3 and 4): the record the
job leaves is partial, and a staging rebuilt from the cluster is said running only once its
rollout is ready. Over a real Redis with the recording fakes."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable

import pytest
from arq import Retry

from bot.hosts.github_sansio import parse_delivery
from bot.model import CheckReport, CheckState, Phase, RepoRef, Rollout, StagingKey
from bot.services import Services
from bot.store import StagingRecord
from bot.sweep import sweep
from bot.sweep_plan import KEPT
from bot.web import update_for
from handlers import plan
from handlers.reconcile import reconcile
from tests.fakes.recording import host_of, prov_of
from tests.helpers import JOB_WRITES, PR_HEAD, REPO_ID, pr_payload

KEY = StagingKey("github", REPO_ID, 2)
SLOW = Rollout(ready=False, reason="waiting for deployment web: 0/1 available")


async def deliver_opened(svc: Services) -> None:
    (event,) = parse_delivery("pull_request", pr_payload("opened")).events
    await svc.store.record_delivery(f"d-{time.monotonic_ns()}", 60, [update_for(event, 0)])


async def settle(svc: Services) -> None:
    for _ in range(10):
        try:
            await reconcile({"services": svc}, str(KEY))
        except Retry:
            continue
        return
    pytest.fail("the job never settled: it still asks to come back")


async def one_round(svc: Services) -> None:
    """One run of the job, which may ask to come back (a rollout it follows)."""
    with contextlib.suppress(Retry):
        await reconcile({"services": svc}, str(KEY))


async def loaded(svc: Services) -> StagingRecord:
    record = await svc.store.load(KEY)
    assert record is not None
    return record


def watch_checks(svc: Services) -> list[CheckState]:
    """Every state the staging check is written with from now on."""
    host, seen = host_of(svc), []
    report_check: Callable[..., Awaitable[int | None]] = host.report_check

    async def recording(
        repo: RepoRef, sha: str, check: CheckReport, *args: object, **kwargs: object
    ) -> int | None:
        seen.append(check.state)
        return await report_check(repo, sha, check, *args, **kwargs)

    host.report_check = recording  # type: ignore[method-assign]
    return seen


async def test_a_partial_record_is_rebuilt_keeping_its_ids_and_nothing_is_applied_again(
    svc: Services,
) -> None:
    await deliver_opened(svc)
    await settle(svc)
    before = await loaded(svc)
    assert before.get("phase") == Phase.RUNNING and before.get("comment_id")
    await svc.queue.flushall()
    # The job's last round, after the wipe: a record without `key` or desired state.
    written = {name: before.get(name) for name in JOB_WRITES if name in before.fields}
    await svc.store.update(KEY, written)
    partial = await loaded(svc)
    assert partial.partial
    checks, comments = watch_checks(svc), len(host_of(svc).comments)

    report = await sweep(svc)

    (action,) = report.actions
    assert (action.kind, action.key) == ("rebuild", KEY), report.lines()  # was: refresh
    record = await loaded(svc)
    assert not record.partial and record.get("key") == str(KEY)
    assert record.get("desired_sha") == PR_HEAD and record.get("sha") == PR_HEAD
    assert record.get("repo") == before.get("repo") and record.generation == 1
    assert plan.last_applied(record) == plan.applied_signature(PR_HEAD, record)
    for name in ("comment_id", "check_id", "check_sha", "deployment_id", "reported"):
        assert record.get(name) == before.get(name), name  # kept: edited, not written again
    assert record.get("handled") == "" and record.get("check_shas") == ""  # not kept
    assert record.get("phase") == Phase.DEPLOYING

    await settle(svc)
    record = await loaded(svc)
    assert record.get("phase") == Phase.RUNNING
    assert record.get("handled") == str(record.generation)
    assert len(prov_of(svc).applied) == 1  # not applied a second time
    assert CheckState.IN_PROGRESS not in checks  # the check never went back to in progress
    assert host_of(svc).check_on(PR_HEAD).state is CheckState.SUCCESS
    assert len(host_of(svc).comments) == comments == 1
    assert "being deployed" not in host_of(svc).comments[int(before.get("comment_id"))]
    assert (await sweep(svc)).actions == ()  # and nothing is left to repair


async def test_the_rebuild_waits_for_a_webhook_record_written_meanwhile(svc: Services) -> None:
    """A complete record (an event's) is never replaced; a partial one is, keeping only
    the ids named."""
    partial = {"phase": "running", "comment_id": "7", "handled": "4", "check_shas": "abc"}
    await svc.store.update(KEY, partial)

    assert await svc.store.create(KEY, {"repo": "a/b", "phase": "deploying"}, KEPT)
    record = await loaded(svc)
    assert record.fields == {
        "key": str(KEY),
        "repo": "a/b",
        "phase": "deploying",
        "comment_id": "7",
        "generation": "1",
    }
    assert KEY in await svc.store.keys()
    assert not await svc.store.create(KEY, {"repo": "c/d"}, KEPT)  # complete: left as it is
    assert (await loaded(svc)).get("repo") == "a/b"


async def test_a_staging_rebuilt_while_its_rollout_goes_on_is_running_only_once_ready(
    svc: Services,
) -> None:
    await deliver_opened(svc)
    prov_of(svc).rollout = SLOW
    for _ in range(2):  # applied, then one look at the rollout: not ready
        await one_round(svc)
    assert (await loaded(svc)).get("phase") == Phase.DEPLOYING
    await svc.queue.flushall()  # between two of its rollout checks
    checks = watch_checks(svc)

    report = await sweep(svc)
    assert [(a.kind, a.key) for a in report.actions] == [("rebuild", KEY)]
    record = await loaded(svc)
    assert record.get("phase") == Phase.DEPLOYING  # the namespace alone: not running
    assert float(record.get("deadline")) > time.time()
    for _ in range(3):
        await one_round(svc)  # follows the rollout: still not ready
    assert (await loaded(svc)).get("phase") == Phase.DEPLOYING
    assert CheckState.SUCCESS not in checks  # no green check while the pods are not ready

    prov_of(svc).rollout = Rollout(ready=True)
    await settle(svc)
    assert (await loaded(svc)).get("phase") == Phase.RUNNING
    assert host_of(svc).check_on(PR_HEAD).state is CheckState.SUCCESS
    assert len(prov_of(svc).applied) == 1  # followed, never applied again
