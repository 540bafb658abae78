"""What a push costs in GitHub requests (benchmark 5, docs/benchmarks.md): the real bot
against the fake GitHub, every request it answered counted.

Once the bot has reported on a request, a push reads the pull request once (the rounds that
follow the rollout reuse that answer), edits the sticky comment in place once without
listing comments, and creates the check run and the deployment on the new commit without
looking for ones it knows it never began, the deployment with its outcome only. The
opening uses the installation the webhook names and looks nothing up.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.fakes.github import FakeGitHub, Recorded
from tests.fakes.kube import FakeKube
from tests.helpers import REPO, REPO_ID, pr_payload
from tests.integration.test_end_to_end import (
    SHA1,
    SHA2,
    bot_config,
    completed,
    deliver,
    eventually,
    running_bot,
)

PULL = f"/repositories/{REPO_ID}/pulls/2"
COMMENTS = f"/repositories/{REPO_ID}/issues/2/comments"


def deployed(github: FakeGitHub, sha: str) -> bool:
    """The deployment of `sha` says success: the last write of a round that found it up."""
    return any(
        status["state"] == "success"
        for deployment in github.deployments(REPO)
        if deployment["sha"] == sha
        for status in github.deployment_statuses(deployment["id"])
    )


def kinds(requests: list[Recorded]) -> list[str]:
    return [f"{q.method} {q.path}" for q in requests]


def count(requests: list[Recorded], method: str, pattern: str) -> int:
    return sum(1 for q in requests if q.method == method and re.search(pattern, q.path))


async def test_a_push_reads_the_pull_once_and_looks_nothing_up_before_writing(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    config = bot_config(redis_url, github, kube, tmp_path, app=True)
    async with running_bot(config) as bot:
        await deliver(bot, pr_payload("opened"))
        await eventually(lambda: deployed(github, SHA1), "the first commit deployed")
        opened = list(github.requests)
        # No comment on the request yet (its read said so): the sticky one is created at once.
        assert count(opened, "GET", f"{COMMENTS}$") == 0, kinds(opened)
        assert count(opened, "POST", f"{COMMENTS}$") == 1
        # The signed webhook named the App's installation: not looked up.
        assert count(opened, "GET", r"/installation$") == 0, kinds(opened)
        # A request just opened has nothing of the bot's: nothing is looked for.
        assert count(opened, "GET", "/check-runs$") == 0, kinds(opened)
        assert count(opened, "GET", "/deployments$") == 0, kinds(opened)

        github.set_head(REPO, 2, SHA2)
        await deliver(bot, pr_payload("synchronize", sha=SHA2))
        await eventually(lambda: deployed(github, SHA2), "the pushed commit deployed")
        await eventually(
            lambda: SHA2[:7] in github.comments(REPO, 2)[0]["body"], "comment shows the push"
        )
        pushed = github.requests[len(opened) :]

    run = completed(github.check_runs(REPO, SHA2))
    assert run is not None and run["conclusion"] == "success"
    assert len(github.check_runs(REPO, SHA2)) == 1
    assert len(github.comments(REPO, 2)) == 1  # the same comment, edited
    # One read of the request for the push, however many rounds followed the rollout.
    assert count(pushed, "GET", f"{PULL}$") == 1, kinds(pushed)
    # The sticky comment's id is known: edited, never listed.
    assert count(pushed, "GET", f"{COMMENTS}$") == 0, kinds(pushed)
    # Edited once, with the outcome: until then it shows what the URL still serves.
    assert count(pushed, "PATCH", r"/issues/comments/\d+$") == 1, kinds(pushed)
    # A commit the bot never wrote on: created without a look-up first.
    assert count(pushed, "GET", "/check-runs$") == 0, kinds(pushed)
    assert count(pushed, "GET", "/deployments$") == 0, kinds(pushed)
    assert count(pushed, "POST", "/check-runs$") == 1
    assert count(pushed, "POST", "/deployments$") == 1
    # The deployment is created with its outcome: one status, no "in progress" one first.
    assert count(pushed, "POST", r"/deployments/\d+/statuses$") == 1, kinds(pushed)
