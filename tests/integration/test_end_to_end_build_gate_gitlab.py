"""End to end on GitLab: with `staging.wait_for`, a merge request's commit is deployed once
the named job of its pipeline succeeded, woken by a `Pipeline Hook` (GitLab's example
payload, varied) through the real web app and worker, python-gitlab against the fake GitLab.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from bot.config import Config
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
    deliver,
    final_status,
    gitlab,
    gitlab_config,
    mr_hook,
)

__all__ = ["gitlab"]  # the fixture, shared with the GitLab end-to-end tests


def pipeline_hook(sha: str, status: str, jobs: dict[str, str]) -> dict[str, Any]:
    """GitLab's example Pipeline Hook, moved onto this project's merge request and commit."""
    payload = copy.deepcopy(load_fixture("pipeline.json", host="gitlab"))
    payload["object_attributes"].update(sha=sha, status=status)
    payload["project"].update(id=PROJECT_ID, path_with_namespace=PROJECT)
    payload["merge_request"].update(iid=IID, source_project_id=PROJECT_ID)
    payload["merge_request"]["target_project_id"] = PROJECT_ID
    example = payload["builds"][0]
    payload["builds"] = [{**example, "name": name, "status": state} for name, state in jobs.items()]
    return payload


async def send_pipeline(bot: httpx.AsyncClient, payload: dict[str, Any], key: str) -> Any:
    response = await bot.post(
        "/webhooks/gitlab",
        content=json.dumps(payload).encode(),
        headers={
            "Content-Type": "application/json",
            "X-Gitlab-Event": "Pipeline Hook",
            "X-Gitlab-Token": HOOK_TOKEN,
            "Idempotency-Key": key,
        },
    )
    assert response.status_code == 202, response.text
    return response.json()


def note_saying(gitlab: FakeGitLab, text: str) -> dict[str, Any] | None:
    return next((n for n in gitlab.notes(PROJECT, IID) if text in n["body"]), None)


def gated(config: Config) -> Config:
    return replace(config, staging=replace(config.staging, wait_for=("build",)))


async def test_a_merge_request_waits_for_the_build_job_of_its_pipeline(
    redis_url: str, gitlab: FakeGitLab, kube: FakeKube, tmp_path: Path
) -> None:
    with FakeGitHub() as unused_github:  # bot_config wants one; a GitLab-only bot never calls it
        base = bot_config(redis_url, unused_github, kube, tmp_path, app=False)
    config = gated(gitlab_config(base, gitlab))
    pipeline = gitlab.add_pipeline(
        PROJECT, SHA1, "running", {"build": "running", "test": "created"}
    )
    async with running_bot(config) as bot:
        await deliver(bot, mr_hook("open"), "open-1")

        note = await eventually(lambda: note_saying(gitlab, "waiting for build"), "note waits")
        assert f"waiting for `build` on {SHA1[:7]}" in note["body"]
        assert final_status(gitlab, SHA1, "running") is not None
        assert kube.namespace(NAMESPACE) is None

        gitlab.set_pipeline(pipeline, "running", {"build": "success", "test": "running"})
        answer = await send_pipeline(
            bot, pipeline_hook(SHA1, "running", {"build": "success", "test": "running"}), "p-1"
        )

        assert answer["accepted"] == [f"gitlab:{PROJECT_ID}:{IID}"]
        status = await eventually(lambda: final_status(gitlab, SHA1, "success"), "deployed")
        assert status["name"] == "staging"
        assert kube.namespace(NAMESPACE) is not None


async def test_a_failed_build_job_is_shown_and_nothing_is_deployed(
    redis_url: str, gitlab: FakeGitLab, kube: FakeKube, tmp_path: Path
) -> None:
    with FakeGitHub() as unused_github:
        base = bot_config(redis_url, unused_github, kube, tmp_path, app=False)
    config = gated(gitlab_config(base, gitlab))
    pipeline = gitlab.add_pipeline(PROJECT, SHA1, "running", {"build": "running"})
    async with running_bot(config) as bot:
        await deliver(bot, mr_hook("open"), "open-1")
        await eventually(lambda: note_saying(gitlab, "waiting for build"), "note waits")

        gitlab.set_pipeline(pipeline, "failed", {"build": "failed"})
        await send_pipeline(bot, pipeline_hook(SHA1, "failed", {"build": "failed"}), "p-2")

        note = await eventually(lambda: note_saying(gitlab, "build failed"), "note says failed")
        assert f"`build` failed on {SHA1[:7]}" in note["body"]
        status = await eventually(lambda: final_status(gitlab, SHA1, "failed"), "status failed")
        assert "`build` failed" in status["description"]
        assert kube.namespace(NAMESPACE) is None
