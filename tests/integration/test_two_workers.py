"""Two `stagingbot worker` processes on one Redis: a staging is never worked on by both at
once, and every event is applied.

The workers are real processes (the command line), the intake is the real web app, and the
stagings are built by the `command` provisioner with a step program that appends
`begin`/`end` lines (one `write` each, O_APPEND: atomic, no lock) to its staging's file.
Two workers building one staging at once would show as a `begin` inside another step.
Offline mode, so no Git host is involved: each request's head is its last webhook's.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from bot import demo, trial
from bot.config import Config, load_config
from bot.model import StagingKey
from bot.serve import _Server
from bot.store import Store
from bot.web import create_app, redis_client
from tests.conftest import free_port

STAGINGS = 6
PUSHES = 3  # after `opened`, per staging
PREFIX = "stagingbot-two-workers"
STEP = """\
import os, sys, time
step, name = os.environ["STAGING_STEP"], os.environ["STAGING_NAME"]
path = os.path.join(os.environ["STEP_LOG"], name + ".log")
def line(what):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, f"{what} {step} {os.environ['STAGING_SHA']} {os.getppid()}\\n".encode())
    os.close(fd)
line("begin")
if step in ("create", "update", "destroy"):
    time.sleep(0.15)  # long enough for a second worker to step in, were it allowed to
line("end")
"""


def sha(number: int, push: int) -> str:
    return f"{number:02d}{push:02d}".ljust(40, "a")


def write_config(tmp_path: Path, redis_url: str) -> Path:
    step = tmp_path / "step.py"
    step.write_text(STEP)
    argv = [sys.executable, str(step)]
    settings = {
        "mode": "offline",
        "server": {"host": "127.0.0.1", "port": free_port()},
        "redis": {"url": redis_url, "key_prefix": PREFIX},
        "github": {"webhook_secret": "whsec-two-workers"},
        "staging": {
            "provisioner": "command",
            "base_domain": "staging.localhost",
            "secret_key": "two-workers-key",
        },
        "command": {"create": argv, "check": argv, "destroy": argv, "pass_env": ["STEP_LOG"]},
        "kubernetes": {"rollout_poll": "0.1s", "rollout_deadline": "1m"},
        "sweep": {"interval": 0},
        "repos": [{"host": "github", "repo": trial.TRIAL_REPO}],
    }
    path = tmp_path / "config.toml"
    trial.write(path, trial.to_toml(settings))
    return path


@contextlib.contextmanager
def workers(config: Path, logs: Path, count: int = 2) -> Iterator[list[subprocess.Popen[bytes]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAGINGBOT_")}
    env["STEP_LOG"] = str(logs)
    binary = str(Path(sys.executable).parent / "stagingbot")
    started = []
    try:
        for index in range(count):
            with open(logs / f"worker-{index}.out", "wb") as out:
                started.append(
                    subprocess.Popen(  # noqa: S603
                        [binary, "worker", "--config", str(config)],
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        deadline = time.monotonic() + 30
        while not all(
            "worker started" in (logs / f"worker-{i}.out").read_text() for i in range(count)
        ):
            if time.monotonic() > deadline or any(p.poll() is not None for p in started):
                pytest.fail("the workers did not start:\n" + worker_output(logs))
            time.sleep(0.05)
        yield started
    finally:
        for process in started:
            process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def worker_output(logs: Path) -> str:
    return "\n".join(p.read_text(errors="replace")[-2000:] for p in sorted(logs.glob("*.out")))


@contextlib.asynccontextmanager
async def web(config: Config) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(config)
    server = _Server(
        uvicorn.Config(app, host="127.0.0.1", port=config.server.port, log_config=None)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn's Server offers no started event
        await asyncio.sleep(0.01)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{config.server.port}") as client:
            yield client
    finally:
        server.should_exit = True
        await task


async def deliver(client: httpx.AsyncClient, action: str, number: int, head: str) -> None:
    body = json.dumps(demo.payload(demo.Demo(action, number, trial.TRIAL_REPO, head))).encode()
    headers = demo.signed_headers(body, "whsec-two-workers")
    response = await client.post("/webhooks/github", content=body, headers=headers)
    assert response.status_code == 202, response.text


async def settled(store: Store, last: dict[int, str]) -> bool:
    """Every staging running at its last event's commit, with no event left unhandled."""
    keys = [StagingKey("github", demo.FIXTURE_REPO_ID, number) for number in last]
    records = await store.load_many(keys)
    return len(records) == len(last) and all(
        record.get("phase") == "running"
        and record.get("sha") == last[key.number]
        and record.number("handled") == record.generation
        for key, record in records.items()
    )


def overlaps(lines: list[str]) -> list[str]:
    """Steps of one staging that began while another of its steps was still running."""
    found, running = [], ""
    for line in lines:
        if line.startswith("begin"):
            if running:
                found.append(f"{line!r} began during {running!r}")
            running = line
        else:
            running = ""
    return found


async def test_two_workers_never_build_one_staging_at_once_and_apply_every_event(
    redis_url: str, tmp_path: Path
) -> None:
    path, logs = write_config(tmp_path, redis_url), tmp_path / "logs"
    logs.mkdir()
    config = load_config(str(path), {})
    last = {number: sha(number, PUSHES) for number in range(1, STAGINGS + 1)}
    redis = redis_client(config)
    store = Store(redis, PREFIX)
    try:
        with workers(path, logs) as started:
            async with web(config) as client:
                numbers = range(1, STAGINGS + 1)
                await asyncio.gather(*(deliver(client, "opened", n, sha(n, 0)) for n in numbers))
                for push in range(1, PUSHES + 1):  # pushes land while earlier builds still run
                    await asyncio.sleep(0.1)
                    pushes = (deliver(client, "synchronize", n, sha(n, push)) for n in numbers)
                    await asyncio.gather(*pushes)
                deadline = time.monotonic() + 40
                while not await settled(store, last):
                    if time.monotonic() > deadline:
                        pytest.fail("the stagings never settled:\n" + worker_output(logs))
                    await asyncio.sleep(0.05)
            pids = {str(p.pid) for p in started}
    finally:
        await redis.aclose(close_connection_pool=True)

    workers_seen: set[str] = set()
    counts: collections.Counter[str] = collections.Counter()
    for number in last:
        (file,) = logs.glob(f"hello-world-pr-{number}-*.log")
        lines = file.read_text().splitlines()
        assert overlaps(lines) == [], f"staging {number} was built by two workers at once"
        applied = [line.split() for line in lines if line.startswith("end create")]
        applied += [line.split() for line in lines if line.startswith("end update")]
        assert lines[-1].startswith("end check") and f"end check {last[number]}" in lines[-1]
        assert any(fields[2] == last[number] for fields in applied)
        workers_seen |= {line.split()[3] for line in lines}
        counts.update(line.split()[3] for line in lines if line.startswith("begin"))
    assert workers_seen <= pids
    assert len(counts) == 2, f"only one worker took jobs ({counts}): nothing was shown"


def test_the_overlap_check_sees_a_step_begun_inside_another() -> None:
    lines = ["begin update a 1", "begin update b 2", "end update b 2", "end update a 1"]

    assert overlaps(lines) == ["'begin update b 2' began during 'begin update a 1'"]
    assert (
        overlaps(["begin create a 1", "end create a 1", "begin check a 1", "end check a 1"]) == []
    )
