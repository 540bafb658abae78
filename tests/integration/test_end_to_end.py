"""End to end: signed GitHub deliveries through the real web app and a real arq worker.

PyGithub talks to the local fake GitHub and the `kubernetes` client to the local fake
Kubernetes API, both over real HTTP; the queue and the state live in a real redis-server.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis

from bot.config import Config, GitHubConfig, KubernetesConfig, Secret, ServerConfig
from bot.naming import LABEL_INSTANCE, LABEL_NUMBER, LABEL_REPO_ID, MANAGED_BY
from bot.serve import _Server
from bot.services import Services
from bot.web import create_app, redis_client
from bot.worker import build_services, close_services, make_worker, stop_worker
from tests.conftest import ROOT, free_port
from tests.fakes.github import FakeGitHub
from tests.fakes.kube import FakeKube
from tests.helpers import (
    PR_HEAD,
    REPO,
    REPO_ID,
    WEBHOOK_SECRET,
    body_of,
    idle,
    make_config,
    pr_payload,
    signed_headers,
)

SHA1 = PR_HEAD
SHA2 = "5b4c0f3e9d2a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"
NAMESPACE = "staging-hello-world-pr-2-0085"
URL = "https://hello-world-pr-2-0085.staging.example.com/"
T = TypeVar("T")


def bot_config(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path, app: bool
) -> Config:
    kubeconfig = tmp_path / "kubeconfig"
    kube.write_kubeconfig(kubeconfig)
    if app:
        key = tmp_path / "app.pem"
        key.write_text(github.private_key_pem)
        auth: dict[str, Any] = {"app_id": github.app_id, "private_key_file": str(key)}
    else:
        auth = {"token": Secret(github.personal_token)}
    config = make_config(redis_url)
    return replace(
        config,
        server=ServerConfig(host="127.0.0.1", port=free_port()),
        github=GitHubConfig(webhook_secret=Secret(WEBHOOK_SECRET), api_url=github.url, **auth),
        kubernetes=KubernetesConfig(
            kubeconfig=str(kubeconfig),
            manifests=str(ROOT / "manifests" / "staging"),
            rollout_poll=0.05,
            rollout_deadline=30,
        ),
    )


@contextlib.asynccontextmanager
async def running_bot(
    config: Config, prepare: Callable[[Services], None] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """The web app on a real port and a worker, as `stagingbot run` runs them; `prepare`
    sees the worker's services before it starts (say, to set its clock)."""
    server = _Server(
        uvicorn.Config(
            create_app(config), host="127.0.0.1", port=config.server.port, log_config=None
        )
    )
    web = asyncio.create_task(server.serve())
    redis = redis_client(config)
    services = await build_services(config, redis)
    if prepare is not None:
        prepare(services)
    worker = make_worker(config, redis_client(config), services, handle_signals=False)
    work = asyncio.create_task(worker.async_run())
    while not server.started:  # noqa: ASYNC110 - uvicorn's Server offers no started event
        await asyncio.sleep(0.01)
    base = f"http://127.0.0.1:{config.server.port}"
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            yield client
    finally:
        server.should_exit = True
        await stop_worker(worker, work)
        await close_services(services)
        await redis.aclose(close_connection_pool=True)
        await web


async def eventually(probe: Callable[[], T | None], what: str, within: float = 20.0) -> T:
    """Poll until `probe` returns something truthy; fail saying what never happened."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        await asyncio.sleep(0.02)


async def settled(config: Config, within: float = 20.0) -> None:
    """Until the worker has nothing left to do (`tests.helpers.idle`): every job it was
    given has ended, with all its writes, and no event waits for another."""
    redis = Redis.from_url(config.redis.url)
    try:
        deadline = time.monotonic() + within
        while not await idle(redis, config.redis.key_prefix):
            if time.monotonic() > deadline:
                pytest.fail("never happened: the worker idle")
            await asyncio.sleep(0.02)
    finally:
        await redis.aclose()


async def deliver(client: httpx.AsyncClient, payload: dict[str, Any]) -> None:
    body = body_of(payload)
    response = await client.post(
        "/webhooks/github", content=body, headers=signed_headers(body, "pull_request")
    )
    assert response.status_code == 202, response.text


def completed(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    done = [run for run in runs if run["status"] == "completed"]
    return done[-1] if done else None


def web_image(kube: FakeKube) -> str:
    deployment = kube.get("Deployment", NAMESPACE, "web") or {}
    containers = (
        deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    )
    return str(containers[0]["image"]) if containers else ""


async def test_a_pull_request_gets_a_staging_updated_on_push_and_removed_on_close(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    config = bot_config(redis_url, github, kube, tmp_path, app=True)
    async with running_bot(config) as bot:
        # Opened: the fixture exactly as GitHub's example has it.
        await deliver(bot, pr_payload("opened"))
        run = await eventually(
            lambda: completed(github.check_runs(REPO, SHA1)), "check run completed"
        )
        assert run["name"] == "staging" and run["conclusion"] == "success", run
        assert run["details_url"] == URL
        created = [c for c in github.calls("POST", r"/check-runs$")]
        assert created and created[0].body["status"] == "in_progress"  # first feedback came first

        namespace = kube.namespace(NAMESPACE)
        assert namespace is not None
        labels = namespace["metadata"]["labels"]
        assert labels[MANAGED_BY] == "stagingbot"
        assert labels[LABEL_REPO_ID] == str(REPO_ID) and labels[LABEL_NUMBER] == "2"
        assert labels[LABEL_INSTANCE] == "default"
        assert web_image(kube) == f"registry.example.com/hello:{SHA1}"
        assert kube.get("StatefulSet", NAMESPACE, "db") is not None  # its own database

        # The check run is written first; the comment and the deployment follow it.
        comment = await eventually(
            lambda: next((c for c in github.comments(REPO, 2) if "running" in c["body"]), None),
            "comment says running",
        )
        assert len(github.comments(REPO, 2)) == 1
        assert URL in comment["body"] and SHA1[:7] in comment["body"]
        # The deployment is created with the outcome, after the comment.
        (deployment,) = await eventually(lambda: github.deployments(REPO), "a deployment")
        assert len(github.deployments(REPO)) == 1
        assert deployment["environment"] == "pr-2" and deployment["sha"] == SHA1
        assert deployment["transient_environment"] is True
        states = await eventually(
            lambda: [
                s for s in github.deployment_statuses(deployment["id"]) if s["state"] == "success"
            ],
            "deployment status success",
        )
        assert states[-1]["environment_url"] == URL

        # A push: the same staging at the new head, the same comment edited.
        github.set_head(REPO, 2, SHA2)
        await deliver(bot, pr_payload("synchronize", sha=SHA2))
        run2 = await eventually(
            lambda: completed(github.check_runs(REPO, SHA2)), "check run on the new head"
        )
        assert run2["conclusion"] == "success"
        assert web_image(kube) == f"registry.example.com/hello:{SHA2}"
        edited = await eventually(
            lambda: next((c for c in github.comments(REPO, 2) if SHA2[:7] in c["body"]), None),
            "comment shows the new head",
        )
        assert edited["id"] == comment["id"] and len(github.comments(REPO, 2)) == 1

        # Closed: namespace deleted, comment says so, deployment inactive.
        github.close_pull(REPO, 2)
        await deliver(bot, pr_payload("closed", sha=SHA2))
        await eventually(lambda: kube.namespace(NAMESPACE) is None, "namespace deleted", within=10)
        await eventually(lambda: "gone" in github.comments(REPO, 2)[0]["body"], "comment says gone")
        (last,) = github.comments(REPO, 2)
        assert last["id"] == comment["id"]
        latest = max(github.deployments(REPO), key=lambda d: d["id"])
        await eventually(
            lambda: github.deployment_statuses(latest["id"])[-1]["state"] == "inactive",
            "deployment inactive",
        )


async def test_with_a_personal_token_the_bot_reports_a_commit_status_instead(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    config = bot_config(redis_url, github, kube, tmp_path, app=False)
    async with running_bot(config) as bot:
        await deliver(bot, pr_payload("opened"))
        final = await eventually(
            lambda: [s for s in github.statuses(REPO, SHA1) if s["state"] == "success"],
            "success status",
        )
        assert final[-1]["context"] == "staging" and final[-1]["target_url"] == URL
        assert github.statuses(REPO, SHA1)[0]["state"] == "pending"
        assert github.calls(path=r"/check-runs") == []
        await eventually(
            lambda: "running" in github.comments(REPO, 2)[0]["body"], "comment says running"
        )


async def test_a_failing_rollout_is_reported_on_the_pull_request_in_words(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    kube.fail_image_pull("registry.example.com/hello")
    config = bot_config(redis_url, github, kube, tmp_path, app=True)
    async with running_bot(config) as bot:
        await deliver(bot, pr_payload("opened"))
        run = await eventually(
            lambda: completed(github.check_runs(REPO, SHA1)), "check run completed"
        )
        assert run["conclusion"] == "failure"
        assert "image cannot be pulled" in run["output"]["title"]
        await eventually(
            lambda: "image cannot be pulled" in github.comments(REPO, 2)[0]["body"],
            "comment gives the reason",
        )
        # The commit's deployment is created with its outcome: failed, with the reason.
        (deployment,) = await eventually(lambda: github.deployments(REPO), "a deployment")
        (status,) = await eventually(
            lambda: github.deployment_statuses(deployment["id"]), "its status"
        )
        assert status["state"] == "failure" and "image cannot be pulled" in status["description"]


async def test_duplicate_and_out_of_order_deliveries_leave_the_staging_at_the_current_head(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    config = bot_config(redis_url, github, kube, tmp_path, app=True)
    async with running_bot(config) as bot:
        github.set_head(REPO, 2, SHA2)
        newer = body_of(pr_payload("synchronize", sha=SHA2))
        headers = signed_headers(newer, "pull_request", delivery="d-newer")
        for _ in range(5):
            assert (
                await bot.post("/webhooks/github", content=newer, headers=headers)
            ).status_code == 202
        await deliver(bot, pr_payload("synchronize", sha=SHA1))  # older, arrives late
        await eventually(lambda: completed(github.check_runs(REPO, SHA2)), "check run on the head")
        await settled(config)  # every delivery acted on: a wrong rollback would have happened
        assert web_image(kube) == f"registry.example.com/hello:{SHA2}"
        assert github.check_runs(REPO, SHA1) == []
        assert len(github.comments(REPO, 2)) == 1
