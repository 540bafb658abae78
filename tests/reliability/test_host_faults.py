"""GitHub answering 500, then 429, then 403 secondary-rate-limit (with Retry-After) for a
stretch: the reports arrive once it recovers, without duplicates, and nothing is deleted."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.fakes.github import FakeGitHub
from tests.fakes.kube import FakeKube
from tests.helpers import REPO
from tests.reliability import secrets_for_scan as secrets
from tests.reliability.conftest import LeakScan
from tests.reliability.harness import (
    IMAGE,
    Bot,
    applies_to,
    check_runs_by_sha,
    eventually,
    namespace_of,
    opened,
    pushed,
    record,
    running_bot,
    settled,
    sha_for,
    web_image,
)

pytestmark = pytest.mark.reliability
SECONDARY = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
OUTAGES: list[tuple[int, dict[str, str], dict[str, str] | None]] = [
    (500, {}, None),
    (429, {"Retry-After": "1"}, {"message": "API rate limit exceeded for installation."}),
    (403, {"Retry-After": "1"}, {"message": SECONDARY}),
]


async def test_a_host_outage_and_rate_limits_delay_reports_without_duplicates_or_deletions(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path, leaks: LeakScan
) -> None:
    github.add_pull(REPO, 2, sha_for(2, 0), branch="feature-2")
    github.add_pull(REPO, 4, sha_for(4, 0), branch="feature-4")
    auth = {"Authorization": f"Bearer {secrets.API_TOKEN}"}
    async with (
        running_bot(redis_url, github, kube, tmp_path) as bot,
        httpx.AsyncClient(base_url=bot.url, timeout=20) as client,
    ):
        for number in (2, 4):
            await bot.deliver(client, opened(number, sha_for(number, 0)))
        await eventually(
            lambda: all(web_image(kube, n) == f"{IMAGE}:{sha_for(n, 0)}" for n in (2, 4)),
            "both deployed",
        )
        await eventually(lambda: settled(bot), "both running")
        before = len(github.requests)

        # During the stretch: a push to #2, a new request #3, and a sweep asked for.
        github.set_head(REPO, 2, sha_for(2, 1))
        github.add_pull(REPO, 3, sha_for(3, 0), branch="feature-3")
        for number, (status, headers, body) in enumerate(OUTAGES):
            github.start_outage(status, headers, body)
            if number == 0:
                await bot.deliver(client, pushed(2, sha_for(2, 1)))
                await bot.deliver(client, opened(3, sha_for(3, 0)))
                assert (await client.post("/api/sweep", headers=auth)).status_code == 202
            # Each kind lasts until the bot has met it at least twice (its retries back off).
            await eventually(
                lambda s=status: sum(r.status == s for r in github.requests[before:]) >= 2,
                f"the bot met HTTP {status}",
            )
        github.end_outage()
        assert kube.count("DELETE") == 0

        await eventually(
            lambda: any(
                r["conclusion"] == "success" for r in github.check_runs(REPO, sha_for(2, 1))
            ),
            "#2: green check on the pushed commit",
            within=40,
        )
        await eventually(
            lambda: any(
                r["conclusion"] == "success" for r in github.check_runs(REPO, sha_for(3, 0))
            ),
            "#3: green check",
            within=40,
        )
        await eventually(lambda: settled(bot), "settled")
        for number in (2, 3, 4):
            comments = await eventually(
                lambda n=number: [c for c in github.comments(REPO, n) if "running" in c["body"]],
                f"#{number}: comment says running",
            )
            assert len(comments) == len(github.comments(REPO, number)) == 1
            assert (await record(bot, number))["phase"] == "running"
        assert web_image(kube, 2) == f"{IMAGE}:{sha_for(2, 1)}"
        assert all(n == 1 for n in check_runs_by_sha(github).values()), check_runs_by_sha(github)
        assert kube.count("DELETE") == 0 and namespace_of(kube, 4) is not None  # nothing deleted
        assert applies_to(kube, 4) == 1  # the untouched staging was not redeployed either
        await leaks.add_bot(bot, github, [2, 3, 4])


async def test_an_answer_the_client_cannot_use_is_retried_with_backoff_not_in_a_loop(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path, leaks: LeakScan
) -> None:
    """A proxy answering 200 with a body that is no pull request: PyGithub raises an error
    the bot's mapping does not know. The job backs off and says why; it does not spin."""
    github.add_pull(REPO, 2, sha_for(2, 0), branch="feature-2")
    async with (
        running_bot(redis_url, github, kube, tmp_path) as bot,
        httpx.AsyncClient(base_url=bot.url, timeout=20) as client,
    ):
        github.start_outage(200, body={"message": "Welcome to the proxy"}, path=r"/pulls/2$")
        await bot.deliver(client, opened(2, sha_for(2, 0)))
        fields = await eventually(lambda: _backing_off(bot), "#2 records the error")
        assert "internal error" in fields["reason"], fields
        await asyncio.sleep(2.0)
        # Backing off: 1-2 s, then 2-4 s. A job re-queued at once fails every few ms.
        assert len(github.calls("GET", r"/pulls/2$")) < 10
        github.end_outage()
        await eventually(
            lambda: any(
                r["conclusion"] == "success" for r in github.check_runs(REPO, sha_for(2, 0))
            ),
            "#2 deployed once GitHub answers properly",
            within=30,
        )
        await leaks.add_bot(bot, github, [2])


async def _backing_off(bot: Bot) -> dict[str, str] | None:
    fields = await record(bot, 2)
    return fields if fields.get("attempts") else None
