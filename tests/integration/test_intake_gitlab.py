"""The GitLab webhook: 401 for a wrong token, 400 for non-JSON, 2xx for all else authentic."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis
from starlette.testclient import TestClient

from bot import queue
from bot.config import GitLabConfig, RepoConfig, Secret
from bot.model import StagingKey
from bot.web import create_app
from tests.conftest import load_fixture
from tests.helpers import make_config

TOKEN = "gitlab-hook-token-7c1e"
PREFIX = "stagingbot-test"
KEY = StagingKey("gitlab", 1, 1)


@pytest.fixture
def client(redis_url: str) -> Iterator[TestClient]:
    config = replace(
        make_config(redis_url),
        gitlab=GitLabConfig(token=Secret("glpat-x"), webhook_secret=Secret(TOKEN)),
        repos=(RepoConfig(host="gitlab", repo="gitlabhq/gitlab-test"),),
    )
    with TestClient(create_app(config)) as test_client:
        yield test_client


@pytest.fixture
def db(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    yield conn
    conn.close()


def headers(
    hook: str = "Merge Request Hook", token: str | None = TOKEN, **extra: str
) -> dict[str, str]:
    result = {"Content-Type": "application/json", "X-Gitlab-Event": hook, **extra}
    if token is not None:
        result["X-Gitlab-Token"] = token
    return result


def opened() -> bytes:
    return json.dumps(load_fixture("merge_request.open.json", host="gitlab")).encode()


def test_an_opened_merge_request_is_stored_and_queued(client: TestClient, db: redis.Redis) -> None:
    response = client.post(
        "/webhooks/gitlab", content=opened(), headers=headers(**{"Idempotency-Key": "k1"})
    )
    assert response.status_code == 202 and response.json() == {"accepted": [str(KEY)]}
    staging = db.hgetall(f"{PREFIX}:staging:{KEY}")
    assert staging["desired"] == "running" and staging["repo"] == "gitlabhq/gitlab-test"
    assert db.zscore(queue.queue_name(PREFIX), queue.job_id(KEY)) is not None


def test_a_retried_delivery_with_the_same_idempotency_key_acts_once(
    client: TestClient, db: redis.Redis
) -> None:
    for _ in range(3):
        client.post(
            "/webhooks/gitlab", content=opened(), headers=headers(**{"Idempotency-Key": "k2"})
        )
    assert db.hget(f"{PREFIX}:staging:{KEY}", "generation") == "1"


def test_a_repeat_with_the_same_event_uuid_and_object_acts_once(
    client: TestClient, db: redis.Redis
) -> None:
    same = headers(**{"X-Gitlab-Event-UUID": "13792a34"})
    client.post("/webhooks/gitlab", content=opened(), headers=same)
    client.post("/webhooks/gitlab", content=opened(), headers=same)
    assert db.hget(f"{PREFIX}:staging:{KEY}", "generation") == "1"


@pytest.mark.parametrize("token", [None, "", "wrong", TOKEN + "x"])
def test_a_missing_or_wrong_token_is_401_and_never_echoed(
    client: TestClient, db: redis.Redis, token: str | None
) -> None:
    response = client.post("/webhooks/gitlab", content=opened(), headers=headers(token=token))
    assert response.status_code == 401
    assert TOKEN not in response.text and (not token or token not in response.text)
    assert db.dbsize() == 0


def test_a_missing_event_header_is_400(client: TestClient) -> None:
    response = client.post("/webhooks/gitlab", content=opened(), headers={"X-Gitlab-Token": TOKEN})
    assert response.status_code == 400 and "X-Gitlab-Event" in response.json()["error"]


def test_malformed_json_is_400(client: TestClient) -> None:
    response = client.post("/webhooks/gitlab", content=b"{oops", headers=headers())
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]


@pytest.mark.parametrize(
    "hook, body",
    [
        ("Merge Request Hook", b'{"text": "custom webhook template"}'),
        ("Push Hook", json.dumps(load_fixture("push.json", host="gitlab")).encode()),
        ("Emoji Hook", b"{}"),
    ],
)
def test_authentic_bodies_the_bot_cannot_use_are_202_with_the_reason(
    client: TestClient, db: redis.Redis, hook: str, body: bytes
) -> None:
    response = client.post("/webhooks/gitlab", content=body, headers=headers(hook))
    assert response.status_code == 202 and response.json()["ignored"]
    assert db.dbsize() == 0
