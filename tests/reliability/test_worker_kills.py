"""Workers killed with SIGKILL at random points while they reconcile: after the storm every
staging converges, nothing is left behind, and nothing a person sees happened twice."""

from __future__ import annotations

import asyncio
import random
import re
import time
from pathlib import Path

import httpx
import pytest

from bot.naming import MANAGED_BY
from tests.fakes.github import FakeGitHub
from tests.fakes.kube import FakeKube
from tests.helpers import REPO
from tests.reliability.conftest import LeakScan
from tests.reliability.harness import (
    IMAGE,
    Bot,
    Proc,
    check_runs_by_sha,
    closed,
    eventually,
    namespace_of,
    opened,
    pushed,
    record,
    running_bot,
    settled,
    sha_for,
    sweep_once,
    web_image,
)

pytestmark = pytest.mark.reliability
NUMBERS = list(range(2, 8))
CLOSED = 7  # closed during the storm: its staging must be torn down, not orphaned
KILLS = 10
SEED = 20261127


class Storm:
    """Pushes to random requests while workers are killed at random moments."""

    def __init__(self, bot: Bot, github: FakeGitHub, rng: random.Random) -> None:
        self.bot, self.github, self.rng = bot, github, rng
        self.heads = {number: sha_for(number, 0) for number in NUMBERS}
        self.pushes = {number: 0 for number in NUMBERS}
        self.kills_in_flight = 0

    async def events(self, client: httpx.AsyncClient, until: asyncio.Event) -> None:
        for number in NUMBERS:
            await self.bot.deliver(client, opened(number, self.heads[number]))
        sent = 0
        while not until.is_set():
            await asyncio.sleep(self.rng.uniform(0.1, 0.4))
            sent += 1
            if sent == 8:
                self.github.close_pull(REPO, CLOSED)
                await self.bot.deliver(client, closed(CLOSED, self.heads[CLOSED]))
                continue
            number = self.rng.choice([n for n in NUMBERS if n != CLOSED or sent < 8])
            self.pushes[number] += 1
            self.heads[number] = sha_for(number, self.pushes[number])
            self.github.set_head(REPO, number, self.heads[number])
            await self.bot.deliver(client, pushed(number, self.heads[number]))

    async def kills(self, done: asyncio.Event) -> None:
        """Each kill hits a worker whose log shows a reconcile job started and not ended."""
        for _ in range(KILLS):
            victim = await self._busy_worker(within=5.0)
            await asyncio.sleep(self.rng.uniform(0.0, 0.03))  # somewhere inside the job
            if victim is None:  # nothing in flight for 5 s: kill a ready worker anyway
                victim = self.rng.choice(self.bot.workers())
            self.bot.kill(victim)
            self.kills_in_flight += jobs_in_flight(victim) > 0
            self.bot.start_worker()
        done.set()

    async def _busy_worker(self, within: float) -> Proc | None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            busy = [p for p in self.bot.workers() if jobs_in_flight(p) > 0]
            if busy:
                return self.rng.choice(busy)
            await asyncio.sleep(0.005)
        return None


def jobs_in_flight(proc: Proc) -> int:
    """Reconcile jobs the worker's log shows started (arq's `→`) and not yet ended."""
    log = proc.log.read_text(errors="replace")
    started = len(re.findall(r"→ reconcile:", log))
    ended = len(re.findall(r"[←↻!⊘] reconcile:", log))
    return started - ended


async def test_workers_killed_mid_reconcile_leave_every_staging_converged_and_reported_once(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path, leaks: LeakScan
) -> None:
    for number in NUMBERS:
        github.add_pull(REPO, number, sha_for(number, 0), branch=f"feature-{number}")
    async with running_bot(redis_url, github, kube, tmp_path, workers=2) as bot:
        storm = Storm(bot, github, random.Random(SEED))
        done = asyncio.Event()
        async with httpx.AsyncClient(base_url=bot.url, timeout=20) as client:
            await asyncio.gather(storm.events(client, done), storm.kills(done))
        assert bot.kills == KILLS
        assert storm.kills_in_flight >= KILLS // 2, storm.kills_in_flight  # mostly mid-job

        for number in NUMBERS:
            if number == CLOSED:
                continue
            head = storm.heads[number]
            await eventually(
                lambda n=number, h=head: web_image(kube, n) == f"{IMAGE}:{h}",
                f"#{number} runs its head {head[:7]}",
                within=40,
            )
        await eventually(lambda: namespace_of(kube, CLOSED) is None, "closed #7 torn down")
        await eventually(lambda: settled(bot), "no job queued or running", within=40)

        for number in NUMBERS:
            fields = await record(bot, number)
            comments = github.comments(REPO, number)
            if number == CLOSED:
                # Closed before it was ever deployed, it goes without a word; else the
                # comment says it is gone.
                assert fields["phase"] == "gone"
                stale = [c["body"] for c in comments if "gone" not in c["body"]]
                assert stale == [], (fields, stale)
                assert len(comments) <= 1
                continue
            (comment,) = comments  # one sticky comment, never a second
            head = storm.heads[number]
            assert (fields["phase"], fields["sha"]) == ("running", head), (number, fields)
            assert head[:7] in comment["body"] and "running" in comment["body"].lower()
            (run,) = github.check_runs(REPO, head)
            assert (run["status"], run["conclusion"]) == ("completed", "success")
        duplicated = {sha: n for sha, n in check_runs_by_sha(github).items() if n > 1}
        assert not duplicated, f"more than one check run on a commit: {duplicated}"
        per_commit: dict[tuple[str, str], int] = {}
        for deployment in github.deployments(REPO):
            pair = (deployment["environment"], deployment["sha"])
            per_commit[pair] = per_commit.get(pair, 0) + 1
        assert all(n == 1 for n in per_commit.values()), per_commit

        # Nothing orphaned: the cluster holds exactly the open requests' stagings...
        managed = [ns for ns in kube.objects("Namespace") if MANAGED_BY in ns["metadata"]["labels"]]
        assert len(managed) == len(NUMBERS) - 1
        # ...and a sweep, which compares the cluster, GitHub and Redis, finds nothing to repair.
        swept = await asyncio.to_thread(sweep_once, bot)
        assert "done: 0 to reconcile" in swept, swept
        leaks.add("stagingbot sweep output", swept)
        await leaks.add_bot(bot, github, NUMBERS)
    print(f"\nkills: {bot.kills}, of which with a reconcile in flight: {storm.kills_in_flight}")
