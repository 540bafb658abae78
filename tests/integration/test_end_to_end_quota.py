"""End to end: `staging.max_active = 2` queues the third request, which is deployed as soon
as one of the first two closes (real web app and worker, fake GitHub and Kubernetes APIs
over real HTTP, real Redis)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from bot.model import Phase, StagingKey
from tests.fakes.github import FakeGitHub
from tests.fakes.kube import FakeKube
from tests.helpers import REPO, REPO_ID, pr_payload
from tests.integration.test_end_to_end import bot_config, deliver, eventually, running_bot
from tests.integration.test_end_to_end_sweep import sweeper, wait_running

SHA3 = "3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f"
SHA4 = "4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70"


def key(number: int) -> StagingKey:
    return StagingKey("github", REPO_ID, number)


def opened(number: int, sha: str, branch: str) -> dict[str, Any]:
    """GitHub's example `opened` delivery, moved to another pull request."""
    payload = pr_payload("opened", sha)
    payload["number"] = number
    pull = payload["pull_request"]
    pull["number"] = number
    pull["head"]["ref"] = branch
    pull["html_url"] = f"https://github.com/{REPO}/pull/{number}"
    return payload


def comment_saying(github: FakeGitHub, number: int, text: str) -> str:
    bodies = [str(comment["body"]) for comment in github.comments(REPO, number)]
    return next((body for body in bodies if text in body), "")


async def test_quota_queues_the_third_request_and_deploys_it_when_one_closes(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    base = bot_config(redis_url, github, kube, tmp_path, app=True)
    config = replace(base, staging=replace(base.staging, max_active=2))
    github.add_pull(REPO, 3, SHA3, branch="three")
    github.add_pull(REPO, 4, SHA4, branch="four")
    async with running_bot(config) as bot, sweeper(config) as svc:
        await deliver(bot, pr_payload("opened"))
        await deliver(bot, opened(3, SHA3, "three"))
        await wait_running(svc, key(2))
        await wait_running(svc, key(3))

        await deliver(bot, opened(4, SHA4, "four"))
        body = await eventually(
            lambda: comment_saying(github, 4, "Position **1** in the queue"), "#4 queued"
        )
        assert "**queued**" in body and "staging.max_active" in body
        record = await svc.store.load(key(4))
        assert record is not None and record.get("phase") == Phase.QUEUED
        assert not record.get("namespace")  # nothing of it was applied
        (check,) = github.check_runs(REPO, SHA4)
        assert check["status"] == "in_progress" and check["output"]["title"] == (
            "Queued for a free slot"
        )
        github.close_pull(REPO, 2)
        await deliver(bot, pr_payload("closed"))

        await wait_running(svc, key(4))
        body = await eventually(lambda: comment_saying(github, 4, "**running**"), "#4 running")
        assert "Position" not in body
        record = await svc.store.load(key(2))  # #4 took the slot #2 freed
        assert record is not None and record.get("phase") in (Phase.DESTROYING, Phase.GONE)
        holders, waiting = await svc.store.slots()
        assert set(holders) == {key(3), key(4)} and waiting == {}
        actions = [entry["action"] for entry in reversed(await svc.store.history(key(4)))]
        assert actions.index("queued") < actions.index("deploy") < actions.index("running")
