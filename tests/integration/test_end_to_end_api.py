"""End to end: the API steers a real bot (web app + arq worker) like a slash-command would.

The same local fake GitHub and Kubernetes as tests/integration/test_end_to_end.py; the
API's actions reach the cluster through the worker, and a sweep asked for runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import pytest

from bot.config import ApiConfig, ApiToken, Secret
from tests.fakes.github import FakeGitHub
from tests.fakes.kube import FakeKube
from tests.helpers import REPO, REPO_ID, pr_payload
from tests.integration.test_end_to_end import (
    NAMESPACE,
    SHA1,
    bot_config,
    completed,
    deliver,
    eventually,
    running_bot,
)

TOKEN = "operator-token-0123456789"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
PATH = "/api/stagings/" + quote(f"github:{REPO}#2", safe="")


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.add_repo(REPO, REPO_ID, installation_id=1)
        fake.add_pull(REPO, 2, SHA1, branch="changes")
        yield fake


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube() as fake:
        yield fake


async def eventually_async(probe: Callable[[], Awaitable[str]], wanted: str) -> None:
    deadline, last = time.monotonic() + 20, ""
    while time.monotonic() < deadline:
        last = await probe()
        if last == wanted:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"state stayed {last!r}, never {wanted!r}")


def replicas(kube: FakeKube) -> int | None:
    deployment = kube.get("Deployment", NAMESPACE, "web") or {}
    value = deployment.get("spec", {}).get("replicas")
    return int(value) if value is not None else None


async def test_api_actions_reach_the_cluster_through_the_worker(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    config = bot_config(redis_url, github, kube, tmp_path, app=True)
    config = replace(config, api=ApiConfig((ApiToken("ci", Secret(TOKEN), "operator"),)))
    async with running_bot(config) as bot:
        await deliver(bot, pr_payload("opened"))
        await eventually(lambda: completed(github.check_runs(REPO, SHA1)), "staging running")

        async def state() -> str:
            return str((await bot.get(PATH, headers=HEADERS)).json()["state"])

        archived = await bot.post(f"{PATH}/archive", headers=HEADERS)
        assert archived.status_code == 202
        await eventually_async(state, "archived")
        assert replicas(kube) == 0

        assert (await bot.post(f"{PATH}/restore", headers=HEADERS)).status_code == 202
        await eventually_async(state, "running")
        assert replicas(kube) != 0

        set_ = await bot.put(f"{PATH}/overrides/GREETING", headers=HEADERS, json={"value": "hi"})
        assert set_.status_code == 200
        await eventually(
            lambda: (
                (kube.get("ConfigMap", NAMESPACE, "stagingbot-overrides") or {})
                .get("data", {})
                .get("GREETING")
                == "hi"
            ),
            "override in the ConfigMap",
        )

        assert (await bot.post(f"{PATH}/destroy", headers=HEADERS)).status_code == 202
        await eventually(lambda: kube.namespace(NAMESPACE) is None, "namespace deleted")
        await eventually_async(state, "gone")
        detail = (await bot.get(PATH, headers=HEADERS)).json()
        assert {"archive via API", "restore via API", "destroy via API"} <= {
            entry["action"] for entry in detail["history"] if entry["by"] == "ci"
        }

        swept = await bot.post("/api/sweep", headers=HEADERS)
        assert swept.status_code == 202
        await eventually(
            lambda: github.calls("GET", r"/repos/[^/]+/[^/]+/pulls$"),
            "the sweep listed the open pull requests",
        )
