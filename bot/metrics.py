"""Prometheus metrics: one registry, the counters the code moves, and the hooks that move them.

Every label value comes from a fixed set (hosts, known event names, outcomes, HTTP
statuses, error kinds): never a branch name, a comment, a repository or anything
secret, so a series count stays bounded whatever the webhooks carry. The gauges read
from Redis at scrape time live in `bot.metrics_scrape`.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar, cast

from arq import Retry
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from starlette.requests import Request
from starlette.responses import Response

from bot import logs
from bot.errors import TemporaryError
from bot.hosts import build_sansio, github_sansio, gitlab_sansio

REGISTRY = CollectorRegistry()
"""This process's metrics. `stagingbot run` shares it between web and worker."""

DELIVERIES = Counter(
    "stagingbot_webhook_deliveries",
    "Webhook deliveries by host, event, outcome (accepted, duplicate, ignored, rejected) "
    "and HTTP status answered",
    ["host", "event", "outcome", "status"],
    registry=REGISTRY,
)
RECONCILES = Counter(
    "stagingbot_reconciles",
    "Reconcile jobs by outcome: done, recheck (a rollout is followed later), "
    "temporary_error (retried with backoff), permanent_error (reported, not retried), crashed",
    ["outcome"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "stagingbot_reconcile_duration_seconds",
    "How long one reconcile job ran, by outcome",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)
JOB_LATENCY = Histogram(
    "stagingbot_job_latency_seconds",
    "From when a queued job was due (its score in arq's queue) to when a worker started it",
    ["function"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
API_CALLS = Counter(
    "stagingbot_api_calls",
    "Calls the adapters made to a Git host or the Kubernetes API, by api",
    ["api"],
    registry=REGISTRY,
)
API_ERRORS = Counter(
    "stagingbot_api_errors",
    "Failed Git-host and Kubernetes API calls, by api and kind of error",
    ["api", "kind"],
    registry=REGISTRY,
)
SWEEPS = Counter(
    "stagingbot_sweeps",
    "Sweeps by outcome: ok, or failed (the cluster, a repository's list, the kept decisions "
    "or the workloads' health could not be read; nothing was changed on that account)",
    ["outcome"],
    registry=REGISTRY,
)
SWEEP_LISTS = Counter(
    "stagingbot_sweep_lists",
    "Open-request lists the sweep read, by host and result: read, not_modified (every page "
    "answered 304 to its ETag: no rate limit spent), failed",
    ["host", "result"],
    registry=REGISTRY,
)

APIS = ("github", "gitlab", "kubernetes")
OTHER = "other"  # an event name the bot does not know: never the header's own text

GITHUB_EVENTS = frozenset(
    {
        "ping",
        "pull_request",
        "issue_comment",
        *github_sansio.IGNORED_EVENTS,
        *build_sansio.GITHUB_EVENTS,
    }
)
GITLAB_EVENTS = frozenset(
    {"Merge Request Hook", "Note Hook", "Pipeline Hook", *gitlab_sansio.IGNORED_HOOKS}
)
# GitHub's delivery GUID; GitLab's idempotency key (GitLab >= 17.4), else its event UUID.
DELIVERY_HEADERS = {
    "github": ("x-github-delivery",),
    "gitlab": ("idempotency-key", "x-gitlab-event-uuid"),
}
MAX_LOGGED_ID = 128


def event_label(host: str, headers: Mapping[str, str]) -> str:
    """The delivery's event as a label: a name the bot knows, else "other"."""
    if host == "github":
        name = headers.get("x-github-event", "")
        return name if name in GITHUB_EVENTS else OTHER
    hook = headers.get("x-gitlab-event", "")
    if hook not in GITLAB_EVENTS:
        return OTHER
    return (
        hook.removesuffix(" Hook").lower().replace(" ", "_")
    )  # "Merge Request Hook" -> merge_request


def delivery_outcome(response: Response) -> str:
    """accepted / duplicate / ignored for a 2xx (from the answer's JSON), rejected otherwise."""
    if response.status_code >= 300:
        return "rejected"
    try:
        answer = json.loads(bytes(response.body))
    except (ValueError, TypeError):
        return "ignored"
    for outcome in ("accepted", "duplicate"):
        if isinstance(answer, dict) and outcome in answer:
            return outcome
    return "ignored"  # {"ignored": ...} and GitHub's ping


Endpoint = Callable[[Request], Awaitable[Response]]


def counted_delivery(host: str, endpoint: Endpoint) -> Endpoint:
    """A webhook endpoint that counts each delivery and binds its id to every log line."""

    @functools.wraps(endpoint)
    async def counted(request: Request) -> Response:
        delivery = next(
            (request.headers[h] for h in DELIVERY_HEADERS[host] if request.headers.get(h)), ""
        )
        # Read before the signature is checked: keep it short and on one line.
        shown = "".join(char for char in delivery[:MAX_LOGGED_ID] if char.isprintable())
        event = event_label(host, request.headers)
        try:
            with logs.bound(delivery=shown):
                response = await endpoint(request)
        except Exception:
            DELIVERIES.labels(host, event, "rejected", "500").inc()  # Starlette answers 500
            raise
        DELIVERIES.labels(host, event, delivery_outcome(response), str(response.status_code)).inc()
        return response

    return counted


Job = Callable[[dict[str, Any], str], Coroutine[Any, Any, str]]
J = TypeVar("J", bound=Job)


def reconcile_job(job: J) -> J:
    """The reconcile job, timed and counted by outcome, its staging id on every log line."""

    @functools.wraps(job)
    async def observed(ctx: dict[str, Any], key_text: str) -> str:
        observe_latency("reconcile", ctx)
        started = time.perf_counter()
        outcome = "crashed"
        try:
            with logs.bound(staging=key_text):
                summary = await job(ctx, key_text)
            outcome = "permanent_error" if summary.startswith("error: ") else "done"
            return summary
        except Retry as retry:
            temporary = isinstance(retry.__cause__, TemporaryError)
            outcome = "temporary_error" if temporary else "recheck"
            raise
        finally:
            RECONCILES.labels(outcome).inc()
            RECONCILE_SECONDS.labels(outcome).observe(time.perf_counter() - started)

    return cast(J, observed)


def observe_latency(function: str, ctx: Mapping[str, Any]) -> None:
    """arq puts the job's score (when it was due, in ms) in the job's context."""
    score = ctx.get("score")
    if isinstance(score, int | float) and score > 0:
        JOB_LATENCY.labels(function).observe(max(0.0, time.time() - score / 1000))


def sweep_done(failed: bool) -> None:
    SWEEPS.labels("failed" if failed else "ok").inc()


def sweep_list(host: str, result: str) -> None:
    SWEEP_LISTS.labels(host if host in APIS else OTHER, result).inc()


def api_call(api: str) -> None:
    API_CALLS.labels(api).inc()


def api_error(api: str, status: int | None) -> None:
    """Count a failed call; `status` None when no answer came (network, timeout)."""
    API_ERRORS.labels(api, error_kind(status)).inc()


def error_kind(status: int | None) -> str:
    if status is None:
        return "unreachable"
    kinds = {401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict"}
    if status in kinds:
        return kinds[status]
    if status == 429:
        return "rate_limited"
    if status in (400, 422):
        return "invalid"
    if 400 <= status < 500:
        return "client_error"
    if status >= 500:
        return "server_error"
    return OTHER  # no HTTP status at all (a library error without a response)


def serve_worker_metrics(host: str, port: int) -> Callable[[], None]:
    """Serve this process's registry on `host:port` from a thread; returns the stopper.

    Only for `stagingbot worker`: its counters live in its own process, so the web's
    /metrics cannot see them.
    """
    server, thread = start_http_server(port, addr=host, registry=REGISTRY)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop


def sample(name: str, **labels: str) -> float:
    """A series' current value in this process, 0 when it has none yet (for tests, too)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
