"""`GET /metrics`: counters moved by real deliveries and a real worker, gauges read from Redis,
and no label that carries a secret or text a user wrote."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from bot import logs, metrics, metrics_scrape, queue
from bot.config import Config
from bot.model import Phase, StagingKey
from bot.web import create_app
from tests.conftest import fixture_bytes
from tests.fakes.github import FakeGitHub
from tests.fakes.kube import FakeKube
from tests.helpers import (
    REPO,
    REPO_ID,
    WEBHOOK_SECRET,
    body_of,
    comment_payload,
    make_config,
    pr_payload,
    signed_headers,
)
from tests.integration.test_end_to_end import (
    SHA1,
    bot_config,
    completed,
    eventually,
    running_bot,
)

PREFIX = "stagingbot-test"
BRANCH = "feature/leaky-branch-name"
COMMENT_SECRET = "hunter2-in-a-comment"
DELIVERIES = "stagingbot_webhook_deliveries_total"


def delivered(event: str, outcome: str, status: str, host: str = "github") -> float:
    return metrics.sample(DELIVERIES, host=host, event=event, outcome=outcome, status=status)


@pytest.fixture
def config(redis_url: str) -> Config:
    return make_config(redis_url)


@pytest.fixture
def client(config: Config) -> Iterator[TestClient]:
    with TestClient(create_app(config)) as test_client:
        yield test_client


@pytest.fixture
def db(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    yield conn
    conn.close()


def post(client: TestClient, payload: dict[str, object], event: str, **headers: str) -> int:
    body = body_of(payload)
    sent = {**signed_headers(body, event, headers.pop("delivery", None)), **headers}
    return client.post("/webhooks/github", content=body, headers=sent).status_code


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_each_delivery_is_counted_by_host_event_outcome_and_status(client: TestClient) -> None:
    opened = pr_payload("opened")
    before = {
        "accepted": delivered("pull_request", "accepted", "202"),
        "duplicate": delivered("pull_request", "duplicate", "202"),
        "ignored": delivered("push", "ignored", "202"),
        "rejected": delivered("pull_request", "rejected", "401"),
        "other": delivered("other", "ignored", "202"),
        "gitlab": delivered("merge_request", "rejected", "401", host="gitlab"),
    }

    assert post(client, opened, "pull_request", delivery="d-1") == 202
    assert post(client, opened, "pull_request", delivery="d-1") == 202
    assert post(client, {"ref": "refs/heads/main"}, "push") == 202
    assert post(client, {"zen": "x"}, "some_new_event") == 202
    bad = client.post(
        "/webhooks/github",
        content=body_of(opened),
        headers={**signed_headers(b"other body", "pull_request")},
    )
    assert bad.status_code == 401
    gitlab = client.post(
        "/webhooks/gitlab",
        content=fixture_bytes("merge_request.open.json", "gitlab"),
        headers={"X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Token": "wrong"},
    )
    assert gitlab.status_code == 401

    assert delivered("pull_request", "accepted", "202") == before["accepted"] + 1
    assert delivered("pull_request", "duplicate", "202") == before["duplicate"] + 1
    assert delivered("push", "ignored", "202") == before["ignored"] + 1
    assert delivered("pull_request", "rejected", "401") == before["rejected"] + 1
    assert delivered("other", "ignored", "202") == before["other"] + 1
    assert delivered("merge_request", "rejected", "401", host="gitlab") == before["gitlab"] + 1
    shown = scrape(client)
    labels = (("event", "pull_request"), ("host", "github"), ("outcome", "accepted"))
    assert shown[(DELIVERIES, (*labels, ("status", "202")))] == before["accepted"] + 1


def test_stagings_by_state_and_the_queue_are_read_from_redis_when_scraped(
    client: TestClient, db: redis.Redis
) -> None:
    phases = ["running", "running", "failed", "awaiting approval", ""]
    for number, phase in enumerate(phases, start=1):
        key = StagingKey("github", REPO_ID, number)
        db.sadd(f"{PREFIX}:stagings", str(key))
        db.hset(f"{PREFIX}:staging:{key}", mapping={"key": str(key), "phase": phase})
    now_ms = int(time.time() * 1000)
    jobs = {
        "reconcile:a": now_ms - 5000,
        "reconcile:b": now_ms - 1000,
        "reconcile:c": now_ms + 60_000,
    }
    db.zadd(queue.queue_name(PREFIX), jobs)
    db.set("arq:in-progress:reconcile:b", "1")

    shown = scrape(client)

    def stagings(state: str) -> float:
        return shown[("stagingbot_stagings", (("state", state),))]

    assert (stagings("running"), stagings("failed"), stagings("pending")) == (2, 1, 1)
    assert stagings("awaiting approval") == 1 and stagings("archived") == 0
    assert shown[("stagingbot_staging_records", ())] == 5

    def jobs_in(state: str) -> float:
        return shown[("stagingbot_queue_jobs", (("state", state),))]

    assert (jobs_in("waiting"), jobs_in("running"), jobs_in("deferred")) == (1, 1, 1)
    assert 4.5 <= shown[("stagingbot_queue_oldest_waiting_seconds", ())] < 30
    assert shown[("stagingbot_redis_up", ())] == 1


def test_a_scrape_reuses_a_fresh_reading_and_survives_redis_going_away(
    client: TestClient, db: redis.Redis, config: Config
) -> None:
    assert scrape(client)[("stagingbot_staging_records", ())] == 0
    db.sadd(f"{PREFIX}:stagings", "github:1:1")
    assert scrape(client)[("stagingbot_staging_records", ())] == 0  # the reading is kept 5 s

    with TestClient(create_app(make_config("redis://127.0.0.1:1/0"))) as down:
        shown = scrape(down)
    assert shown[("stagingbot_redis_up", ())] == 0
    assert not any(name == "stagingbot_stagings" for name, _ in shown)


ALLOWED = {
    "host": {"github", "gitlab"},
    "event": {
        *metrics.GITHUB_EVENTS,
        *(metrics.event_label("gitlab", {"x-gitlab-event": h}) for h in metrics.GITLAB_EVENTS),
        metrics.OTHER,
    },
    "outcome": {
        "accepted",
        "duplicate",
        "ignored",
        "rejected",
        "done",
        "recheck",
        "temporary_error",
        "permanent_error",
        "crashed",
        "ok",  # sweeps
        "failed",
    },
    "result": {"read", "not_modified", "failed"},  # the sweep's lists
    "api": set(metrics.APIS),
    "kind": {metrics.error_kind(s) for s in (None, 0, 400, 401, 403, 404, 409, 418, 429, 500)},
    "state": {*(p.value for p in Phase), "waiting", "running", "deferred"},
    "function": {"reconcile", "sweep"},
}


def test_no_label_carries_a_secret_a_branch_or_comment_text(client: TestClient) -> None:
    opened = pr_payload("opened")
    opened["pull_request"]["head"]["ref"] = BRANCH  # type: ignore[index]
    assert post(client, opened, "pull_request") == 202
    comment = comment_payload(f"/staging set PASSWORD={COMMENT_SECRET}")
    assert post(client, comment, "issue_comment") == 202
    assert post(client, {"x": 1}, BRANCH) == 202  # a made-up event name

    text = client.get("/metrics").text
    for leaked in (BRANCH, COMMENT_SECRET, WEBHOOK_SECRET, "ghp-test-token", "test-secret-key"):
        assert leaked not in text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for name, value in sample.labels.items():
                if name == "le":
                    continue
                if name == "status":
                    assert re.fullmatch(r"[1-5]\d\d", value)
                else:
                    assert value in ALLOWED[name], (sample.name, name, value)


async def test_a_worker_counts_reconciles_latency_and_the_api_calls_behind_them(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(logs.ContextFilter())
    caplog.set_level(logging.INFO, logger="stagingbot")
    counted = {
        "done": metrics.sample("stagingbot_reconciles_total", outcome="done"),
        "recheck": metrics.sample("stagingbot_reconciles_total", outcome="recheck"),
        "temporary": metrics.sample("stagingbot_reconciles_total", outcome="temporary_error"),
        "latency": metrics.sample("stagingbot_job_latency_seconds_count", function="reconcile"),
        "github": metrics.sample("stagingbot_api_calls_total", api="github"),
        "kubernetes": metrics.sample("stagingbot_api_calls_total", api="kubernetes"),
        "502": metrics.sample("stagingbot_api_errors_total", api="github", kind="server_error"),
    }
    with FakeGitHub() as github, FakeKube() as kube:
        github.add_repo(REPO, REPO_ID, installation_id=1)
        github.add_pull(REPO, 2, SHA1, branch=BRANCH)
        github.fail_next(502, method="GET", path=r"/pulls/2$")  # the first look at the request
        config = bot_config(redis_url, github, kube, tmp_path, app=True)
        async with running_bot(config) as bot:
            body = body_of(pr_payload("opened"))
            headers = signed_headers(body, "pull_request", delivery="delivery-e2e-1")
            assert (await bot.post("/webhooks/github", content=body, headers=headers)).is_success
            await eventually(lambda: completed(github.check_runs(REPO, SHA1)), "check completed")
            shown = (await bot.get("/metrics")).text

    def moved(name: str, value: float) -> float:
        return value - counted[name]

    now = {
        "done": metrics.sample("stagingbot_reconciles_total", outcome="done"),
        "recheck": metrics.sample("stagingbot_reconciles_total", outcome="recheck"),
        "temporary": metrics.sample("stagingbot_reconciles_total", outcome="temporary_error"),
        "latency": metrics.sample("stagingbot_job_latency_seconds_count", function="reconcile"),
        "github": metrics.sample("stagingbot_api_calls_total", api="github"),
        "kubernetes": metrics.sample("stagingbot_api_calls_total", api="kubernetes"),
        "502": metrics.sample("stagingbot_api_errors_total", api="github", kind="server_error"),
    }
    assert moved("temporary", now["temporary"]) == 1  # the 502, retried with a backoff
    assert moved("502", now["502"]) == 1
    assert moved("recheck", now["recheck"]) >= 1  # the rollout, followed by later jobs
    assert moved("done", now["done"]) >= 1
    assert moved("latency", now["latency"]) >= 3
    assert moved("github", now["github"]) >= 4  # read the request, check run, comment, deployment
    assert moved("kubernetes", now["kubernetes"]) >= 5
    assert 'stagingbot_stagings{state="running"} 1.0' in shown  # `run`: one /metrics for both
    assert BRANCH not in shown
    # Every line the job logged names its staging and the delivery that asked for it.
    worker_lines = [r for r in caplog.records if r.name == "stagingbot.reconcile"]
    assert worker_lines
    assert {(r.staging, r.last_delivery) for r in worker_lines} == {  # type: ignore[attr-defined]
        (f"github:{REPO_ID}:2", "delivery-e2e-1")
    }


def test_a_scrape_reads_at_most_max_stagings_records(
    client: TestClient, db: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics_scrape, "MAX_STAGINGS", 3)
    for number in range(1, 8):
        db.sadd(f"{PREFIX}:stagings", f"github:{REPO_ID}:{number}")
        db.hset(f"{PREFIX}:staging:github:{REPO_ID}:{number}", "phase", "running")

    shown = scrape(client)

    assert shown[("stagingbot_stagings", (("state", "running"),))] == 3
    assert shown[("stagingbot_staging_records", ())] == 7
