"""The Kubernetes API out of reach (503s, then dropped connections), then back: what people
see meanwhile, and that every staging converges afterwards without anything deleted."""

from __future__ import annotations

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


async def test_while_the_cluster_is_down_stagings_say_why_they_wait_then_converge(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path, leaks: LeakScan
) -> None:
    github.add_pull(REPO, 2, sha_for(2, 0), branch="feature-2")
    auth = {"Authorization": f"Bearer {secrets.API_TOKEN}"}
    async with (
        running_bot(redis_url, github, kube, tmp_path) as bot,
        httpx.AsyncClient(base_url=bot.url, timeout=20) as client,
    ):
        await bot.deliver(client, opened(2, sha_for(2, 0)))
        await eventually(lambda: web_image(kube, 2) == f"{IMAGE}:{sha_for(2, 0)}", "#2 deployed")
        await eventually(lambda: settled(bot), "#2 running")

        kube.go_down(503)
        github.set_head(REPO, 2, sha_for(2, 1))
        await bot.deliver(client, pushed(2, sha_for(2, 1)))
        github.add_pull(REPO, 3, sha_for(3, 0), branch="feature-3")
        await bot.deliver(client, opened(3, sha_for(3, 0)))

        # What a person sees meanwhile: the check on the new commit is in progress, and the
        # staging's record (API, dashboard) says the cluster cannot be reached.
        for number, sha in ((2, sha_for(2, 1)), (3, sha_for(3, 0))):
            await eventually(
                lambda s=sha: [r for r in github.check_runs(REPO, s) if r["status"] != "completed"],
                f"#{number}: check in progress on {sha[:7]}",
            )
            fields = await eventually(
                lambda n=number: _waiting(bot, n), f"#{number}: the reason is recorded"
            )
            assert "503" in fields["reason"] or "reach" in fields["reason"], fields["reason"]
        shown = await client.get(f"/api/stagings/github:{REPO}%233", headers=auth)
        assert shown.status_code == 200 and "503" in shown.text, shown.text
        kube.go_down(None)  # now not even an answer
        tried = len(kube.requests)
        await eventually(lambda: len(kube.requests) > tried + 1, "the bot met a dead API server")
        assert web_image(kube, 2) == f"{IMAGE}:{sha_for(2, 0)}"  # the old commit still runs

        kube.come_back()
        for number, sha in ((2, sha_for(2, 1)), (3, sha_for(3, 0))):
            await eventually(
                lambda n=number, s=sha: web_image(kube, n) == f"{IMAGE}:{s}",
                f"#{number} deployed at {sha[:7]} after the outage",
                within=40,
            )
            await eventually(
                lambda s=sha: any(r["conclusion"] == "success" for r in github.check_runs(REPO, s)),
                f"#{number}: green check on {sha[:7]}",
                within=40,
            )
        await eventually(lambda: settled(bot), "settled")
        for number in (2, 3):
            fields = await record(bot, number)
            assert fields["phase"] == "running" and not fields.get("reason"), fields
            assert len(github.comments(REPO, number)) == 1
        assert kube.count("DELETE") == 0
        assert all(n == 1 for n in check_runs_by_sha(github).values())
        await leaks.add_bot(bot, github, [2, 3])


async def _waiting(bot: object, number: int) -> dict[str, str] | None:
    fields = await record(bot, number)  # type: ignore[arg-type]
    return fields if fields.get("reason") else None
