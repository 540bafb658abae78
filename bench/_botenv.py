"""The real web app + arq worker in-process against FakeGitHub and FakeKube, as
tests/integration/test_end_to_end.py runs them, for the latency/coalescing/budget benches."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import _common  # noqa: F401  (puts the repo on sys.path)
import httpx

from bot.naming import LABEL_NUMBER, LABEL_REPO_ID
from tests.conftest import load_fixture
from tests.fakes.github import FakeGitHub, Recorded
from tests.fakes.kube import FakeKube
from tests.helpers import REPO, REPO_ID, signed_headers
from tests.integration.test_end_to_end import bot_config, running_bot

T = TypeVar("T")


class TimedLog(list):  # type: ignore[type-arg]
    """FakeGitHub's request log with the time each request was recorded (the fake records a
    request after handling it, before answering). `Recorded` has no timestamp, and the
    bench must not change tests/, so it swaps this list in: `calls()` still works."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, item: Recorded) -> None:  # type: ignore[override]
        self.times.append(time.monotonic())
        super().append(item)


@dataclass
class Env:
    bot: httpx.AsyncClient
    github: FakeGitHub
    kube: Any  # FakeKube, or _KubeProcess when FakeKube runs in a subprocess
    log: TimedLog


class _KubeProcess:
    """FakeKube in a subprocess (bench/_kube_process.py): only its kubeconfig is usable here."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="bench-kube-")
        self.config = Path(self.dir) / "kubeconfig"
        self.proc = subprocess.Popen(  # noqa: S603
            [sys.executable, str(Path(__file__).with_name("_kube_process.py")), str(self.config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("FakeKube subprocess did not start")

    def write_kubeconfig(self, path: str | Path, context: str = "fake") -> str:
        shutil.copy(self.config, path)
        return str(path)

    def __enter__(self) -> _KubeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


@contextlib.asynccontextmanager
async def bot_env(
    redis_url: str, rollout_poll: float | None = None, kube_process: bool = False
) -> AsyncIterator[Env]:
    """`rollout_poll` None keeps the end-to-end test's 0.05 s; give a value to override it.
    `kube_process`: FakeKube in its own process (then `Env.kube` only writes kubeconfigs)."""
    kube_cm = _KubeProcess() if kube_process else FakeKube()
    with FakeGitHub() as github, kube_cm as kube, tempfile.TemporaryDirectory() as tmp:
        log = TimedLog()
        github.requests = log
        github.add_repo(REPO, REPO_ID, installation_id=1)
        config = bot_config(redis_url, github, kube, Path(tmp), app=True)
        if rollout_poll is not None:
            config = replace(
                config, kubernetes=replace(config.kubernetes, rollout_poll=rollout_poll)
            )
        async with running_bot(config) as bot:
            yield Env(bot, github, kube, log)


def sha_for(*parts: object) -> str:
    return hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()  # noqa: S324


def pr_body(action: str, number: int, sha: str, before: str | None = None) -> bytes:
    fixture = {
        "opened": "pull_request.opened.json",
        "synchronize": "pull_request.synchronize.json",
        "closed": "pull_request.closed.json",
    }[action]
    payload: dict[str, Any] = copy.deepcopy(load_fixture(fixture))
    payload["action"] = action
    payload["number"] = number
    payload["pull_request"]["number"] = number
    payload["pull_request"]["head"]["sha"] = sha
    if action == "synchronize":
        payload["before"] = before or payload["pull_request"]["head"]["sha"]
        payload["after"] = sha
    return json.dumps(payload).encode()


async def deliver(bot: httpx.AsyncClient, body: bytes) -> int:
    response = await bot.post(
        "/webhooks/github", content=body, headers=signed_headers(body, "pull_request")
    )
    return response.status_code


async def eventually(probe: Callable[[], T | None], what: str, within: float = 30.0) -> T:
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"never happened within {within}s: {what}")
        await asyncio.sleep(0.02)


def completed(github: FakeGitHub, sha: str) -> dict[str, Any] | None:
    done = [run for run in github.check_runs(REPO, sha) if run["status"] == "completed"]
    return done[-1] if done else None


def namespace_of(kube: FakeKube, number: int) -> str | None:
    """The staging namespace of PR `number`, found by its labels (names may carry a hash)."""
    for ns in kube.objects("Namespace"):
        labels = ns.get("metadata", {}).get("labels", {})
        if labels.get(LABEL_NUMBER) == str(number) and labels.get(LABEL_REPO_ID) == str(REPO_ID):
            return str(ns["metadata"]["name"])
    return None


def web_image(kube: FakeKube, number: int) -> str:
    namespace = namespace_of(kube, number)
    deployment = (kube.get("Deployment", namespace, "web") if namespace else None) or {}
    containers = (
        deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    )
    return str(containers[0]["image"]) if containers else ""


_TEMPLATES = [
    (re.compile(r"^/repos/[^/]+/[^/]+"), "/repos/{owner}/{repo}"),
    (re.compile(r"^/repositories/\d+"), "/repositories/{id}"),
    (re.compile(r"/[0-9a-f]{40}(?=/|$)"), "/{sha}"),
    (re.compile(r"/\d+(?=/|$)"), "/{n}"),
]


def template(path: str) -> str:
    for pattern, replacement in _TEMPLATES:
        path = pattern.sub(replacement, path)
    return path
