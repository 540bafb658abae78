"""The intake stores a delivery and queues its reconcile job in one Redis script: the job it
writes is the one arq's own `enqueue_job` writes, and arq's refusal rules still hold."""

from __future__ import annotations

import asyncio
import pickle
import time
from collections.abc import Iterator

import pytest
import redis
from arq.connections import ArqRedis
from arq.jobs import deserialize_job
from redis.asyncio import ConnectionPool
from starlette.testclient import TestClient

from bot import queue
from bot.model import StagingKey
from bot.web import create_app
from tests.helpers import REPO_ID, body_of, make_config, pr_payload, signed_headers

KEY = StagingKey("github", REPO_ID, 2)
OTHER = StagingKey("github", REPO_ID, 3)
PREFIX = "stagingbot-test"
QUEUE = queue.queue_name(PREFIX)
JOB_KEY = f"arq:job:{queue.job_id(KEY)}"
THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000


@pytest.fixture
def client(redis_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(make_config(redis_url))) as test_client:
        yield test_client


@pytest.fixture
def db(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


def deliver(client: TestClient, action: str, sha: str | None = None) -> int:
    body = body_of(pr_payload(action, sha))
    response = client.post(
        "/webhooks/github", content=body, headers=signed_headers(body, "pull_request")
    )
    return response.status_code


async def arq_enqueue(redis_url: str, key: StagingKey) -> None:
    client = ArqRedis(ConnectionPool.from_url(redis_url))
    try:
        await queue.enqueue_reconcile(client, PREFIX, key)
    finally:
        await client.aclose(close_connection_pool=True)


def test_the_queued_job_is_the_one_arqs_enqueue_job_writes(
    client: TestClient, db: redis.Redis, redis_url: str
) -> None:
    assert deliver(client, "opened") == 202
    asyncio.run(arq_enqueue(redis_url, OTHER))  # arq's own enqueue_job, for comparison
    ours, arqs = db.get(JOB_KEY), db.get(f"arq:job:{queue.job_id(OTHER)}")
    assert isinstance(ours, bytes) and isinstance(arqs, bytes)
    mine, theirs = pickle.loads(ours), pickle.loads(arqs)  # noqa: S301 (our own test data)
    assert mine.keys() == theirs.keys()
    assert {k: mine[k] for k in "ftk"} == {k: theirs[k] for k in "ftk"}
    job = deserialize_job(ours)
    assert (job.function, job.args, job.kwargs, job.job_try) == ("reconcile", (str(KEY),), {}, None)
    # Scored with its enqueue time, as arq does; both expire after 30 days.
    assert db.zscore(QUEUE, queue.job_id(KEY)) == mine["et"]
    assert db.zscore(QUEUE, queue.job_id(OTHER)) == theirs["et"]
    for name in (JOB_KEY, f"arq:job:{queue.job_id(OTHER)}"):
        assert THIRTY_DAYS_MS - 60_000 < db.pttl(name) <= THIRTY_DAYS_MS


def test_a_push_to_a_request_whose_job_waits_deferred_moves_that_job_to_now(
    client: TestClient, db: redis.Redis
) -> None:
    assert deliver(client, "opened") == 202
    job = db.get(JOB_KEY)
    later = (time.time() + 600) * 1000  # a job deferred by a backoff, as arq's Retry leaves it
    db.zadd(QUEUE, {queue.job_id(KEY): later})
    assert deliver(client, "synchronize", sha="2" * 40) == 202
    score = db.zscore(QUEUE, queue.job_id(KEY))
    assert score is not None and score <= time.time() * 1000
    assert db.get(JOB_KEY) == job  # the job itself is not rewritten: arq refused the id
    assert db.hget(f"{PREFIX}:staging:{KEY}", "generation") == b"2"


def test_a_job_that_ran_and_left_its_queue_entry_is_not_queued_again_while_it_exists(
    client: TestClient, db: redis.Redis
) -> None:
    """The job exists but is not waiting (it is running): nothing is added, as with arq,
    and `requeue_if_needed` queues it again when it ends (the generation says so)."""
    assert deliver(client, "opened") == 202
    db.zrem(QUEUE, queue.job_id(KEY))  # taken by a worker; its key stays until it ends
    assert deliver(client, "synchronize", sha="2" * 40) == 202
    assert db.zscore(QUEUE, queue.job_id(KEY)) is None
    assert db.hget(f"{PREFIX}:staging:{KEY}", "generation") == b"2"


def test_a_kept_result_refuses_the_job_as_arq_does(client: TestClient, db: redis.Redis) -> None:
    db.set(f"arq:result:{queue.job_id(KEY)}", b"kept")
    assert deliver(client, "opened") == 202
    assert db.get(JOB_KEY) is None and db.zcard(QUEUE) == 0
    assert db.hget(f"{PREFIX}:staging:{KEY}", "generation") == b"1"  # stored all the same
