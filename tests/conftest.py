"""Shared fixtures: a real redis-server started for the test run, fixture payloads, configs."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
# Copied from ../shared/fixtures/webhooks (sources: SOURCES.md) so a clone is self-contained.
FIXTURES = ROOT / "tests" / "fixtures" / "webhooks"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server for this test run (never the machine's own)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: `apt-get install redis-server` (CI does this)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(  # noqa: S603
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--logfile",
            str(workdir / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"redis-server did not start; see {workdir / 'redis.log'}")
            time.sleep(0.02)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
async def redis_url(redis_server: str) -> AsyncIterator[str]:
    """The test run's Redis, emptied before each test."""
    client = Redis.from_url(redis_server)
    await client.flushall()
    await client.aclose()
    yield redis_server


def load_fixture(name: str, host: str = "github") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / host / name).read_text())
    return data


def fixture_bytes(name: str, host: str = "github") -> bytes:
    return (FIXTURES / host / name).read_bytes()
