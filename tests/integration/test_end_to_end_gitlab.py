"""End to end on GitLab: Merge Request Hook deliveries through the real web app and worker.

python-gitlab talks to the local fake GitLab, the `kubernetes` client to the fake cluster,
over real HTTP; the queue and the state live in a real redis-server. The same handlers as
GitHub's run: only the host adapter differs.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.config import Config, GitLabConfig, RepoConfig, Secret
from bot.naming import LABEL_HOST, LABEL_REPO_ID
from tests.conftest import load_fixture
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.kube import FakeKube
from tests.integration.test_end_to_end import bot_config, eventually, running_bot

PROJECT, PROJECT_ID, IID = "gitlabhq/gitlab-test", 1, 1
SHA1 = load_fixture("merge_request.open.json", host="gitlab")["object_attributes"]["last_commit"][
    "id"
]
SHA2 = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b"
HOOK_TOKEN = "gitlab-hook-token-e2e"
NAMESPACE = "staging-gitlab-test-mr-1-7474"
URL = "https://gitlab-test-mr-1-7474.staging.example.com/"


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    with FakeGitLab() as fake:
        fake.add_project(PROJECT, PROJECT_ID)
        fake.add_mr(PROJECT, IID, SHA1, branch="ms-viewport")
        yield fake


def gitlab_config(base: Config, gitlab: FakeGitLab) -> Config:
    return replace(
        base,
        gitlab=GitLabConfig(
            url=gitlab.url, token=Secret(gitlab.token), webhook_secret=Secret(HOOK_TOKEN)
        ),
        repos=(RepoConfig(host="gitlab", repo=PROJECT),),
    )


def mr_hook(action: str, sha: str = SHA1) -> dict[str, Any]:
    """A variant of GitLab's example Merge Request Hook: another action and/or head."""
    payload = copy.deepcopy(load_fixture("merge_request.open.json", host="gitlab"))
    attributes = payload["object_attributes"]
    attributes["action"] = action
    attributes["last_commit"]["id"] = sha
    if action == "update":
        attributes["oldrev"] = SHA1
    return payload


async def deliver(client: httpx.AsyncClient, payload: dict[str, Any], key: str) -> None:
    response = await client.post(
        "/webhooks/gitlab",
        content=json.dumps(payload).encode(),
        headers={
            "Content-Type": "application/json",
            "X-Gitlab-Event": "Merge Request Hook",
            "X-Gitlab-Token": HOOK_TOKEN,
            "Idempotency-Key": key,
        },
    )
    assert response.status_code == 202, response.text


def final_status(gitlab: FakeGitLab, sha: str, state: str) -> dict[str, Any] | None:
    matching = [s for s in gitlab.statuses(PROJECT, sha) if s["status"] == state]
    return matching[-1] if matching else None


async def test_a_merge_request_gets_a_staging_updated_on_push_and_removed_on_close(
    redis_url: str, gitlab: FakeGitLab, kube: FakeKube, tmp_path: Path
) -> None:
    from tests.fakes.github import FakeGitHub

    with FakeGitHub() as unused_github:  # bot_config wants one; a GitLab-only bot never calls it
        config = gitlab_config(
            bot_config(redis_url, unused_github, kube, tmp_path, app=False), gitlab
        )
    async with running_bot(config) as bot:
        await deliver(bot, mr_hook("open"), "open-1")
        status = await eventually(lambda: final_status(gitlab, SHA1, "success"), "status success")
        assert status["name"] == "staging" and status["target_url"] == URL
        posted = [call.body["state"] for call in gitlab.calls("POST", r"/statuses/")]
        assert posted[0] == "running" and posted[-1] == "success"  # first feedback came first
        namespace = kube.namespace(NAMESPACE)
        assert namespace is not None
        assert namespace["metadata"]["labels"][LABEL_HOST] == "gitlab"
        assert namespace["metadata"]["labels"][LABEL_REPO_ID] == str(PROJECT_ID)
        note = await eventually(
            lambda: next((n for n in gitlab.notes(PROJECT, IID) if "running" in n["body"]), None),
            "note says running",
        )
        assert URL in note["body"] and len(gitlab.notes(PROJECT, IID)) == 1
        (environment,) = await eventually(lambda: gitlab.environments(PROJECT), "environment")
        assert environment["name"] == "review/mr-1" and environment["external_url"] == URL

        gitlab.set_head(PROJECT, IID, SHA2)
        await deliver(bot, mr_hook("update", SHA2), "update-1")
        await eventually(lambda: final_status(gitlab, SHA2, "success"), "status on the new head")
        edited = await eventually(
            lambda: next((n for n in gitlab.notes(PROJECT, IID) if SHA2[:7] in n["body"]), None),
            "note shows the new head",
        )
        assert edited["id"] == note["id"] and len(gitlab.notes(PROJECT, IID)) == 1

        gitlab.close_mr(PROJECT, IID, merged=True)
        await deliver(bot, mr_hook("merge", SHA2), "merge-1")
        await eventually(lambda: kube.namespace(NAMESPACE) is None, "namespace deleted", within=10)
        await eventually(
            lambda: "gone" in gitlab.notes(PROJECT, IID)[0]["body"], "note says the staging is gone"
        )
        await eventually(
            lambda: gitlab.environments(PROJECT)[0]["state"] == "stopped", "environment stopped"
        )
        assert len(gitlab.notes(PROJECT, IID)) == 1
