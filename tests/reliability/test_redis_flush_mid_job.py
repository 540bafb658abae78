"""Redis wiped *during* a job (docs/reliability.md, findings 3 and 4): the job's last writes
leave a partial record, which one sweep rebuilds from the cluster like a missing one; and a
staging rebuilt while its rollout goes on stays `deploying` until its pods are ready."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.fakes.github import FakeGitHub
from tests.fakes.kube import FakeKube
from tests.helpers import JOB_WRITES, REPO
from tests.reliability.conftest import LeakScan
from tests.reliability.harness import (
    PREFIX,
    Bot,
    applies_to,
    eventually,
    namespace_of,
    opened,
    pushed,
    record,
    running_bot,
    settled,
    sha_for,
    staging_key,
    sweep_once,
)

pytestmark = pytest.mark.reliability
NUMBER = 2


async def test_a_partial_record_left_by_a_job_is_rebuilt_without_applying_again(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path, leaks: LeakScan
) -> None:
    head = sha_for(NUMBER, 0)
    github.add_pull(REPO, NUMBER, head, branch=f"feature-{NUMBER}")
    async with running_bot(redis_url, github, kube, tmp_path) as bot:
        async with httpx.AsyncClient(base_url=bot.url, timeout=20) as client:
            await bot.deliver(client, opened(NUMBER, head))
        before = await eventually(lambda: _settled_running(bot), "#2 running")
        applied, mark = applies_to(kube, NUMBER), len(github.requests)
        await bot.redis.flushall()
        # The job's last round, after the wipe: no `key`, no desired state, no commit.
        name = f"{PREFIX}:staging:{staging_key(NUMBER)}"
        await bot.redis.hset(name, mapping={k: before[k] for k in JOB_WRITES if k in before})

        report = await asyncio.to_thread(sweep_once, bot)

        assert f"rebuild {staging_key(NUMBER)}: only a partial record" in report, report
        fields = await record(bot, NUMBER)  # complete, with the ids of what is on the request
        assert fields["key"] == staging_key(NUMBER) and fields["desired_sha"] == head
        assert fields["sha"] == head and fields["repo"] == REPO
        for kept in ("comment_id", "check_id", "deployment_id"):
            assert fields[kept] == before[kept], kept
        await eventually(lambda: settled(bot), "settled after the sweep")
        fields = await record(bot, NUMBER)
        assert fields["phase"] == "running" and fields["handled"] == fields["generation"]
        assert applies_to(kube, NUMBER) == applied  # not applied a second time
        assert kube.count("DELETE") == 0
        after = github.requests[mark:]
        checks = [r.body for r in after if "/check-runs" in r.path and r.method != "GET"]
        assert not [c for c in checks if c.get("status") == "in_progress"], checks
        comments = [r.body for r in after if "/comments" in r.path and r.method != "GET"]
        assert not [c for c in comments if "being deployed" in str(c)], comments
        assert len(github.check_runs(REPO, head)) == 1
        assert len(github.comments(REPO, NUMBER)) == 1
        assert "done: 0 to reconcile" in await asyncio.to_thread(sweep_once, bot)
        leaks.add("stagingbot sweep output", report)
        await leaks.add_bot(bot, github, [NUMBER])


async def test_a_staging_rebuilt_during_its_rollout_is_running_only_once_ready(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path, leaks: LeakScan
) -> None:
    first, second = sha_for(NUMBER, 0), sha_for(NUMBER, 1)
    github.add_pull(REPO, NUMBER, first, branch=f"feature-{NUMBER}")
    async with running_bot(redis_url, github, kube, tmp_path) as bot:
        async with httpx.AsyncClient(base_url=bot.url, timeout=20) as client:
            await bot.deliver(client, opened(NUMBER, first))
            await eventually(lambda: _settled_running(bot), "#2 running")
            kube.never_ready(second)  # its pods never get ready: the rollout is held
            github.set_head(REPO, NUMBER, second)
            await bot.deliver(client, pushed(NUMBER, second))
        await eventually(lambda: _deploying(bot, second), "#2 rolling out")
        applied = applies_to(kube, NUMBER)
        # Wherever the wipe falls (between two rollout checks, or during one: its job then
        # leaves a partial record), the sweep rebuilds the record from the cluster.
        await bot.redis.flushall()
        mark = len(github.requests)
        report = await asyncio.to_thread(sweep_once, bot)

        assert f"rebuild {staging_key(NUMBER)}" in report, report
        space = namespace_of(kube, NUMBER)
        assert space is not None
        pods = f"/namespaces/{space['metadata']['name']}/pods"
        looked = kube.count("GET", pods)
        await eventually(lambda: _handled(bot), "the job ran on the rebuilt record")
        await asyncio.sleep(0.5)  # a few more of its rounds (rollout_poll is 0.1 s)
        fields = await record(bot, NUMBER)
        assert fields["phase"] == "deploying" and fields["sha"] == second
        assert [r["status"] for r in github.check_runs(REPO, second)] == ["in_progress"]
        assert not _green_since(github, mark), "a green check before the pods are ready"
        assert kube.count("GET", pods) > looked  # it follows the rollout

        kube.clear_faults()  # the pods get ready
        await eventually(lambda: _running(bot), "#2 running at the pushed commit")
        await eventually(lambda: settled(bot), "settled")
        (check,) = github.check_runs(REPO, second)
        assert (check["status"], check["conclusion"]) == ("completed", "success")
        assert applies_to(kube, NUMBER) == applied  # followed, never applied again
        assert kube.count("DELETE") == 0
        assert len(github.comments(REPO, NUMBER)) == 1
        leaks.add("stagingbot sweep output", report)
        await leaks.add_bot(bot, github, [NUMBER])


async def _settled_running(bot: Bot) -> dict[str, str] | None:
    fields = await record(bot, NUMBER)
    return fields if fields.get("phase") == "running" and await settled(bot) else None


async def _handled(bot: Bot) -> bool:
    fields = await record(bot, NUMBER)
    return bool(fields.get("generation")) and fields.get("handled") == fields["generation"]


async def _running(bot: Bot) -> bool:
    return (await record(bot, NUMBER)).get("phase") == "running"


async def _deploying(bot: Bot, sha: str) -> bool:
    fields = await record(bot, NUMBER)
    return fields.get("phase") == "deploying" and fields.get("sha") == sha


def _green_since(github: FakeGitHub, mark: int) -> list[object]:
    return [
        r.body
        for r in github.requests[mark:]
        if "/check-runs" in r.path
        and r.method != "GET"
        and isinstance(r.body, dict)
        and r.body.get("conclusion") == "success"
    ]
