"""End to end on GitHub: slash-commands through the web app and a real worker.

Comments are GitHub's example issue_comment deliveries moved onto the pull request; the
fake GitHub holds the same comments, so reactions and replies land where GitHub puts them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from bot.hosts.base import STICKY_MARKER
from bot.replies import REPLY_MARKER
from tests.fakes.github import FakeGitHub
from tests.fakes.kube import FakeKube
from tests.helpers import REPO, body_of, comment_payload, pr_payload, signed_headers
from tests.integration.test_end_to_end import (
    NAMESPACE,
    SHA1,
    SHA2,
    bot_config,
    completed,
    deliver,
    eventually,
    running_bot,
    web_image,
)


async def say(
    bot: httpx.AsyncClient, github: FakeGitHub, body: str, login: str, action: str = "created"
) -> int:
    """`login` writes `body` on the pull request; GitHub delivers issue_comment.<action>."""
    comment_id = github.add_comment(REPO, 2, body, login)
    payload = comment_payload(body, login, comment_id) | {"action": action}
    raw = body_of(payload)
    response = await bot.post(
        "/webhooks/github", content=raw, headers=signed_headers(raw, "issue_comment")
    )
    assert response.status_code == 202, response.text
    return comment_id


def replies(github: FakeGitHub) -> list[str]:
    return [c["body"] for c in github.comments(REPO, 2) if REPLY_MARKER in c["body"]]


def sticky(github: FakeGitHub) -> str:
    """The bot's one sticky comment, "" before it is written."""
    bodies = [c["body"] for c in github.comments(REPO, 2) if STICKY_MARKER in c["body"]]
    assert len(bodies) <= 1, bodies
    return bodies[0] if bodies else ""


def reactions(github: FakeGitHub, comment_id: int) -> list[str]:
    return [r["content"] for r in github.reactions(comment_id)]


def container_env_from(kube: FakeKube) -> list[Any]:
    deployment = kube.get("Deployment", NAMESPACE, "web") or {}
    (container, *_) = deployment["spec"]["template"]["spec"]["containers"]
    return list(container.get("envFrom", []))


async def running(bot: httpx.AsyncClient, github: FakeGitHub) -> None:
    await deliver(bot, pr_payload("opened"))
    await eventually(lambda: completed(github.check_runs(REPO, SHA1)), "staging running")


async def test_a_maintainers_set_redeploys_with_the_variable_in_the_deployment(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    github.set_role(REPO, "maintainer", "write")
    async with running_bot(bot_config(redis_url, github, kube, tmp_path, app=True)) as bot:
        await running(bot, github)
        comment_id = await say(bot, github, "/staging set FEATURE_X=on", "maintainer")
        overrides = await eventually(
            lambda: (kube.get("ConfigMap", NAMESPACE, "stagingbot-overrides") or {}).get("data"),
            "override in the ConfigMap",
        )
        assert overrides == {"FEATURE_X": "on"}
        assert {"configMapRef": {"name": "stagingbot-overrides"}} in container_env_from(kube)
        await eventually(lambda: "`FEATURE_X` = `on`" in sticky(github), "override shown")
        await eventually(lambda: "+1" in reactions(github, comment_id), "done reaction")
        assert reactions(github, comment_id) == ["eyes", "+1"]
        assert replies(github) == []


async def test_a_redeploy_of_a_green_commit_gets_a_new_check_run_above_the_completed_one(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    """GitHub never lets a completed check run change its outcome (FakeGitHub answers 422):
    a commit deployed again is reported on a new run, which GitHub shows."""
    github.set_role(REPO, "maintainer", "write")
    async with running_bot(bot_config(redis_url, github, kube, tmp_path, app=True)) as bot:
        await running(bot, github)
        (first,) = github.check_runs(REPO, SHA1)
        await say(bot, github, "/staging redeploy", "maintainer")
        runs = await eventually(
            lambda: (r := github.check_runs(REPO, SHA1))[1:] and completed(r[1:]) and r,
            "a second check run, completed",
        )
        assert [(r["id"], r["conclusion"]) for r in runs] == [
            (first["id"], "success"),
            (runs[1]["id"], "success"),
        ]
        created = [c.body for c in github.calls("POST", r"/check-runs$") if c.status == 201]
        assert [c["status"] for c in created] == ["in_progress", "in_progress"]
        assert all(c.status < 400 for c in github.calls("PATCH", r"/check-runs/\d+$"))


async def test_a_destroy_without_write_access_is_refused_and_the_namespace_stays(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    github.set_role(REPO, "visitor", "read")
    async with running_bot(bot_config(redis_url, github, kube, tmp_path, app=True)) as bot:
        await running(bot, github)
        comment_id = await say(bot, github, "/staging destroy", "visitor")
        (reply,) = await eventually(lambda: replies(github), "a refusal")
        assert "@visitor" in reply and "needs write access" in reply
        assert kube.namespace(NAMESPACE) is not None
        await eventually(lambda: "confused" in reactions(github, comment_id), "refused reaction")


async def test_the_bots_own_comment_and_edited_comments_do_nothing(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    github.set_role(REPO, "maintainer", "write")
    config = bot_config(redis_url, github, kube, tmp_path, app=True)
    async with running_bot(config) as bot:
        await running(bot, github)
        own = await say(bot, github, "/staging destroy", github.app_slug + "[bot]")
        edited = await say(bot, github, "/staging destroy", "maintainer", action="edited")
        # A status afterwards proves the job ran past both: its reply is the only one.
        await say(bot, github, "/staging status", "maintainer")
        (reply,) = await eventually(lambda: replies(github), "status reply")
        assert "**Staging:** running" in reply
        assert kube.namespace(NAMESPACE) is not None
        assert reactions(github, own) == [] and reactions(github, edited) == []


async def test_a_fork_waits_for_approval_and_each_new_push_waits_again(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    github.add_pull(REPO, 2, SHA1, branch="changes", fork_full_name="mallory/Hello-World")
    github.set_role(REPO, "maintainer", "write")
    async with running_bot(bot_config(redis_url, github, kube, tmp_path, app=True)) as bot:
        await deliver(bot, fork_payload("opened", SHA1))
        await eventually(lambda: "must approve" in sticky(github), "approval asked")
        assert kube.namespace(NAMESPACE) is None and github.check_runs(REPO, SHA1) == []

        await say(bot, github, "/staging deploy", "maintainer")
        await eventually(lambda: completed(github.check_runs(REPO, SHA1)), "deployed")
        assert web_image(kube) == f"registry.example.com/hello:{SHA1}"
        assert any(f"approved commit `{SHA1}`" in r for r in replies(github))

        github.set_head(REPO, 2, SHA2)
        await deliver(bot, fork_payload("synchronize", SHA2))
        await eventually(
            lambda: "`5b4c0f3` from the fork is not deployed" in sticky(github), "note"
        )
        assert web_image(kube) == f"registry.example.com/hello:{SHA1}"
        assert github.check_runs(REPO, SHA2) == []


def fork_payload(action: str, sha: str) -> dict[str, Any]:
    """The example pull_request delivery, with its head in another repository."""
    payload = pr_payload(action, sha)
    head = payload["pull_request"]["head"]
    head["repo"] = {**head["repo"], "id": 4242, "full_name": "mallory/Hello-World"}
    return payload
