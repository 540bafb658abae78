"""The Kubernetes API out of reach (503s, then dropped connections), then back: what people
see meanwhile, and that every staging converges afterwards without anything deleted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


async def test_while_the_cluster_is_down_stagings_are_failed_with_why_then_converge(
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

        # What a person sees meanwhile: first the check on the new commit in progress, and
        # the staging's record (API, dashboard) saying the cluster cannot be reached.
        for number, sha in ((2, sha_for(2, 1)), (3, sha_for(3, 0))):
            await eventually(lambda s=sha: github.check_runs(REPO, s), f"#{number}: a check")
            assert _first_status(github, sha) == "in_progress"  # a blip would go unseen
            fields = await eventually(
                lambda n=number: _waiting(bot, n), f"#{number}: the reason is recorded"
            )
            assert "503" in fields["reason"] or "reach" in fields["reason"], fields["reason"]
        shown = await client.get(f"/api/stagings/github:{REPO}%233", headers=auth)
        assert shown.status_code == 200 and "503" in shown.text, shown.text
        kube.go_down(None)  # now not even an answer
        tried = len(kube.requests)
        await eventually(lambda: len(kube.requests) > tried + 1, "the bot met a dead API server")

        # After a few attempts (handlers/outage.py) the check fails and the comment says why:
        # the status, or that no answer came, never the body of an answer.
        for number, sha in ((2, sha_for(2, 1)), (3, sha_for(3, 0))):
            (run,) = await eventually(
                lambda s=sha: [r for r in github.check_runs(REPO, s) if _says_down(r)],
                f"#{number}: failed check on {sha[:7]} saying the cluster cannot be reached",
            )
            title = run["output"]["title"]
            assert "HTTP 503 Service Unavailable" in title or "no answer (" in title, title
            why = f"**Why:** {title.partition(': ')[2]}"
            # The check run is written first, then the comment: wait for the second write.
            (comment,) = await eventually(
                lambda n=number, w=why: [c for c in github.comments(REPO, n) if w in c["body"]],
                f"#{number}: the comment says why",
            )
            assert len(github.comments(REPO, number)) == 1
            assert "unable to handle" not in comment["body"]
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
            (comment,) = github.comments(REPO, number)
            assert "cannot be reached" not in comment["body"], comment["body"]
        assert kube.count("DELETE") == 0
        # GitHub keeps a completed run's outcome: the red run stays, and the recovery is a
        # second run on each commit that was reported down — the newest, which GitHub shows.
        assert check_runs_by_sha(github) == {sha_for(2, 0): 1, sha_for(2, 1): 2, sha_for(3, 0): 2}
        for sha in (sha_for(2, 1), sha_for(3, 0)):
            red, green = github.check_runs(REPO, sha)
            assert (red["conclusion"], green["conclusion"]) == ("failure", "success")
        await leaks.add_bot(bot, github, [2, 3])


def _says_down(run: dict[str, Any]) -> bool:
    return run["conclusion"] == "failure" and "cannot be reached" in run["output"]["title"]


def _first_status(github: FakeGitHub, sha: str) -> str:
    """What the check run said when it was created on `sha`."""
    (created,) = [
        call.body
        for call in github.calls("POST", r"/check-runs$")
        if call.status == 201 and call.body["head_sha"] == sha
    ]
    return str(created.get("status") or "")


async def _waiting(bot: object, number: int) -> dict[str, str] | None:
    fields = await record(bot, number)  # type: ignore[arg-type]
    return fields if fields.get("reason") else None
