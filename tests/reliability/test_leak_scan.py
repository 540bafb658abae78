"""The leak scan itself: it finds a planted secret wherever it is put, and passes clean text."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from tests.reliability import secrets_for_scan as secrets
from tests.reliability.conftest import LeakScan

pytestmark = pytest.mark.reliability


async def test_the_scan_finds_each_secret_in_logs_and_redis_and_passes_clean_text(
    redis_url: str,
) -> None:
    clean = LeakScan()
    clean.add("a log line", "accepted delivery 5b4c0f3e for github:186853002:2 ****")
    assert clean.findings() == []
    redis = Redis.from_url(redis_url)
    try:
        for label, value in secrets.FIXED.items():
            scan = LeakScan()
            await redis.flushall()
            await redis.hset("stagingbot-rel:history:x", mapping={"reason": f"oops {value}"})
            await scan.add_redis(redis)
            scan.add("a log line", f'{{"msg": "token={value[:-1]}"}}')  # a cut secret is no match
            assert scan.findings() == [f"{label} found in Redis stagingbot-rel:history:x"]
    finally:
        await redis.aclose()
