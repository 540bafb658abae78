"""Duplicate and out-of-order deliveries: each delivery has one effect, and every staging ends
at its request's current head, deployed once."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx
import pytest

from tests.fakes.github import FakeGitHub
from tests.fakes.kube import FakeKube
from tests.helpers import REPO, body_of
from tests.reliability import secrets_for_scan as secrets
from tests.reliability.conftest import LeakScan
from tests.reliability.harness import (
    IMAGE,
    Bot,
    applies_to,
    check_runs_by_sha,
    eventually,
    opened,
    pushed,
    record,
    running_bot,
    settled,
    sha_for,
    web_image,
)

pytestmark = pytest.mark.reliability
NUMBERS = [2, 3, 4]
COPIES = 4  # each delivery arrives this many times (GitHub's redeliveries, a proxy's retries)


def deliveries() -> list[tuple[str, bytes]]:
    """opened + two pushes per request, each with its own delivery id, in a shuffled order:
    a push may arrive before the opening and the newer push before the older."""
    out = []
    for number in NUMBERS:
        payloads = [opened(number, sha_for(number, 0))]
        payloads += [pushed(number, sha_for(number, push)) for push in (1, 2)]
        for index, payload in enumerate(payloads):
            out.append((f"dup-{number}-{index}", body_of(payload)))
    return out


async def send_all(bot: Bot, batch: list[tuple[str, bytes]]) -> list[int]:
    async with httpx.AsyncClient(base_url=bot.url, timeout=20) as client:

        async def send(delivery: str, body: bytes) -> int:
            headers = secrets.github_headers(body, "pull_request", delivery=delivery)
            response = await client.post("/webhooks/github", content=body, headers=headers)
            return response.status_code

        return await asyncio.gather(*(send(d, b) for d, b in batch))


async def test_duplicates_and_late_pushes_deploy_each_request_once_at_its_current_head(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path, leaks: LeakScan
) -> None:
    for number in NUMBERS:  # GitHub already has the last push as head
        github.add_pull(REPO, number, sha_for(number, 2), branch=f"feature-{number}")
    batch = deliveries() * COPIES
    random.Random(8).shuffle(batch)

    async with running_bot(redis_url, github, kube, tmp_path) as bot:
        assert set(await send_all(bot, batch)) == {202}
        for number in NUMBERS:
            head = sha_for(number, 2)
            await eventually(
                lambda n=number: web_image(kube, n) == f"{IMAGE}:{sha_for(n, 2)}",
                f"#{number} deployed at its head",
            )
            await eventually(
                lambda h=head: any(
                    run["conclusion"] == "success" for run in github.check_runs(REPO, h)
                ),
                f"#{number}: green check on its head",
            )
        await eventually(lambda: settled(bot), "queue empty")
        applies = {number: applies_to(kube, number) for number in NUMBERS}

        # The same deliveries again, long after: GitHub's "redeliver" button.
        # The 202 means the jobs are queued (web: stored and enqueued in one script), so
        # `settled` sees them until they are done; no pause needed before looking.
        assert set(await send_all(bot, deliveries())) == {202}
        await eventually(lambda: settled(bot), "queue empty again")

        for number in NUMBERS:
            fields = await record(bot, number)
            assert fields["phase"] == "running" and fields["sha"] == sha_for(number, 2)
            assert fields["generation"] == "3"  # three distinct deliveries, whatever the copies
            assert len(github.comments(REPO, number)) == 1
            assert applies[number] == 1, f"#{number} deployed {applies[number]} times"
            assert applies_to(kube, number) == 1
            for push in (0, 1):  # a commit that was no longer the head never got a check
                assert github.check_runs(REPO, sha_for(number, push)) == []
        assert all(count == 1 for count in check_runs_by_sha(github).values())
        assert sorted(check_runs_by_sha(github)) == sorted(sha_for(n, 2) for n in NUMBERS)
        await leaks.add_bot(bot, github, NUMBERS)
