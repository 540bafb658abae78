"""End to end: a `[[repos]]` entry's own `max_active` caps its repository in place of
`staging.max_active_per_repo`, and the other repositories keep the global cap (real web
app and worker, fake GitHub and Kubernetes APIs over real HTTP, real Redis)."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bot.config import ApiConfig, ApiToken, RepoConfig, Secret
from bot.model import Phase, StagingKey
from tests.fakes.github import FakeGitHub
from tests.fakes.kube import FakeKube
from tests.helpers import REPO, REPO_ID, pr_payload
from tests.integration.test_end_to_end import bot_config, deliver, eventually, running_bot
from tests.integration.test_end_to_end_quota import comment_saying, opened
from tests.integration.test_end_to_end_sweep import sweeper, wait_running

OTHER = "Codertocat/Goodbye-World"
OTHER_ID = 186853777
SHA3 = "3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f"
SHA5 = "5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081"
SHA6 = "6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192"
TOKEN = "operator-token-0123456789"


def shop(number: int) -> StagingKey:
    return StagingKey("github", REPO_ID, number)


def other(number: int) -> StagingKey:
    return StagingKey("github", OTHER_ID, number)


def comment_in(github: FakeGitHub, repo: str, number: int, text: str) -> str:
    bodies = [str(comment["body"]) for comment in github.comments(repo, number)]
    return next((body for body in bodies if text in body), "")


def opened_in_other(number: int, sha: str, branch: str) -> dict[str, Any]:
    """GitHub's example `opened` delivery, moved to a pull request of another repository
    (not a fork: head and base are that repository)."""
    payload = opened(number, sha, branch)
    repository = {
        **payload["repository"],
        "id": OTHER_ID,
        "full_name": OTHER,
        "name": OTHER.split("/")[1],
        "html_url": f"https://github.com/{OTHER}",
    }
    payload["repository"] = repository
    pull = payload["pull_request"]
    pull["html_url"] = f"https://github.com/{OTHER}/pull/{number}"
    pull["head"]["repo"] = repository
    pull["base"]["repo"] = repository
    return payload


async def test_a_repository_with_its_own_max_active_queues_where_another_does_not(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    base = bot_config(redis_url, github, kube, tmp_path, app=True)
    config = replace(
        base,
        staging=replace(base.staging, max_active_per_repo=2),
        repos=(
            RepoConfig(host="github", repo=REPO, max_active=1),
            RepoConfig(host="github", repo=OTHER),
        ),
        api=ApiConfig((ApiToken("ci", Secret(TOKEN), "viewer"),)),
    )
    github.add_pull(REPO, 3, SHA3, branch="three")
    github.add_repo(OTHER, OTHER_ID, installation_id=1)
    github.add_pull(OTHER, 5, SHA5, branch="five")
    github.add_pull(OTHER, 6, SHA6, branch="six")
    async with running_bot(config) as bot, sweeper(config) as svc:
        await deliver(bot, pr_payload("opened"))
        await wait_running(svc, shop(2))
        # The other repository is under staging.max_active_per_repo = 2: both of its run.
        await deliver(bot, opened_in_other(5, SHA5, "five"))
        await deliver(bot, opened_in_other(6, SHA6, "six"))
        await wait_running(svc, other(5))
        await wait_running(svc, other(6))
        for number in (5, 6):
            running = partial(comment_in, github, OTHER, number, "**running**")
            body = await eventually(running, f"{OTHER}#{number} running")
            assert "Position" not in body and "queued" not in body

        # This repository's own max_active = 1: its second request waits, its place shown.
        await deliver(bot, opened(3, SHA3, "three"))
        body = await eventually(
            lambda: comment_saying(github, 3, "Position **1** in the queue"), "#3 queued"
        )
        assert "**queued**" in body and "at most 1 for this repository" in body
        record = await svc.store.load(shop(3))
        assert record is not None and record.get("phase") == Phase.QUEUED
        assert not record.get("namespace")  # nothing of it was applied
        path = "/api/stagings/" + quote(f"github:{REPO}#3", safe="")
        shown = (await bot.get(path, headers={"Authorization": f"Bearer {TOKEN}"})).json()
        assert shown["state"] == "queued" and shown["queue_position"] == 1

        github.close_pull(REPO, 2)  # frees this repository's only slot
        await deliver(bot, pr_payload("closed"))

        await wait_running(svc, shop(3))
        body = await eventually(lambda: comment_saying(github, 3, "**running**"), "#3 running")
        assert "Position" not in body
        holders, waiting = await svc.store.slots()
        assert set(holders) == {shop(3), other(5), other(6)} and waiting == {}
