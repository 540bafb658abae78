"""What each part of the webhook intake costs, in one process, without HTTP.

    .venv/bin/python bench/intake_parts.py [--repeat 7] [--number 2000]

Per delivery of the real 28 KB `pull_request.opened` fixture: HMAC-SHA256 check, `json.loads`,
the intake's decoder (`bot.events.loads`: orjson when it gives the same value), the whole
parse (decode + `parse_delivery` + `update_for`), the Redis work of one delivery the old way
(`Store.record_delivery`, then arq's `enqueue_job` through `queue.enqueue_reconcile`) and the
new way (one script that also queues the job), and the "accepted delivery" log line (JSON
formatter, written to /dev/null). Redis parts run against a private redis-server and give the
client's CPU time (`time.process_time`) and the wall time per delivery, one at a time. Each
number is the minimum over --repeat runs of --number calls: the machine is shared, and the
minimum is the least disturbed run. Prints a markdown table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import logging
import os
import time
import timeit
import uuid
from collections.abc import Awaitable, Callable

from _common import FIXTURE as FIXTURE_PATH
from _common import RedisServer, machine
from arq.connections import ArqRedis  # noqa: E402  (after _common put the repo on sys.path)
from redis.asyncio import ConnectionPool  # noqa: E402

from bot import queue  # noqa: E402
from bot.events import loads  # noqa: E402
from bot.hosts import github_sansio  # noqa: E402
from bot.logs import ContextFilter, JsonFormatter  # noqa: E402
from bot.store import Store  # noqa: E402
from bot.web import update_for  # noqa: E402

SECRET = b"bench-secret"
PREFIX = "stagingbot-bench"
FIXTURE = FIXTURE_PATH.read_bytes()


def per_call_us(fn: Callable[[], object], number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


async def redis_us(
    step: Callable[[str], Awaitable[object]], number: int, repeat: int
) -> tuple[float, float]:
    """(client CPU µs, wall µs) per delivery, minimum over `repeat` runs."""
    cpu, wall = [], []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(number):
            await step(uuid.uuid4().hex)
        cpu.append((time.process_time() - c0) / number * 1e6)
        wall.append((time.perf_counter() - w0) / number * 1e6)
    return min(cpu), min(wall)


async def redis_parts(url: str, number: int, repeat: int) -> list[tuple[str, float, float]]:
    client = ArqRedis(ConnectionPool.from_url(url))
    store = Store(client, PREFIX)
    (event,) = github_sansio.parse_delivery("pull_request", json.loads(FIXTURE)).events

    async def old(delivery: str) -> None:
        await store.record_delivery(delivery, 3600, [update_for(event, time.time(), delivery)])
        await queue.enqueue_reconcile(client, PREFIX, event.key)

    async def new(delivery: str) -> None:
        jobs = queue.reconcile_jobs(PREFIX, [event.key], client.job_serializer)
        await store.record_delivery(
            delivery, 3600, [update_for(event, time.time(), delivery)], jobs
        )

    async def ping(delivery: str) -> None:
        await client.ping()

    try:
        await new("warm-up")
        rows = [("PING (one round trip, for scale)", *await redis_us(ping, number, repeat))]
        rows.append(
            (
                "Redis, old: record_delivery script, then arq enqueue_job + ZADD XX LT",
                *await redis_us(old, number, repeat),
            )
        )
        rows.append(
            (
                "Redis, new: one script stores the delivery and queues its job",
                *await redis_us(new, number, repeat),
            )
        )
        return rows
    finally:
        await client.aclose(close_connection_pool=True)


def log_line_us(number: int, repeat: int, optimized: bool) -> float:
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    log = logging.getLogger("stagingbot.bench")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    saved = (logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing)
    if optimized:
        logging._srcfile = None  # type: ignore[assignment]
        logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    try:
        extra = {
            "delivery": str(uuid.uuid4()),
            "staging": "github:1296269:2",
            "events": "pr.opened:github:1296269:2",
        }
        return per_call_us(lambda: log.info("accepted delivery", extra=extra), number, repeat)
    finally:
        (logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing) = (
            saved
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()
    n, r = args.number, args.repeat
    signature = "sha256=" + hmac.new(SECRET, FIXTURE, hashlib.sha256).hexdigest()

    def parse() -> None:
        payload = github_sansio.decode_body(FIXTURE, "application/json")
        for event in github_sansio.parse_delivery("pull_request", payload).events:
            update_for(event, 0.0, "d")

    cpu = [
        (
            "HMAC-SHA256 check (`verify_signature`)",
            per_call_us(lambda: github_sansio.verify_signature(SECRET, FIXTURE, signature), n, r),
        ),
        ("`json.loads` of the body", per_call_us(lambda: json.loads(FIXTURE), n, r)),
        ("`bot.events.loads` (orjson + checks)", per_call_us(lambda: loads(FIXTURE), n, r)),
        ("decode + `parse_delivery` + `update_for`", per_call_us(parse, n, r)),
        ("log line, logging defaults", log_line_us(n, r, optimized=False)),
        ("log line, no caller/thread/process look-ups", log_line_us(n, r, optimized=True)),
    ]
    with RedisServer() as server:
        rows = asyncio.run(redis_parts(server.url, n // 2, r))
    print(f"\n{machine()}. Minimum of {r} runs of {n} calls ({n // 2} for Redis).\n")
    print("| part (per delivery) | CPU µs | wall µs |")
    print("|---|---|---|")
    for name, us in cpu:
        print(f"| {name} | {us:.1f} | |")
    for name, c, w in rows:
        print(f"| {name} | {c:.1f} | {w:.1f} |")


if __name__ == "__main__":
    main()
