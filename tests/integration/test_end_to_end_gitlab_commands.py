"""End to end on GitLab: slash-commands in MR notes through the web app and a real worker.

Notes are GitLab's example Note Hook delivery moved onto the fake's merge request; the
fake GitLab holds the same notes, so award emoji and replies land where GitLab puts them.
Access comes from the project's members (Developer, 30, may run changing commands).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from bot import queue
from bot.config import Config
from bot.hosts.base import STICKY_MARKER
from bot.replies import REPLY_MARKER
from tests.conftest import load_fixture
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.kube import FakeKube
from tests.integration.test_end_to_end import bot_config, eventually, running_bot
from tests.integration.test_end_to_end_gitlab import (
    HOOK_TOKEN,
    IID,
    NAMESPACE,
    PROJECT,
    PROJECT_ID,
    SHA1,
    SHA2,
    deliver,
    final_status,
    gitlab_config,
    mr_hook,
)

DEVELOPER, REPORTER, OUTSIDER = "dev", "reporter", "outsider"
FORK_PROJECT_ID = 99  # mallory/gitlab-test, the fork the merge request comes from
WITHIN = 10.0  # seconds any one step may take
IMAGE = "registry.example.com/hello:{sha}"  # the image template of tests.helpers.make_config


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    """test_end_to_end_gitlab's project and merge request, with a Developer, a Reporter
    and a user who is not a member of the project."""
    with FakeGitLab() as fake:
        fake.add_project(PROJECT, PROJECT_ID)
        fake.add_mr(PROJECT, IID, SHA1, branch="ms-viewport")
        for user_id, (username, level) in enumerate(
            ((DEVELOPER, 30), (REPORTER, 20), (OUTSIDER, 0)), start=31
        ):
            fake.add_user(username, user_id)
            if level:
                fake.add_member(PROJECT, username, level)
        yield fake


def config_for(
    redis_url: str, gitlab: FakeGitLab, kube: FakeKube, tmp_path: Path, drafts: bool = True
) -> Config:
    with FakeGitHub() as unused_github:  # bot_config wants one; a GitLab-only bot never calls it
        base = bot_config(redis_url, unused_github, kube, tmp_path, app=False)
    config = gitlab_config(base, gitlab)
    return replace(config, staging=replace(config.staging, drafts=drafts))


@contextlib.asynccontextmanager
async def bot_for(config: Config) -> AsyncIterator[httpx.AsyncClient]:
    """`running_bot`, left only once no job is running or due.

    Stopping the worker cancels arq's poll loop; cancelled inside `start_jobs`, which runs
    while a job is due or running (both stay in the queue, scored at or before now), arq's
    WATCH pipeline is never given back and its ResourceWarning fails whichever test is
    running when it is collected. A job deferred to later is never started: it can stay.
    """
    async with running_bot(config) as bot:
        yield bot
        redis = Redis.from_url(config.redis.url)
        name = queue.queue_name(config.redis.key_prefix)
        try:
            deadline = time.monotonic() + WITHIN
            while await redis.zcount(name, "-inf", int(time.time() * 1000)):
                if time.monotonic() > deadline:
                    pytest.fail("never happened: no job running or due")
                await asyncio.sleep(0.02)
        finally:
            await redis.aclose()


def note_hook(
    body: str, username: str, note_id: int, sha: str = SHA1, action: str = "create"
) -> dict[str, Any]:
    """A variant of GitLab's example Note Hook: this note, by this user, on the fake's MR."""
    payload = copy.deepcopy(load_fixture("note.merge_request.json", host="gitlab"))
    payload["user"]["username"] = username
    payload["project_id"] = PROJECT_ID
    payload["project"].update(id=PROJECT_ID, path_with_namespace=PROJECT)
    payload["object_attributes"].update(id=note_id, note=body, action=action, project_id=PROJECT_ID)
    merge_request = payload["merge_request"]
    merge_request.update(iid=IID, source_project_id=PROJECT_ID, target_project_id=PROJECT_ID)
    merge_request["last_commit"]["id"] = sha
    return payload


async def deliver_note(
    bot: httpx.AsyncClient, payload: dict[str, Any], **identity: str
) -> httpx.Response:
    """POST a Note Hook; `identity` holds Idempotency-Key and/or X-Gitlab-Event-UUID."""
    response = await bot.post(
        "/webhooks/gitlab",
        content=json.dumps(payload).encode(),
        headers={
            "Content-Type": "application/json",
            "X-Gitlab-Event": "Note Hook",
            "X-Gitlab-Token": HOOK_TOKEN,
            **(identity or {"Idempotency-Key": str(uuid.uuid4())}),
        },
    )
    assert response.status_code == 202, response.text
    return response


async def say(
    bot: httpx.AsyncClient, gitlab: FakeGitLab, body: str, username: str, sha: str = SHA1
) -> int:
    """`username` writes `body` on the merge request (which saw `sha`); GitLab delivers it."""
    note_id = gitlab.add_note(PROJECT, IID, body, username)
    await deliver_note(bot, note_hook(body, username, note_id, sha))
    return note_id


def replies(gitlab: FakeGitLab) -> list[str]:
    return [n["body"] for n in gitlab.notes(PROJECT, IID) if REPLY_MARKER in n["body"]]


def sticky(gitlab: FakeGitLab) -> str:
    """The bot's one sticky note, "" before it is written."""
    bodies = [n["body"] for n in gitlab.notes(PROJECT, IID) if STICKY_MARKER in n["body"]]
    assert len(bodies) <= 1, bodies
    return bodies[0] if bodies else ""


def awards(gitlab: FakeGitLab, note_id: int) -> list[str]:
    return [a["name"] for a in gitlab.awards(note_id)]


def successes(gitlab: FakeGitLab, sha: str = SHA1) -> int:
    """How many times the commit status on `sha` turned green (once per deploy)."""
    return len([s for s in gitlab.statuses(PROJECT, sha) if s["status"] == "success"])


def web_container(kube: FakeKube) -> dict[str, Any]:
    deployment = kube.get("Deployment", NAMESPACE, "web") or {}
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
    return dict(containers[0]) if containers else {}


def fork_mr_hook(action: str, sha: str = SHA1) -> dict[str, Any]:
    """The example Merge Request Hook, its source branch in another project (a fork)."""
    payload = mr_hook(action, sha)
    payload["object_attributes"]["source_project_id"] = FORK_PROJECT_ID
    return payload


def marked_draft_hook() -> dict[str, Any]:
    """The update GitLab sends when an MR is marked draft: no `oldrev`, as no commit came."""
    payload = mr_hook("update")
    attributes = payload["object_attributes"]
    del attributes["oldrev"]
    attributes.update(draft=True, work_in_progress=True, title="Draft: MS-Viewport")
    payload["changes"] = {"draft": {"previous": False, "current": True}}
    return payload


async def running(bot: httpx.AsyncClient, gitlab: FakeGitLab) -> None:
    await deliver(bot, mr_hook("open"), "open-1")
    await eventually(lambda: final_status(gitlab, SHA1, "success"), "staging running", WITHIN)


async def test_a_developers_set_redeploys_with_the_variable_from_a_config_map(
    redis_url: str, gitlab: FakeGitLab, kube: FakeKube, tmp_path: Path
) -> None:
    async with bot_for(config_for(redis_url, gitlab, kube, tmp_path)) as bot:
        await running(bot, gitlab)
        note_id = await say(bot, gitlab, "/staging set FEATURE_X=on", DEVELOPER)
        overrides = await eventually(
            lambda: (kube.get("ConfigMap", NAMESPACE, "stagingbot-overrides") or {}).get("data"),
            "override in the ConfigMap",
            WITHIN,
        )
        assert overrides == {"FEATURE_X": "on"}
        env_from = await eventually(
            lambda: web_container(kube).get("envFrom"), "Deployment reads the ConfigMap", WITHIN
        )
        assert {"configMapRef": {"name": "stagingbot-overrides"}} in env_from
        await eventually(lambda: "`FEATURE_X` = `on`" in sticky(gitlab), "override shown", WITHIN)
        await eventually(lambda: successes(gitlab) == 2, "redeployed: status success", WITHIN)
        await eventually(lambda: "thumbsup" in awards(gitlab, note_id), "done award", WITHIN)
        assert awards(gitlab, note_id) == ["eyes", "thumbsup"]
        assert replies(gitlab) == []


@pytest.mark.parametrize("username", [REPORTER, OUTSIDER])
async def test_a_destroy_below_the_developer_role_is_refused_and_the_namespace_stays(
    redis_url: str, gitlab: FakeGitLab, kube: FakeKube, tmp_path: Path, username: str
) -> None:
    async with bot_for(config_for(redis_url, gitlab, kube, tmp_path)) as bot:
        await running(bot, gitlab)
        note_id = await say(bot, gitlab, "/staging destroy", username)
        (reply,) = await eventually(lambda: replies(gitlab), "a refusal", WITHIN)
        assert f"@{username}" in reply and "needs the Developer role or higher" in reply
        await eventually(lambda: "confused" in awards(gitlab, note_id), "refused award", WITHIN)
        assert awards(gitlab, note_id) == ["eyes", "confused"]
        assert kube.namespace(NAMESPACE) is not None


async def test_a_note_by_the_bots_own_user_is_not_a_command(
    redis_url: str, gitlab: FakeGitLab, kube: FakeKube, tmp_path: Path
) -> None:
    async with bot_for(config_for(redis_url, gitlab, kube, tmp_path)) as bot:
        await running(bot, gitlab)
        own = await say(bot, gitlab, "/staging destroy", gitlab.username)
        # Commands run oldest first: the status's reply proves the job went past the own note.
        await say(bot, gitlab, "/staging status", DEVELOPER)
        (reply,) = await eventually(lambda: replies(gitlab), "status reply", WITHIN)
        assert "**Staging:** running" in reply
        assert awards(gitlab, own) == []
        assert kube.namespace(NAMESPACE) is not None


async def test_a_fork_waits_for_approval_and_each_new_push_waits_again(
    redis_url: str, gitlab: FakeGitLab, kube: FakeKube, tmp_path: Path
) -> None:
    gitlab.add_mr(PROJECT, IID, SHA1, branch="ms-viewport", source_project_id=FORK_PROJECT_ID)
    async with bot_for(config_for(redis_url, gitlab, kube, tmp_path)) as bot:
        await deliver(bot, fork_mr_hook("open"), "open-1")
        await eventually(
            lambda: "waits for a maintainer's approval" in sticky(gitlab), "approval asked", WITHIN
        )
        assert kube.namespace(NAMESPACE) is None
        assert final_status(gitlab, SHA1, "success") is None

        await say(bot, gitlab, "/staging deploy", DEVELOPER, sha=SHA1)
        await eventually(lambda: final_status(gitlab, SHA1, "success"), "deployed", WITHIN)
        assert web_container(kube)["image"] == IMAGE.format(sha=SHA1)
        (approved,) = replies(gitlab)
        assert f"@{DEVELOPER} approved commit" in approved and SHA1[:7] in approved

        gitlab.set_head(PROJECT, IID, SHA2)
        await deliver(bot, fork_mr_hook("update", SHA2), "update-1")
        await eventually(
            lambda: f"Commit `{SHA2[:7]}` from the fork is not deployed" in sticky(gitlab),
            "the new commit waits for approval",
            WITHIN,
        )
        assert web_container(kube)["image"] == IMAGE.format(sha=SHA1)
        assert final_status(gitlab, SHA2, "success") is None


async def test_an_edited_note_is_ignored_even_when_it_holds_a_command(
    redis_url: str, gitlab: FakeGitLab, kube: FakeKube, tmp_path: Path
) -> None:
    async with bot_for(config_for(redis_url, gitlab, kube, tmp_path)) as bot:
        await running(bot, gitlab)
        note_id = gitlab.add_note(PROJECT, IID, "/staging destroy", DEVELOPER)
        edited = note_hook("/staging destroy", DEVELOPER, note_id, action="update")
        response = await deliver_note(bot, edited)
        assert "note edited" in response.json()["ignored"]
        await say(bot, gitlab, "/staging status", DEVELOPER)
        (reply,) = await eventually(lambda: replies(gitlab), "status reply", WITHIN)
        assert "**Staging:** running" in reply
        assert awards(gitlab, note_id) == []
        assert kube.namespace(NAMESPACE) is not None


async def test_a_note_delivered_twice_under_different_keys_is_answered_once(
    redis_url: str, gitlab: FakeGitLab, kube: FakeKube, tmp_path: Path
) -> None:
    async with bot_for(config_for(redis_url, gitlab, kube, tmp_path)) as bot:
        await running(bot, gitlab)
        note_id = gitlab.add_note(PROJECT, IID, "/staging status", DEVELOPER)
        payload = note_hook("/staging status", DEVELOPER, note_id)
        await deliver_note(bot, payload, **{"Idempotency-Key": "key-1"})
        await deliver_note(bot, payload, **{"X-Gitlab-Event-UUID": str(uuid.uuid4())})
        # Commands run oldest first: once help is answered, a second status would be too.
        await say(bot, gitlab, "/staging help", DEVELOPER)
        await eventually(
            lambda: [r for r in replies(gitlab) if "**Staging:**" not in r], "help answered", WITHIN
        )
        statuses = [r for r in replies(gitlab) if "**Staging:**" in r]
        assert len(statuses) == 1 and len(replies(gitlab)) == 2
        assert awards(gitlab, note_id) == ["eyes", "thumbsup"]


async def test_a_merge_request_marked_draft_loses_its_staging_when_drafts_get_none(
    redis_url: str, gitlab: FakeGitLab, kube: FakeKube, tmp_path: Path
) -> None:
    async with bot_for(config_for(redis_url, gitlab, kube, tmp_path, drafts=False)) as bot:
        await running(bot, gitlab)
        gitlab.add_mr(PROJECT, IID, SHA1, branch="ms-viewport", draft=True)
        await deliver(bot, marked_draft_hook(), "draft-1")

        def removed() -> bool:
            namespace = kube.namespace(NAMESPACE)
            return namespace is None or namespace["status"].get("phase") == "Terminating"

        await eventually(removed, "namespace deleted", WITHIN)
        await eventually(lambda: "**gone**" in sticky(gitlab), "note says gone", WITHIN)
        assert "draft" in sticky(gitlab)
