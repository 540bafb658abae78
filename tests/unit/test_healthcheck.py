"""The image's HEALTHCHECK (`python -m bot.healthcheck`) asks the process it runs beside."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import uvicorn

from bot.config import Config, MetricsConfig
from bot.healthcheck import check, probe_url, read_cmdline, started_as
from bot.serve import _Server, start_worker_metrics
from bot.web import create_app
from tests.conftest import free_port
from tests.helpers import make_config

SECRET = "whsec-healthcheck-7c1d"


def environ(**extra: str) -> dict[str, str]:
    return {
        "STAGINGBOT_GITHUB_WEBHOOK_SECRET": SECRET,
        "STAGINGBOT_GITHUB_TOKEN": "ghp-healthcheck-token",
        "STAGINGBOT_STAGING_BASE_DOMAIN": "staging.example.com",
        "STAGINGBOT_STAGING_SECRET_KEY": "healthcheck-secret-key",
        "STAGINGBOT_SERVER_HOST": "0.0.0.0",  # as in the image
        **{f"STAGINGBOT_{key}": value for key, value in extra.items()},
    }


@contextlib.asynccontextmanager
async def web_on(port: int) -> AsyncIterator[None]:
    config = make_config("redis://127.0.0.1:1/0")  # /healthz never needs Redis
    server = _Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_config=None)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn's Server offers no started event
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task


def test_it_reads_what_the_container_was_started_as() -> None:
    # PID 1 of the image: the console script run by the virtualenv's interpreter.
    assert (
        started_as(["/opt/stagingbot/bin/python", "/opt/stagingbot/bin/stagingbot", "web"]) == "web"
    )
    assert (
        started_as(["/opt/stagingbot/bin/python3.11", "/opt/stagingbot/bin/stagingbot", "worker"])
        == "worker"
    )
    # With `docker run --init`, tini is PID 1.
    assert started_as(["/sbin/docker-init", "--", "stagingbot", "run", "--config", "x"]) == "run"
    assert started_as(["stagingbot", "check-config"]) == ""
    assert started_as(["sh", "-c", "sleep 1000"]) == ""


def test_the_command_line_is_read_from_proc(tmp_path: Path) -> None:
    path = tmp_path / "cmdline"
    path.write_bytes(b"/opt/stagingbot/bin/python\0/opt/stagingbot/bin/stagingbot\0worker\0")
    assert started_as(read_cmdline(str(path))) == "worker"
    assert read_cmdline(str(path.with_name("missing"))) == []


def test_web_is_asked_on_loopback_when_it_listens_everywhere() -> None:
    config = replace(Config(), server=replace(Config().server, host="0.0.0.0", port=9000))
    assert probe_url(config, "web") == "http://127.0.0.1:9000/healthz"
    assert probe_url(config, "run") == "http://127.0.0.1:9000/healthz"
    ipv6 = replace(config, server=replace(config.server, host="::1"))
    assert probe_url(ipv6, "web") == "http://[::1]:9000/healthz"
    assert probe_url(config, "worker") == ""
    metrics = replace(config, metrics=MetricsConfig(worker_port=9100))
    assert probe_url(metrics, "worker") == "http://127.0.0.1:9100/metrics"


async def test_a_running_web_process_is_healthy() -> None:
    port = free_port()
    async with web_on(port):
        code, line = await asyncio.to_thread(
            check, ["stagingbot", "web"], environ(SERVER_PORT=str(port))
        )
    assert (code, line) == (0, f"web: ok (http://127.0.0.1:{port}/healthz)")


async def test_a_web_process_that_does_not_answer_is_unhealthy() -> None:
    port = free_port()  # nothing listens there
    code, line = await asyncio.to_thread(
        check, ["stagingbot", "web"], environ(SERVER_PORT=str(port))
    )
    assert code == 1
    assert line.startswith(f"web: http://127.0.0.1:{port}/healthz did not answer")


def test_a_worker_is_asked_on_its_metrics_port_when_it_serves_one() -> None:
    port = free_port()
    stop = start_worker_metrics(replace(Config(), metrics=MetricsConfig(worker_port=port)))
    assert stop is not None
    try:
        assert check(["stagingbot", "worker"], environ(METRICS_WORKER_PORT=str(port)))[0] == 0
    finally:
        stop()
    code, line = check(["stagingbot", "worker"], environ(METRICS_WORKER_PORT=str(port)))
    assert code == 1 and "did not answer" in line


def test_a_worker_without_a_port_has_nothing_to_ask_and_passes() -> None:
    code, line = check(["stagingbot", "worker"], environ())
    assert code == 0
    assert "metrics.worker_port" in line


def test_a_broken_configuration_is_unhealthy_and_the_line_shows_no_secret() -> None:
    code, line = check(["stagingbot", "web"], environ(SERVER_PORT="not-a-port"))
    assert code == 1
    assert "server.port" in line
    assert SECRET not in line
