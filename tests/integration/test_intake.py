"""The webhook receiver: every bad input gets a clear answer, every good one is stored once."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
import redis
from starlette.testclient import TestClient

from bot import queue
from bot.config import RedisConfig, ServerConfig
from bot.model import StagingKey
from bot.web import create_app
from tests.conftest import fixture_bytes
from tests.helpers import (
    REPO_ID,
    WEBHOOK_SECRET,
    body_of,
    make_config,
    pr_payload,
    signed_headers,
)

KEY = StagingKey("github", REPO_ID, 2)
PREFIX = "stagingbot-test"


@pytest.fixture
def client(redis_url: str) -> Iterator[TestClient]:
    config = make_config(redis_url, server=ServerConfig(max_body_bytes=64 * 1024))
    with TestClient(create_app(config)) as test_client:
        yield test_client


@pytest.fixture
def db(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    yield conn
    conn.close()


def post(client: TestClient, body: bytes, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    return client.post("/webhooks/github", content=body, headers=headers)


def test_opened_pull_request_is_stored_and_queued(client: TestClient, db: redis.Redis) -> None:
    body = body_of(pr_payload("opened"))
    response = post(client, body, signed_headers(body, "pull_request"))
    assert response.status_code == 202
    assert response.json() == {"accepted": [str(KEY)]}
    staging = db.hgetall(f"{PREFIX}:staging:{KEY}")
    assert staging["desired"] == "running"
    assert staging["desired_sha"] == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    assert staging["repo"] == "Codertocat/Hello-World"
    assert staging["generation"] == "1"
    assert db.zscore(queue.queue_name(PREFIX), queue.job_id(KEY)) is not None


def test_the_same_delivery_posted_five_times_acts_once(client: TestClient, db: redis.Redis) -> None:
    body = body_of(pr_payload("opened"))
    headers = signed_headers(body, "pull_request", delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    answers = [post(client, body, headers).json() for _ in range(5)]
    assert answers[0] == {"accepted": [str(KEY)]}
    assert answers[1:] == [{"duplicate": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}] * 4
    assert db.hget(f"{PREFIX}:staging:{KEY}", "generation") == "1"
    assert db.zcard(queue.queue_name(PREFIX)) == 1


def test_a_burst_of_pushes_coalesces_into_one_queued_job(
    client: TestClient, db: redis.Redis
) -> None:
    for index in range(10):
        body = body_of(pr_payload("synchronize", sha=f"{index:040x}"))
        assert post(client, body, signed_headers(body, "pull_request")).status_code == 202
    assert db.hget(f"{PREFIX}:staging:{KEY}", "generation") == "10"
    assert db.zrange(queue.queue_name(PREFIX), 0, -1) == [queue.job_id(KEY)]


def test_githubs_form_encoded_variant_is_accepted(client: TestClient) -> None:
    body = urlencode({"payload": body_of(pr_payload("opened")).decode()}).encode()
    headers = signed_headers(body, "pull_request")
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    assert post(client, body, headers).status_code == 202


@pytest.mark.parametrize(
    "change",
    [
        lambda h: h.pop("X-Hub-Signature-256"),
        lambda h: h.__setitem__("X-Hub-Signature-256", "sha256=" + "0" * 64),
        lambda h: h.__setitem__("X-Hub-Signature-256", "garbage"),
    ],
)
def test_missing_or_wrong_signature_is_401_and_stores_nothing(
    client: TestClient, db: redis.Redis, change
) -> None:  # type: ignore[no-untyped-def]
    body = body_of(pr_payload("opened"))
    headers = signed_headers(body, "pull_request")
    change(headers)
    response = post(client, body, headers)
    assert response.status_code == 401
    assert "Signature" in response.json()["error"]
    assert WEBHOOK_SECRET not in response.text
    assert db.dbsize() == 0


def test_tampered_body_is_401(client: TestClient, db: redis.Redis) -> None:
    body = body_of(pr_payload("opened"))
    headers = signed_headers(body, "pull_request")
    assert post(client, body.replace(b"Codertocat", b"Attacker00"), headers).status_code == 401
    assert db.dbsize() == 0


@pytest.mark.parametrize("missing", ["X-GitHub-Event", "X-GitHub-Delivery"])
def test_missing_event_or_delivery_header_is_400(client: TestClient, missing: str) -> None:
    body = body_of(pr_payload("opened"))
    headers = signed_headers(body, "pull_request")
    headers.pop(missing)
    response = post(client, body, headers)
    assert response.status_code == 400
    assert "X-GitHub-Event and X-GitHub-Delivery" in response.json()["error"]


def test_an_absurdly_long_delivery_id_is_400(client: TestClient, db: redis.Redis) -> None:
    body = body_of(pr_payload("opened"))
    response = post(client, body, signed_headers(body, "pull_request", delivery="x" * 500))
    assert response.status_code == 400 and "limited to 128" in response.json()["error"]
    assert db.dbsize() == 0


@pytest.mark.parametrize(
    "body, message",
    [(b"{not json", "not valid JSON"), (b"[]", "not a JSON object"), (b'{"action": 1}', "action")],
)
def test_signed_but_unusable_body_is_400_with_the_reason(
    client: TestClient, body: bytes, message: str
) -> None:
    response = post(client, body, signed_headers(body, "pull_request"))
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_body_over_the_limit_is_413_from_content_length(client: TestClient) -> None:
    body = b"{" + b" " * (64 * 1024) + b"}"
    response = post(client, body, signed_headers(body, "pull_request"))
    assert response.status_code == 413


def test_body_over_the_limit_is_413_when_streamed_without_length(client: TestClient) -> None:
    body = b"{" + b" " * (64 * 1024) + b"}"

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    response = client.post(
        "/webhooks/github", content=chunks(), headers=signed_headers(body, "pull_request")
    )
    assert response.status_code == 413


def test_ping_is_answered_200(client: TestClient) -> None:
    body = fixture_bytes("ping.json")
    response = post(client, body, signed_headers(body, "ping"))
    assert response.status_code == 200 and response.json()["pong"] is True


@pytest.mark.parametrize(
    "event, fixture",
    [
        ("push", "push.json"),
        ("star", "ping.json"),
        ("pull_request", "pull_request.edited.captured-go-scm.json"),
    ],
)
def test_events_the_bot_does_not_use_are_202_and_ignored(
    client: TestClient, db: redis.Redis, event: str, fixture: str
) -> None:
    body = fixture_bytes(fixture)
    response = post(client, body, signed_headers(body, event))
    assert response.status_code == 202 and response.json()["ignored"]
    assert db.dbsize() == 0


def test_repositories_the_bot_does_not_serve_are_202_and_ignored(
    client: TestClient, db: redis.Redis
) -> None:
    payload = pr_payload("opened")
    payload["repository"]["full_name"] = "someone/else"
    body = body_of(payload)
    response = post(client, body, signed_headers(body, "pull_request"))
    assert response.status_code == 202
    assert "not a repository this bot serves" in response.json()["ignored"]
    assert db.dbsize() == 0


def test_redis_down_is_503_not_500(redis_url: str) -> None:
    config = make_config(
        redis_url, redis=RedisConfig(url="redis://127.0.0.1:1/0", key_prefix=PREFIX)
    )
    with TestClient(create_app(config)) as dead:
        body = body_of(pr_payload("opened"))
        response = post(dead, body, signed_headers(body, "pull_request"))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "10"
        assert dead.get("/readyz").status_code == 503
        assert dead.get("/healthz").status_code == 200


def test_readyz_reports_redis(client: TestClient) -> None:
    assert client.get("/readyz").json() == {"ok": True, "redis": "ok"}


@pytest.mark.parametrize(
    "body",
    [
        b'{"action": "opened", "number": ' + b"9" * 5000 + b"}",  # over Python's int digit limit
        b"[" * 200_000 + b"]" * 200_000,  # absurd nesting
    ],
)
def test_json_the_parser_cannot_hold_is_400_not_500(client: TestClient, body: bytes) -> None:
    response = post(client, body, signed_headers(body, "pull_request"))
    assert response.status_code in (400, 413)
    if response.status_code == 400:
        assert "not valid JSON" in response.json()["error"]


def test_a_lone_surrogate_in_a_title_is_stored_not_refused(
    client: TestClient, db: redis.Redis
) -> None:
    body = body_of(pr_payload("opened")).replace(
        b'"title": "Update the README', b'"title": "\\ud800 Update'
    )
    response = post(client, body, signed_headers(body, "pull_request"))
    assert response.status_code == 202
    assert db.hget(f"{PREFIX}:staging:{KEY}", "title").startswith("?")


def test_a_redelivery_after_a_failed_enqueue_still_queues_the_reconcile(
    client: TestClient, db: redis.Redis
) -> None:
    body = body_of(pr_payload("opened"))
    headers = signed_headers(body, "pull_request", delivery="d-redelivered")
    assert post(client, body, headers).status_code == 202
    db.delete(queue.queue_name(PREFIX), f"arq:job:{queue.job_id(KEY)}")  # the enqueue was lost
    assert post(client, body, headers).json() == {"duplicate": "d-redelivered"}
    assert db.zscore(queue.queue_name(PREFIX), queue.job_id(KEY)) is not None
    assert db.hget(f"{PREFIX}:staging:{KEY}", "generation") == "1"
