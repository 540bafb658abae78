"""Metrics hooks: label values come from fixed sets, and each reconcile outcome is counted."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from dataclasses import replace
from typing import Any

import httpx
import pytest
from arq import Retry
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot import logs, metrics
from bot.config import Config, MetricsConfig
from bot.errors import TemporaryError
from bot.serve import start_worker_metrics
from tests.conftest import free_port


@pytest.mark.parametrize(
    ("host", "headers", "label"),
    [
        ("github", {"x-github-event": "pull_request"}, "pull_request"),
        ("github", {"x-github-event": "check_suite"}, "check_suite"),
        ("github", {"x-github-event": "feature/my-branch"}, "other"),
        ("github", {}, "other"),
        ("gitlab", {"x-gitlab-event": "Merge Request Hook"}, "merge_request"),
        ("gitlab", {"x-gitlab-event": "Wiki Page Hook"}, "wiki_page"),
        ("gitlab", {"x-gitlab-event": "Anything Hook"}, "other"),
    ],
)
def test_an_event_label_is_a_known_event_name_or_other(
    host: str, headers: dict[str, str], label: str
) -> None:
    assert metrics.event_label(host, headers) == label


@pytest.mark.parametrize(
    ("response", "outcome"),
    [
        (JSONResponse({"accepted": ["github:1:2"]}, 202), "accepted"),
        (JSONResponse({"duplicate": "72d3"}, 202), "duplicate"),
        (JSONResponse({"ignored": "push: ..."}, 202), "ignored"),
        (JSONResponse({"ok": True, "pong": True}), "ignored"),
        (JSONResponse({"error": "bad signature"}, 401), "rejected"),
        (JSONResponse({"error": "redis"}, 503), "rejected"),
    ],
)
def test_a_delivery_outcome_is_read_from_the_answer(response: JSONResponse, outcome: str) -> None:
    assert metrics.delivery_outcome(response) == outcome


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (None, "unreachable"),
        (0, "other"),
        (401, "unauthorized"),
        (403, "forbidden"),
        (404, "not_found"),
        (409, "conflict"),
        (422, "invalid"),
        (418, "client_error"),
        (429, "rate_limited"),
        (502, "server_error"),
    ],
)
def test_an_api_error_is_counted_by_its_kind(status: int | None, kind: str) -> None:
    before = metrics.sample("stagingbot_api_errors_total", api="gitlab", kind=kind)
    metrics.api_error("gitlab", status)
    assert metrics.sample("stagingbot_api_errors_total", api="gitlab", kind=kind) == before + 1


async def _done(ctx: dict[str, Any], key: str) -> str:
    logging.getLogger("stagingbot.test").info("working")
    return "running at abc1234, nothing to do"


async def _permanent(ctx: dict[str, Any], key: str) -> str:
    return "error: invalid manifest"


async def _temporary(ctx: dict[str, Any], key: str) -> str:
    try:
        raise TemporaryError("GitHub: HTTP 502")
    except TemporaryError as exc:
        raise Retry(defer=5) from exc


async def _recheck(ctx: dict[str, Any], key: str) -> str:
    raise Retry(defer=0.05)


async def _crash(ctx: dict[str, Any], key: str) -> str:
    raise ValueError("bug")


@pytest.mark.parametrize(
    ("job", "outcome"),
    [
        (_done, "done"),
        (_permanent, "permanent_error"),
        (_temporary, "temporary_error"),
        (_recheck, "recheck"),
        (_crash, "crashed"),
    ],
)
async def test_each_reconcile_outcome_is_counted_and_timed(job: metrics.Job, outcome: str) -> None:
    count = metrics.sample("stagingbot_reconciles_total", outcome=outcome)
    timed = metrics.sample("stagingbot_reconcile_duration_seconds_count", outcome=outcome)

    returns = outcome in ("done", "permanent_error")
    with contextlib.nullcontext() if returns else pytest.raises((Retry, ValueError)):
        await metrics.reconcile_job(job)({"score": 0}, "github:1:2")

    assert metrics.sample("stagingbot_reconciles_total", outcome=outcome) == count + 1
    assert (
        metrics.sample("stagingbot_reconcile_duration_seconds_count", outcome=outcome) == timed + 1
    )


async def test_a_reconcile_logs_with_its_staging_id_and_job_latency_is_observed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.handler.addFilter(logs.ContextFilter())
    caplog.set_level(logging.INFO, logger="stagingbot.test")

    def buckets() -> tuple[float, float]:
        name = "stagingbot_job_latency_seconds_bucket"
        return tuple(metrics.sample(name, function="reconcile", le=le) for le in ("1.0", "2.5"))

    before = buckets()
    # arq's score: when the job was due, in ms; this one waited 1.5 s for a worker.
    await metrics.reconcile_job(_done)({"score": int(time.time() * 1000) - 1500}, "github:1:2")

    (record,) = [r for r in caplog.records if r.name == "stagingbot.test"]
    assert record.staging == "github:1:2"  # type: ignore[attr-defined]
    after = buckets()
    assert (after[0] - before[0], after[1] - before[1]) == (0, 1)


def test_a_separate_worker_serves_its_own_counters_on_its_port() -> None:
    metrics.api_call("kubernetes")
    config = replace(Config(), metrics=MetricsConfig(worker_port=free_port()))
    stop = start_worker_metrics(config)
    assert stop is not None
    try:
        text = httpx.get(f"http://127.0.0.1:{config.metrics.worker_port}/metrics").text
    finally:
        stop()
    assert 'stagingbot_api_calls_total{api="kubernetes"}' in text


def test_a_worker_metrics_port_in_use_stops_start_up_saying_which_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config = replace(Config(), metrics=MetricsConfig(worker_port=busy.getsockname()[1]))
        assert start_worker_metrics(config) is None
    assert "metrics.worker_port" in caplog.text


async def test_a_delivery_whose_handler_crashes_is_counted_as_rejected_with_500() -> None:
    async def broken(request: Request) -> Response:
        raise RuntimeError("a bug")

    scope = {"type": "http", "method": "POST", "headers": [(b"x-github-event", b"pull_request")]}
    labels = {"host": "github", "event": "pull_request", "outcome": "rejected", "status": "500"}
    before = metrics.sample("stagingbot_webhook_deliveries_total", **labels)

    with pytest.raises(RuntimeError):
        await metrics.counted_delivery("github", broken)(Request(scope))

    assert metrics.sample("stagingbot_webhook_deliveries_total", **labels) == before + 1
