"""Small builders shared by tests: configs, signed deliveries, fixture variants."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import uuid
from dataclasses import replace
from typing import Any

from redis.asyncio import Redis

from bot.config import (
    Config,
    GitHubConfig,
    KubernetesConfig,
    RedisConfig,
    RepoConfig,
    Secret,
    StagingConfig,
    SweepConfig,
)
from tests.conftest import load_fixture

WEBHOOK_SECRET = "whsec-test-3f9a"
REPO = "Codertocat/Hello-World"
REPO_ID = 186853002
PR_HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"  # head of the fixture's pull request #2


def make_config(redis_url: str, **sections: Any) -> Config:
    config = Config(
        redis=RedisConfig(url=redis_url, key_prefix="stagingbot-test"),
        github=GitHubConfig(webhook_secret=Secret(WEBHOOK_SECRET), token=Secret("ghp-test-token")),
        kubernetes=KubernetesConfig(rollout_poll=0.05, rollout_deadline=30.0),
        staging=StagingConfig(
            base_domain="staging.example.com",
            secret_key=Secret("test-secret-key"),
            image="registry.example.com/hello:{sha}",
        ),
        repos=(RepoConfig(host="github", repo=REPO),),
        sweep=SweepConfig(interval=0),  # no cron sweep in the middle of a test
    )
    return replace(config, **sections)


async def idle(redis: Redis, prefix: str) -> bool:
    """No job queued (due or deferred) or running, and no event a worker has yet to handle.

    arq's queue and in-progress marks alone are not enough: arq drops a finished job's id
    before `requeue_if_needed` queues the job again for an event that arrived while it
    ran, so for a moment both are empty while a staging still has work to do (its
    generation is past what the worker handled). A job stays in the queue while it runs.
    """
    if await redis.zcard(f"{prefix}:queue"):
        return False
    async for _ in redis.scan_iter(match="arq:in-progress:*"):
        return False
    for key in await redis.smembers(f"{prefix}:stagings"):
        name = f"{prefix}:staging:{key.decode()}"
        generation, handled = await redis.hmget(name, ["generation", "handled"])
        if int(generation or 0) > int(handled or 0):
            return False
    return True


def signed_headers(body: bytes, event: str, delivery: str | None = None) -> dict[str, str]:
    digest = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={digest}",
        "User-Agent": "GitHub-Hookshot/test",
    }


def pr_payload(action: str, sha: str | None = None, fixture: str | None = None) -> dict[str, Any]:
    """A variant of GitHub's example pull_request payload: another action and/or head SHA."""
    name = (
        fixture
        or {
            "opened": "pull_request.opened.json",
            "synchronize": "pull_request.synchronize.json",
            "closed": "pull_request.closed.json",
            "reopened": "pull_request.reopened.json",
        }[action]
    )
    payload = copy.deepcopy(load_fixture(name))
    payload["action"] = action
    if sha is not None:
        if action == "synchronize":
            payload["before"] = payload["pull_request"]["head"]["sha"]
            payload["after"] = sha
        payload["pull_request"]["head"]["sha"] = sha
    return payload


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def comment_payload(
    body: str, login: str = "octocat", comment_id: int = 9001, number: int = 2
) -> dict[str, Any]:
    """GitHub's example issue_comment.created, moved onto pull request `number`.

    A comment on a pull request is an issue comment whose `issue.pull_request` holds the
    pull request's links (as in the captured issue_comment.created.on-pull-request fixture).
    """
    payload = copy.deepcopy(load_fixture("issue_comment.created.json"))
    issue, comment = payload["issue"], payload["comment"]
    issue["number"] = number
    issue["pull_request"] = {
        "url": f"https://api.github.com/repos/{REPO}/pulls/{number}",
        "html_url": f"https://github.com/{REPO}/pull/{number}",
        "diff_url": f"https://github.com/{REPO}/pull/{number}.diff",
        "patch_url": f"https://github.com/{REPO}/pull/{number}.patch",
    }
    comment.update(id=comment_id, body=body)
    comment["user"] = {**comment["user"], "login": login}
    payload["sender"] = {**payload["sender"], "login": login}
    return payload


# What the last round of a job following a rollout writes once it sees it ready (`_finish`
# and `_report` in handlers/reconcile.py, then `handled`): a wipe just before that round
# leaves these, and nothing else, in Redis (a partial record).
JOB_WRITES = (
    "phase",
    "reason",
    "check_sha",
    "check_state",
    "check_id",
    "comment_id",
    "deployment_sha",
    "deployment_id",
    "reported",
    "check_shas",
    "deployment_shas",
    "handled",
    "attempts",
)
