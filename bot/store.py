"""Desired and observed state of every staging, and seen deliveries, in Redis.

Redis is a fast, rebuildable index: the Git host knows which requests are open and their
head, the cluster's labels know which stagings exist. Wiping Redis costs one sweep.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.asyncio import Redis

from bot.model import StagingKey

HISTORY_CAP = 50

T = TypeVar("T")


async def _done(value: Awaitable[T] | T) -> T:
    """redis-py types its asyncio commands as `Awaitable[T] | T`; they are always awaitables."""
    return await value if inspect.isawaitable(value) else value


# One round trip, atomic: remember the delivery id (SET NX with a TTL) and, only if it is
# new, write every event's desired state and bump each staging's generation. The 202 is
# sent after this returns, so an accepted delivery is never lost, and a repeated one never
# acts twice. KEYS = [delivery, index, staging...]; ARGV = [ttl_ms, json fields...].
_RECORD_DELIVERY = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return 0
end
for i = 3, #KEYS do
  local fields = cjson.decode(ARGV[i - 1])
  for name, value in pairs(fields) do
    redis.call('HSET', KEYS[i], name, value)
  end
  redis.call('HINCRBY', KEYS[i], 'generation', 1)
  redis.call('SADD', KEYS[2], fields['key'])
end
return 1
"""


@dataclass(frozen=True)
class StagingRecord:
    """One staging as Redis holds it: desired fields from events, observed ones from the worker."""

    key: StagingKey
    fields: Mapping[str, str]

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default)

    def number(self, name: str) -> int | None:
        value = self.fields.get(name, "")
        return int(value) if value.lstrip("-").isdigit() else None

    @property
    def generation(self) -> int:
        return self.number("generation") or 0


class Store:
    """Reads and writes staging state under one key prefix."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._record = redis.register_script(_RECORD_DELIVERY)

    def _staging(self, key: StagingKey) -> str:
        return f"{self.prefix}:staging:{key}"

    def _history(self, key: StagingKey) -> str:
        return f"{self.prefix}:history:{key}"

    @property
    def _index(self) -> str:
        return f"{self.prefix}:stagings"

    async def record_delivery(
        self, delivery_id: str, ttl: float, updates: Sequence[tuple[StagingKey, Mapping[str, str]]]
    ) -> bool:
        """Store a delivery's effect once; False when this delivery id was already seen."""
        keys = [f"{self.prefix}:delivery:{delivery_id}", self._index]
        keys += [self._staging(key) for key, _ in updates]
        args = [str(max(1, int(ttl * 1000)))]
        args += [json.dumps(_valid_text({**fields, "key": str(key)})) for key, fields in updates]
        return bool(await self._record(keys=keys, args=args))

    async def load(self, key: StagingKey) -> StagingRecord | None:
        raw = await _done(self.redis.hgetall(self._staging(key)))
        if not raw:
            return None
        return StagingRecord(key, {_text(k): _text(v) for k, v in raw.items()})

    async def update(self, key: StagingKey, fields: Mapping[str, str | int | float]) -> None:
        """Write observed fields (the worker's side); None-free, strings in Redis."""
        if fields:
            mapping = {k: str(v) for k, v in fields.items()}
            await _done(self.redis.hset(self._staging(key), mapping=mapping))

    async def clear(self, key: StagingKey, names: Iterable[str]) -> None:
        names = list(names)
        if names:
            await _done(self.redis.hdel(self._staging(key), *names))

    async def generation(self, key: StagingKey) -> int:
        value = await _done(self.redis.hget(self._staging(key), "generation"))
        return int(value) if value else 0

    async def needs_work(self, key: StagingKey) -> bool:
        """True when an event bumped the generation past what the worker last handled."""
        fields = ["generation", "handled"]
        generation, handled = await _done(self.redis.hmget(self._staging(key), fields))
        return int(generation or 0) > int(handled or 0)

    async def add_history(self, key: StagingKey, entry: Mapping[str, Any]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(self._history(key), json.dumps(entry, sort_keys=True))
            pipe.ltrim(self._history(key), 0, HISTORY_CAP - 1)
            await pipe.execute()

    async def history(self, key: StagingKey) -> list[dict[str, Any]]:
        return [
            json.loads(item) for item in await _done(self.redis.lrange(self._history(key), 0, -1))
        ]

    async def keys(self) -> list[StagingKey]:
        return sorted(
            StagingKey.parse(_text(k)) for k in await _done(self.redis.smembers(self._index))
        )


def _valid_text(fields: Mapping[str, str]) -> dict[str, str]:
    """Text from a payload may hold lone UTF-16 surrogates (valid JSON, invalid UTF-8), which
    Redis's Lua cjson refuses: replace them rather than refuse the delivery."""
    return {k: v.encode("utf-8", "replace").decode("utf-8") for k, v in fields.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
