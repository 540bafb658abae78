"""What the last sweep found, kept in Redis for the dashboard and `/metrics` (any process).

`{"at", "failed", "problems": [text], "orphans": [{key, namespace, host, repo, number,
deleted}]}`, rewritten by every sweep.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis


def last_key(prefix: str) -> str:
    return f"{prefix}:sweep:last"


async def save(redis: Redis, prefix: str, summary: dict[str, Any]) -> None:
    await redis.set(last_key(prefix), json.dumps(summary))


async def load(redis: Redis, prefix: str) -> dict[str, Any] | None:
    """The last sweep's summary; None before the first one (or when it does not read)."""
    raw = await redis.get(last_key(prefix))
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def orphans(summary: dict[str, Any] | None) -> list[dict[str, Any]]:
    found = (summary or {}).get("orphans")
    return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []
