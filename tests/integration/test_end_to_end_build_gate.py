"""End to end: with `staging.wait_for`, a commit is deployed only once its build succeeded.

Signed deliveries through the real web app, a real arq worker, PyGithub against the local
fake GitHub (whose CI check runs and statuses the tests write), the fake cluster and a
real redis-server. The build events are variants of GitHub's example payloads.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from bot.config import ApiConfig, ApiToken, Config, Secret
from tests.conftest import load_fixture
from tests.fakes.github import FakeGitHub
from tests.fakes.kube import FakeKube
from tests.helpers import REPO, REPO_ID, body_of, pr_payload, signed_headers
from tests.integration.test_end_to_end import (
    NAMESPACE,
    SHA1,
    SHA2,
    bot_config,
    deliver,
    eventually,
    running_bot,
    web_image,
)

TOKEN = "ci-operator-token-0123456789"
PATH = "/api/stagings/github%3ACodertocat%2FHello-World%232"


def gated(config: Config, *names: str) -> Config:
    return replace(config, staging=replace(config.staging, wait_for=names))


def check_run_event(name: str, sha: str, conclusion: str = "success") -> dict[str, Any]:
    """GitHub's example check_run.completed, for another check name, commit or conclusion."""
    payload = copy.deepcopy(load_fixture("check_run.completed.abridged.json"))
    run = payload["check_run"]
    run.update(name=name, head_sha=sha, conclusion=conclusion)
    run["check_suite"]["head_sha"] = sha
    for pull in run["pull_requests"]:
        pull["head"]["sha"] = sha
    return payload


def status_event(context: str, sha: str, state: str) -> dict[str, Any]:
    """GitHub's example status delivery, for another context, commit or state."""
    payload = copy.deepcopy(load_fixture("status.with-installation.abridged.json"))
    payload.update(context=context, sha=sha, state=state)
    payload["commit"]["sha"] = sha
    return payload


async def send(bot: httpx.AsyncClient, event: str, payload: dict[str, Any]) -> dict[str, Any]:
    body = body_of(payload)
    response = await bot.post("/webhooks/github", content=body, headers=signed_headers(body, event))
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


def staging_run(github: FakeGitHub, sha: str, status: str | None = None) -> dict[str, Any] | None:
    """The bot's own check run on `sha` (CI's runs have other names)."""
    runs = [r for r in github.check_runs(REPO, sha) if r["name"] == "staging"]
    runs = [r for r in runs if status is None or r["status"] == status]
    return runs[-1] if runs else None


def sticky_saying(github: FakeGitHub, text: str) -> dict[str, Any] | None:
    return next((c for c in github.comments(REPO, 2) if text in c["body"]), None)


async def test_an_opened_pull_request_waits_for_its_build_and_deploys_when_it_succeeds(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    config = gated(bot_config(redis_url, github, kube, tmp_path, app=True), "build")
    async with running_bot(config) as bot:
        await deliver(bot, pr_payload("opened"))

        comment = await eventually(
            lambda: sticky_saying(github, "waiting for build"), "comment says waiting"
        )
        assert "waiting for `build` on ec26c3e" in comment["body"]
        run = await eventually(lambda: staging_run(github, SHA1), "check run written")
        assert run["status"] == "in_progress"
        assert run["output"]["title"].startswith("Waiting for `build` on ec26c3e")
        assert kube.namespace(NAMESPACE) is None  # nothing deployed while CI builds

        github.add_check_run(REPO, SHA1, "lint", "completed", "success")
        ignored = await send(bot, "check_run", check_run_event("lint", SHA1))
        assert "not in staging.wait_for" in ignored["ignored"]

        github.add_check_run(REPO, SHA1, "build", "completed", "success")
        accepted = await send(bot, "check_run", check_run_event("build", SHA1))

        assert accepted["accepted"] == [f"github:{REPO_ID}:2"]
        done = await eventually(lambda: staging_run(github, SHA1, "completed"), "deployed")
        assert done["conclusion"] == "success"
        assert web_image(kube) == f"registry.example.com/hello:{SHA1}"
        await eventually(lambda: sticky_saying(github, "running"), "comment says running")


async def test_a_failed_build_is_not_deployed_and_the_previous_commit_keeps_running(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    config = gated(bot_config(redis_url, github, kube, tmp_path, app=True), "build")
    github.add_check_run(REPO, SHA1, "build", "completed", "success")  # built before it opened
    async with running_bot(config) as bot:
        await deliver(bot, pr_payload("opened"))
        await eventually(lambda: staging_run(github, SHA1, "completed"), "first commit running")

        github.set_head(REPO, 2, SHA2)
        await deliver(bot, pr_payload("synchronize", sha=SHA2))
        await eventually(lambda: sticky_saying(github, "waiting for `build` on 5b4c0f3"), "waits")
        github.add_check_run(REPO, SHA2, "build", "completed", "failure")
        await send(bot, "check_run", check_run_event("build", SHA2, "failure"))

        comment = await eventually(lambda: sticky_saying(github, "build failed"), "says failed")
        assert "`build` failed on 5b4c0f3" in comment["body"]
        assert "keeps running `ec26c3e`" in comment["body"]
        failed = await eventually(lambda: staging_run(github, SHA2, "completed"), "check failed")
        assert failed["conclusion"] == "failure"
        assert failed["output"]["title"] == "`build` failed on 5b4c0f3"
        assert web_image(kube) == f"registry.example.com/hello:{SHA1}"  # left running
        assert staging_run(github, SHA1, "completed")["conclusion"] == "success"  # type: ignore[index]

        # A re-run that succeeds opens the gate.
        github.add_check_run(REPO, SHA2, "build", "completed", "success")
        await send(bot, "check_run", check_run_event("build", SHA2))
        await eventually(
            lambda: web_image(kube) == f"registry.example.com/hello:{SHA2}", "re-run deployed"
        )


async def test_a_newer_push_while_waiting_replaces_the_awaited_commit(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    config = gated(bot_config(redis_url, github, kube, tmp_path, app=True), "build")
    async with running_bot(config) as bot:
        await deliver(bot, pr_payload("opened"))
        await eventually(lambda: staging_run(github, SHA1), "waits for the first commit")
        github.set_head(REPO, 2, SHA2)
        await deliver(bot, pr_payload("synchronize", sha=SHA2))
        await eventually(lambda: sticky_saying(github, "waiting for `build` on 5b4c0f3"), "waits")
        superseded = await eventually(lambda: staging_run(github, SHA1, "completed"), "closed")
        assert superseded["conclusion"] == "cancelled"

        github.add_check_run(REPO, SHA1, "build", "completed", "success")
        late = await send(bot, "check_run", check_run_event("build", SHA1))
        assert late["ignored"] == f"no staging waits for the build of {SHA1[:7]}"
        github.add_check_run(REPO, SHA2, "build", "completed", "success")
        await send(bot, "check_run", check_run_event("build", SHA2))

        done = await eventually(lambda: staging_run(github, SHA2, "completed"), "deployed")
        assert done["conclusion"] == "success"
        assert web_image(kube) == f"registry.example.com/hello:{SHA2}"


async def test_a_commit_status_without_a_pull_request_finds_the_waiting_staging(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    config = gated(bot_config(redis_url, github, kube, tmp_path, app=True), "ci/build")
    async with running_bot(config) as bot:
        await deliver(bot, pr_payload("opened"))
        await eventually(lambda: sticky_saying(github, "waiting for `ci/build`"), "waits")
        github.add_status(REPO, SHA1, "ci/build", "pending")
        pending = await send(bot, "status", status_event("ci/build", SHA1, "pending"))
        assert "only a finished status" in pending["ignored"]

        github.add_status(REPO, SHA1, "ci/build", "success")
        await send(bot, "status", status_event("ci/build", SHA1, "success"))

        await eventually(lambda: staging_run(github, SHA1, "completed"), "deployed")
        assert web_image(kube) == f"registry.example.com/hello:{SHA1}"


async def test_ci_says_the_head_is_built_through_the_api_and_it_deploys_at_once(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    config = gated(bot_config(redis_url, github, kube, tmp_path, app=True), "build")
    config = replace(config, api=ApiConfig((ApiToken("ci", Secret(TOKEN), "operator"),)))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with running_bot(config) as bot:
        await deliver(bot, pr_payload("opened"))
        await eventually(lambda: staging_run(github, SHA1), "waits for the build")

        stale = await bot.post(f"{PATH}/deploy", headers=headers, json={"sha": SHA2})
        assert stale.status_code == 409 and "never rolls back" in stale.json()["error"]
        built = await bot.post(f"{PATH}/deploy", headers=headers, json={"sha": SHA1})
        assert built.status_code == 202

        await eventually(lambda: staging_run(github, SHA1, "completed"), "deployed")
        assert web_image(kube) == f"registry.example.com/hello:{SHA1}"
        history = (await bot.get(PATH, headers=headers)).json()
        assert any("built at ec26c3e, said ci via API" in e["result"] for e in history["history"])
