"""The bot as an operator runs it, for the reliability suite.

`stagingbot web` and one or more workers run as subprocesses from a TOML configuration
that points at the test's redis-server, the fake GitHub and the fake Kubernetes API, and
carries a recognizable value for every secret (`secrets_for_scan`), so the leak scan can look for
them in everything the run produced.

Workers are started through `tests/reliability/_worker.py`: `stagingbot worker` with
test-sized arq timeouts (see there), so a job held by a killed worker is taken up again
after seconds instead of the production ten minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from redis.asyncio import Redis

from bot.naming import LABEL_NUMBER, LABEL_REPO_ID
from tests.conftest import ROOT, free_port
from tests.fakes.github import FakeGitHub
from tests.fakes.kube import FakeKube
from tests.helpers import REPO, REPO_ID, body_of, idle, pr_payload
from tests.reliability import secrets_for_scan as secrets

T = TypeVar("T")
PREFIX = "stagingbot-rel"
APPLY = "application/apply-patch+yaml"
IMAGE = "registry.example.com/hello"
JOB_TIMEOUT = 5.0  # seconds: a reconcile round in these tests takes well under one
SECRET_KEY = "DB_PASSWORD"  # an override key listed in commands.secret_keys


def config_text(
    redis_url: str, github: FakeGitHub, kube: FakeKube, workdir: Path, port: int, **extra: str
) -> str:
    kubeconfig = kube.write_kubeconfig(workdir / "kubeconfig")
    key_file = workdir / "app.pem"
    key_file.write_text(github.private_key_pem)
    deadline = extra.get("rollout_deadline", "30s")
    return f"""
[server]
host = "127.0.0.1"
port = {port}

[redis]
url = "{redis_url}"
key_prefix = "{PREFIX}"

[github]
api_url = "{github.url}"
app_id = {github.app_id}
private_key_file = "{key_file}"
webhook_secret = "{secrets.GITHUB_WEBHOOK_SECRET}"

[gitlab]
token = "{secrets.GITLAB_TOKEN}"
webhook_secret = "{secrets.GITLAB_WEBHOOK_SECRET}"

[kubernetes]
kubeconfig = "{kubeconfig}"
manifests = "{ROOT / "manifests" / "staging"}"
rollout_poll = "0.1s"
rollout_deadline = "{deadline}"

[staging]
base_domain = "staging.example.com"
secret_key = "{secrets.STAGING_SECRET_KEY}"
image = "{IMAGE}:{{sha}}"

[commands]
secret_keys = ["{SECRET_KEY}"]

[sweep]
interval = 0

[log]
level = "debug"
format = "json"

[[api.tokens]]
name = "ops"
token = "{secrets.API_TOKEN}"
role = "operator"

[[repos]]
host = "github"
repo = "{REPO}"
"""


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class Bot:
    """The web app and workers of one scenario, as subprocesses, and the clients to watch them."""

    workdir: Path
    config: Path
    port: int
    redis: Redis
    procs: list[Proc] = field(default_factory=list)
    kills: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, name: str, args: list[str]) -> Proc:
        log = self.workdir / f"{name}-{len(self.procs)}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("STAGINGBOT_CONFIG", None)
        with log.open("wb") as out:
            popen = subprocess.Popen(  # noqa: S603
                [sys.executable, *args, "--config", str(self.config)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    async def start_web(self) -> Proc:
        proc = self._spawn("web", ["-c", "from bot.cli import entry; entry()", "web"])
        async with httpx.AsyncClient(base_url=self.url) as client:
            deadline = time.monotonic() + 20
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/healthz")).status_code == 200:
                        return proc
                if not proc.alive or time.monotonic() > deadline:
                    pytest.fail(f"stagingbot web did not start:\n{proc.log.read_text()[-3000:]}")
                await asyncio.sleep(0.05)

    def start_worker(self) -> Proc:
        return self._spawn("worker", ["-m", "tests.reliability._worker"])

    def workers(self) -> list[Proc]:
        return [p for p in self.procs if p.name == "worker" and p.alive]

    def kill(self, proc: Proc) -> None:
        """SIGKILL: no shutdown hook, no cleanup; whatever it held stays held."""
        proc.popen.send_signal(signal.SIGKILL)
        proc.popen.wait(timeout=10)
        self.kills += 1

    @contextlib.asynccontextmanager
    async def workers_paused(self) -> AsyncIterator[None]:
        """Every worker stopped (SIGSTOP) inside, continued (SIGCONT) after: meanwhile no
        job starts and a running one goes no further, so what Redis shows stays true."""
        paused = self.workers()
        for proc in paused:
            proc.popen.send_signal(signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 10
            while not all(_stopped(proc) for proc in paused):  # the signal is asynchronous
                if time.monotonic() > deadline:
                    pytest.fail("a worker did not stop on SIGSTOP")
                await asyncio.sleep(0.001)
            yield
        finally:
            for proc in paused:
                proc.popen.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.alive:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.popen.wait(timeout=25)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(timeout=5)

    def logs(self) -> str:
        return "\n".join(p.log.read_text(errors="replace") for p in self.procs)

    async def deliver(self, client: httpx.AsyncClient, payload: dict[str, Any]) -> None:
        body = body_of(payload)
        response = await client.post(
            "/webhooks/github", content=body, headers=secrets.github_headers(body, "pull_request")
        )
        assert response.status_code == 202, response.text


def _stopped(proc: Proc) -> bool:
    """Every thread of the process is stopped (state T in /proc), or the process is gone."""
    states = []
    for stat in Path(f"/proc/{proc.popen.pid}/task").glob("*/stat"):
        with contextlib.suppress(OSError):
            states.append(stat.read_text().rsplit(")", 1)[1].split()[0])
    return all(state in ("T", "t", "Z", "X") for state in states)


@contextlib.asynccontextmanager
async def running_bot(
    redis_url: str,
    github: FakeGitHub,
    kube: FakeKube,
    workdir: Path,
    *,
    workers: int = 1,
    **extra: str,
) -> AsyncIterator[Bot]:
    """`stagingbot web` and `workers` workers, stopped (SIGTERM) at the end."""
    port = free_port()
    config = workdir / "stagingbot.toml"
    config.write_text(config_text(redis_url, github, kube, workdir, port, **extra))
    redis = Redis.from_url(redis_url)
    bot = Bot(workdir, config, port, redis)
    try:
        await bot.start_web()
        for _ in range(workers):
            bot.start_worker()
        yield bot
    finally:
        bot.stop()
        await redis.aclose()


def sha_for(number: int, push: int) -> str:
    """A distinct, recognizable 40-hex commit per (request, push)."""
    return f"{number:04x}{push:04x}".ljust(40, "a")


def _moved(action: str, number: int, sha: str) -> dict[str, Any]:
    """GitHub's example delivery for `action`, moved onto request `number` at `sha`."""
    payload = pr_payload(action, sha=sha)
    pull = payload["pull_request"]
    payload["number"] = pull["number"] = number
    pull["head"]["ref"] = f"feature-{number}"
    pull["html_url"] = f"https://github.com/{REPO}/pull/{number}"
    return payload


def opened(number: int, sha: str) -> dict[str, Any]:
    return _moved("opened", number, sha)


def pushed(number: int, sha: str) -> dict[str, Any]:
    return _moved("synchronize", number, sha)


def closed(number: int, sha: str) -> dict[str, Any]:
    return _moved("closed", number, sha)


def staging_key(number: int) -> str:
    return f"github:{REPO_ID}:{number}"


def namespace_of(kube: FakeKube, number: int) -> dict[str, Any] | None:
    """The staging's namespace, found by its labels (names may carry a hash suffix)."""
    for namespace in kube.objects("Namespace"):
        labels = namespace["metadata"].get("labels", {})
        if labels.get(LABEL_NUMBER) == str(number) and labels.get(LABEL_REPO_ID) == str(REPO_ID):
            return namespace
    return None


def web_image(kube: FakeKube, number: int) -> str:
    namespace = namespace_of(kube, number)
    if namespace is None:
        return ""
    deployment = kube.get("Deployment", namespace["metadata"]["name"], "web") or {}
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
    return str(containers[0]["image"]) if containers else ""


def applies_to(kube: FakeKube, number: int) -> int:
    """Server-side applies of the staging's Deployment `web` (one per deploy of a commit)."""
    namespace = namespace_of(kube, number)
    if namespace is None:
        return 0
    path = f"/namespaces/{namespace['metadata']['name']}/deployments/web"
    return sum(
        1
        for r in list(kube.requests)
        if r.method == "PATCH" and r.path.endswith(path) and r.content_type.startswith(APPLY)
    )


async def record(bot: Bot, number: int) -> dict[str, str]:
    raw = await bot.redis.hgetall(f"{PREFIX}:staging:{staging_key(number)}")
    return {k.decode(): v.decode() for k, v in raw.items()}


async def settled(bot: Bot) -> bool:
    """No job queued or running for the bot, and no event left unhandled (`helpers.idle`)."""
    return await idle(bot.redis, PREFIX)


async def eventually(probe: Callable[[], Any], what: str, within: float = 30.0) -> Any:
    """Poll `probe` (sync or async) until truthy; fail saying what never happened."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"never happened within {within:g} s: {what}")
        await asyncio.sleep(0.05)


def check_runs_by_sha(github: FakeGitHub) -> dict[str, int]:
    """How many check runs the fake holds for each commit (the bot's only check name)."""
    counts: dict[str, int] = {}
    for call in github.calls("POST", r"/check-runs$"):
        if call.status == 201:
            counts[call.body["head_sha"]] = counts.get(call.body["head_sha"], 0) + 1
    return counts


def sweep_once(bot: Bot) -> str:
    """`stagingbot sweep --config FILE`: one sweep in its own process, said in words."""
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", "from bot.cli import entry; entry()", "sweep"]
        + ["--config", str(bot.config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr
