"""Desired and observed state of every staging, and seen deliveries, in Redis.

Redis is a fast, rebuildable index: the Git host knows which requests are open and their
head, the cluster's labels know which stagings exist. Wiping Redis costs one sweep.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import WatchError

from bot.model import PullRequest, RepoRef, StagingKey
from bot.queue import QueuedJobs

HISTORY_CAP = 50
CHANGE_ATTEMPTS = 20

T = TypeVar("T")


async def _done(value: Awaitable[T] | T) -> T:
    """redis-py types its asyncio commands as `Awaitable[T] | T`; they are always awaitables."""
    return await value if inspect.isawaitable(value) else value


# One round trip, atomic: remember the delivery id (SET NX with a TTL) and, only if it is
# new, write every event's desired state and bump each staging's generation. A slash-command
# is queued on its staging's command list once per comment id (GitLab re-sends edited notes
# without an action), with the head the bot knew when the comment arrived. Then, for a
# repeated delivery too (it expedites a waiting job), queue the reconcile jobs given
# (`queue.QueuedJobs`) as arq's `enqueue_job` would: job key + queue entry unless the job
# or its result exists, else move the waiting entry to now (ZADD XX LT, as
# `queue.enqueue_reconcile`). The 202 is sent after this returns, so an accepted delivery
# is never lost nor left without its job, and a repeated one never acts twice.
# KEYS = [delivery, index, then per staging: hash, command list, comment-seen key,
#         then (jobs) queue, then per job: job key, result key];
# ARGV = [ttl_ms, number of stagings, then per staging a JSON {"fields": {...}, "command":
#         {...} or absent, "if_new": {...} or absent (written first, only into a staging
#         that has no record yet)}, then (jobs) now_ms, expiry ms, then per job: job id, job].
_RECORD_DELIVERY = """
local n = tonumber(ARGV[2])
local fresh = redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1])
if fresh then
  for i = 1, n do
    local staging = KEYS[3 * i]
    local doc = cjson.decode(ARGV[2 + i])
    if doc['command'] and redis.call('SET', KEYS[3 * i + 2], '1', 'NX', 'PX', ARGV[1]) then
      local command = doc['command']
      if command['sha'] == '' then
        command['sha'] = redis.call('HGET', staging, 'desired_sha') or ''
      end
      redis.call('RPUSH', KEYS[3 * i + 1], cjson.encode(command))
    end
    if doc['if_new'] and redis.call('EXISTS', staging) == 0 then
      for name, value in pairs(doc['if_new']) do
        redis.call('HSET', staging, name, value)
      end
    end
    for name, value in pairs(doc['fields']) do
      redis.call('HSET', staging, name, value)
    end
    redis.call('HINCRBY', staging, 'generation', 1)
    redis.call('SADD', KEYS[2], doc['fields']['key'])
  end
end
local q, a = 3 * n + 3, n + 3
if #KEYS >= q then
  local now, expires = ARGV[a], ARGV[a + 1]
  for j = 0, (#KEYS - q) / 2 - 1 do
    local job, result, id = KEYS[q + 1 + 2 * j], KEYS[q + 2 + 2 * j], ARGV[a + 2 + 2 * j]
    if redis.call('EXISTS', job, result) == 0 then
      redis.call('SET', job, ARGV[a + 3 + 2 * j], 'PX', expires)
      redis.call('ZADD', KEYS[q], now, id)
    else
      redis.call('ZADD', KEYS[q], 'XX', 'LT', now, id)
    end
  end
end
if fresh then
  return 1
end
return 0
"""


# Only when the staging has no record yet, or only a partial one (no `key`, see
# `StagingRecord.partial`): a webhook that wrote one meanwhile wins. A partial record is
# replaced whole, keeping only the fields named to keep (the ids of what is on the request).
# KEYS = [hash, index]; ARGV = [key, number of fields to keep, their names..., then field,
# value, field, value...].
_CREATE = """
if redis.call('HEXISTS', KEYS[1], 'key') == 1 then
  return 0
end
local keep = tonumber(ARGV[2])
local kept = {}
if keep > 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  local names = {unpack(ARGV, 3, 2 + keep)}
  local values = redis.call('HMGET', KEYS[1], unpack(names))
  for i, name in ipairs(names) do
    if values[i] then
      table.insert(kept, name)
      table.insert(kept, values[i])
    end
  end
end
redis.call('DEL', KEYS[1])
if #kept > 0 then
  redis.call('HSET', KEYS[1], unpack(kept))
end
redis.call('HSET', KEYS[1], 'key', ARGV[1], unpack(ARGV, 3 + keep))
redis.call('HINCRBY', KEYS[1], 'generation', 1)
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""

# Quotas (staging.max_active, max_active_per_repo): `<p>:slots` is a hash of the stagings
# holding a slot (key -> when claimed), `<p>:waiting` a sorted set of those queued for one
# (score: when queued). Claiming and freeing are each one script, so two workers freeing
# and claiming at once never hand out a slot twice. First come, first served: a slot goes
# to the oldest waiting staging that fits, each repository within its own quota.
# A repository whose [[repos]] entry sets max_active has that cap instead of the one per
# repository: `<p>:repo_caps` (repository -> cap) holds it for the other claims to read,
# written by each claim of that repository's stagings (so a changed configuration counts
# from their next claim: all of them claim again when a slot frees or the sweep wakes them).
# KEYS = [slots, waiting, repo_caps]; ARGV = [key, force ("1": it runs already, just count
# it), max total, max per repository (0: no limit), now, this repository's own cap ("":
# none)]. Returns 0 (holds a slot) or the 1-based position in the queue.
_CLAIM = """
local key, force = ARGV[1], ARGV[2] == '1'
local most, most_per_repo, now = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local function repo(k) return string.match(k, '^(.*):[^:]*$') end
if ARGV[6] == '' then
  redis.call('HDEL', KEYS[3], repo(key))
else
  redis.call('HSET', KEYS[3], repo(key), ARGV[6])
end
if redis.call('HEXISTS', KEYS[1], key) == 1 or force then
  redis.call('HSETNX', KEYS[1], key, now)
  redis.call('ZREM', KEYS[2], key)
  return 0
end
redis.call('ZADD', KEYS[2], 'NX', now, key)
local caps, own = {}, redis.call('HGETALL', KEYS[3])
for i = 1, #own, 2 do
  caps[own[i]] = tonumber(own[i + 1])
end
local total, per_repo = 0, {}
for _, k in ipairs(redis.call('HKEYS', KEYS[1])) do
  total = total + 1
  per_repo[repo(k)] = (per_repo[repo(k)] or 0) + 1
end
local position = 0
for _, k in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local r = repo(k)
  local cap = caps[r] or most_per_repo
  local fits = (most == 0 or total < most) and (cap == 0 or (per_repo[r] or 0) < cap)
  position = position + 1
  if k == key then
    if not fits then
      return position
    end
    redis.call('HSET', KEYS[1], key, now)
    redis.call('ZREM', KEYS[2], key)
    return 0
  end
  if fits then  -- kept for that older one, which its own job claims
    total = total + 1
    per_repo[r] = (per_repo[r] or 0) + 1
  end
end
return position
"""

# Free the slot of a staging archived, removed or closed (or take it out of the queue).
# KEYS = [slots, waiting]; ARGV = [key]. Returns the waiting stagings, oldest first, when
# something was freed (their places changed, the first may now fit), else nothing.
_RELEASE = """
local freed = redis.call('HDEL', KEYS[1], ARGV[1]) + redis.call('ZREM', KEYS[2], ARGV[1])
if freed == 0 then
  return {}
end
return redis.call('ZRANGE', KEYS[2], 0, -1)
"""

# Bump the generation of records that exist (never create one). KEYS = the hashes.
_NUDGE = """
for _, name in ipairs(KEYS) do
  if redis.call('EXISTS', name) == 1 then
    redis.call('HINCRBY', name, 'generation', 1)
  end
end
return 1
"""

# Delete a field only while it holds the value read. KEYS = [hash]; ARGV = [field, value].
# A gone staging of a closed request, gone since before the cutoff: forget its record,
# history and commands at once. Checked inside the script, so a reopen that wrote the
# record a moment ago keeps it.
# KEYS = [record, history, commands, index]; ARGV = [index member, cutoff].
_FORGET = """
local phase = redis.call('HGET', KEYS[1], 'phase')
local desired = redis.call('HGET', KEYS[1], 'desired')
local gone_at = tonumber(redis.call('HGET', KEYS[1], 'gone_at') or '')
local same = redis.call('HGET', KEYS[1], 'gone_generation') ==
  (redis.call('HGET', KEYS[1], 'generation') or '0')
if phase ~= 'gone' or desired ~= 'gone' or not same or not gone_at
    or gone_at > tonumber(ARGV[2]) then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('SREM', KEYS[4], ARGV[1])
return 1
"""

_CLEAR_IF = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


@dataclass(frozen=True)
class Update:
    """What one event of a delivery writes: desired-state fields, and a command to queue."""

    key: StagingKey
    fields: Mapping[str, str]
    command: Mapping[str, str] | None = None  # id, body, author, sha ("" = as last known)
    if_new: Mapping[str, str] | None = None  # written too when this event creates the record


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

    @property
    def partial(self) -> bool:
        """Written only by a job, after Redis lost the record (a wipe during the job): every
        writer that creates a record (an event, the sweep's `create`, `desire`) writes
        `key`, the worker's own writes never do. It lacks the desired state and what the
        cluster runs: the sweep rebuilds it as if it were missing."""
        return not self.get("key")

    def request(self) -> PullRequest:
        """The request as its last webhook described it (no host call: offline mode, and
        the rules checked before an action is accepted)."""
        try:
            stored = json.loads(self.get("labels") or "[]")
        except ValueError:
            stored = []
        labels = tuple(str(label) for label in stored) if isinstance(stored, list) else ()
        return PullRequest(
            RepoRef(
                self.key.host,
                self.key.repo_id,
                self.get("repo"),
                self.number("installation_id") or 0,
            ),
            self.key.number,
            head_sha=self.get("desired_sha"),
            branch=self.get("branch"),
            title=self.get("title"),
            author=self.get("author"),
            url=self.get("pr_url"),
            open=self.get("desired") != "gone",
            draft=self.get("draft") == "1",
            fork=self.get("fork") == "1",
            labels=labels,
        )


class Store:
    """Reads and writes staging state under one key prefix."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._record = redis.register_script(_RECORD_DELIVERY)
        self._create = redis.register_script(_CREATE)
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)
        self._nudge = redis.register_script(_NUDGE)
        self._clear_if = redis.register_script(_CLEAR_IF)
        self._forget = redis.register_script(_FORGET)

    def _staging(self, key: StagingKey) -> str:
        return f"{self.prefix}:staging:{key}"

    def _commands(self, key: StagingKey) -> str:
        return f"{self.prefix}:commands:{key}"

    def _history(self, key: StagingKey) -> str:
        return f"{self.prefix}:history:{key}"

    @property
    def _index(self) -> str:
        return f"{self.prefix}:stagings"

    async def record_delivery(
        self,
        delivery_id: str,
        ttl: float,
        updates: Sequence[Update],
        jobs: QueuedJobs | None = None,
    ) -> bool:
        """Store a delivery's effect once and queue `jobs` (each time), in one round trip;
        False when this delivery id was already seen."""
        keys = [f"{self.prefix}:delivery:{delivery_id}", self._index]
        args: list[str | bytes] = [str(max(1, int(ttl * 1000))), str(len(updates))]
        for update in updates:
            command = update.command
            seen = f"{self.prefix}:comment:{update.key.host}:{update.key.repo_id}:"
            seen += str(command.get("id", "")) if command else "-"
            keys += [self._staging(update.key), self._commands(update.key), seen]
            doc: dict[str, Any] = {"fields": _valid_text({**update.fields, "key": str(update.key)})}
            if command:
                doc["command"] = _valid_text(command)
            if update.if_new:
                doc["if_new"] = _valid_text(update.if_new)
            args.append(json.dumps(doc))
        if jobs is not None and jobs.ids:
            keys += jobs.keys()
            args += jobs.args()
        return bool(await self._record(keys=keys, args=args))

    async def create(
        self, key: StagingKey, fields: Mapping[str, str], keep: Sequence[str] = ()
    ) -> bool:
        """Write a record for a staging Redis does not know (the sweep); False if one exists.

        A partial record (`StagingRecord.partial`) counts as none: it is replaced, keeping
        only the fields in `keep` it holds (`fields` win over them). Like an event, it bumps
        the generation, so the reconcile job acts on it.
        """
        args = [str(key), str(len(keep)), *keep]
        for name, value in _valid_text(fields).items():
            args += [name, value]
        return bool(await self._create(keys=[self._staging(key), self._index], args=args))

    async def desire(self, key: StagingKey, fields: Mapping[str, str]) -> None:
        """Write desired-state fields and bump the generation, as an event would (the sweep,
        standing in for a webhook that was lost)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._staging(key), mapping={**_valid_text(fields), "key": str(key)})
            pipe.hincrby(self._staging(key), "generation", 1)
            pipe.sadd(self._index, str(key))
            await pipe.execute()

    async def change(
        self, key: StagingKey, decide: Callable[[StagingRecord], Mapping[str, str]]
    ) -> tuple[StagingRecord, dict[str, str]]:
        """Read a staging, write the desired-state fields `decide` returns and bump the
        generation, as one optimistic transaction: if the record changes in between (the
        worker, another person), it is read and decided again. `decide` may raise to write
        nothing. Returns the record as read and the fields written; LookupError when the
        staging has no record.
        """
        name = self._staging(key)
        async with self.redis.pipeline(transaction=True) as pipe:
            for _ in range(CHANGE_ATTEMPTS):
                try:
                    await pipe.watch(name)
                    raw = await _done(pipe.hgetall(name))
                    if not raw:
                        raise LookupError(str(key))
                    record = StagingRecord(key, {_text(k): _text(v) for k, v in raw.items()})
                    fields = _valid_text(decide(record))
                    pipe.multi()  # type: ignore[no-untyped-call]
                    if fields:
                        pipe.hset(name, mapping=fields)
                        pipe.hincrby(name, "generation", 1)
                    await pipe.execute()
                    return record, fields
                except WatchError:
                    continue
        raise WatchError(f"{key} kept changing")

    async def next_command(self, key: StagingKey) -> dict[str, str] | None:
        """The oldest command not yet handled; it stays queued until `command_done`."""
        raw = await _done(self.redis.lindex(self._commands(key), 0))
        return json.loads(raw) if raw else None

    async def command_done(self, key: StagingKey, fields: Mapping[str, str | int | float]) -> None:
        """Write a command's effect on the desired state and drop it from the queue, at once."""
        async with self.redis.pipeline(transaction=True) as pipe:
            if fields:
                pipe.hset(self._staging(key), mapping={k: str(v) for k, v in fields.items()})
            pipe.lpop(self._commands(key))
            await pipe.execute()

    async def load(self, key: StagingKey) -> StagingRecord | None:
        raw = await _done(self.redis.hgetall(self._staging(key)))
        if not raw:
            return None
        return StagingRecord(key, {_text(k): _text(v) for k, v in raw.items()})

    async def load_many(self, keys: Iterable[StagingKey]) -> dict[StagingKey, StagingRecord]:
        """The records of `keys` that exist, in one round trip."""
        keys = list(keys)
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(self._staging(key))
            found = await pipe.execute()
        return {
            key: StagingRecord(key, {_text(k): _text(v) for k, v in raw.items()})
            for key, raw in zip(keys, found, strict=True)
            if raw
        }

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

    async def latest_many(self, keys: Iterable[StagingKey]) -> dict[StagingKey, dict[str, Any]]:
        """Each staging's newest history entry, for those that have one, in one round trip."""
        keys = list(keys)
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.lindex(self._history(key), 0)
            found = await pipe.execute()
        return {key: json.loads(raw) for key, raw in zip(keys, found, strict=True) if raw}

    async def keys(self) -> list[StagingKey]:
        return sorted(
            StagingKey.parse(_text(k)) for k in await _done(self.redis.smembers(self._index))
        )

    # --- slots for the quotas (see _CLAIM) ---

    @property
    def _slots(self) -> list[str]:
        return [f"{self.prefix}:slots", f"{self.prefix}:waiting"]

    async def claim(
        self,
        key: StagingKey,
        *,
        runs: bool,
        most: int,
        most_per_repo: int,
        now: float,
        own: int | None = None,
    ) -> int:
        """Take a slot for `key` (one it `runs` already is only counted): 0 when it holds
        one, else its 1-based position in the queue, which it joins if it was not in it.
        `own`: its repository's own cap, in place of `most_per_repo` (None: it has none)."""
        args = [str(key), "1" if runs else "0", str(most), str(most_per_repo), f"{now:.3f}"]
        args.append("" if own is None else str(own))
        keys = [*self._slots, f"{self.prefix}:repo_caps"]
        return int(await self._claim(keys=keys, args=args))

    async def release(self, key: StagingKey) -> list[StagingKey]:
        """Free `key`'s slot or leave the queue; the stagings still waiting when it did."""
        waiting = await self._release(keys=self._slots, args=[str(key)])
        return [StagingKey.parse(_text(item)) for item in waiting]

    async def slots(self) -> tuple[dict[StagingKey, float], dict[StagingKey, float]]:
        """Who holds a slot, since when (0: counted by the sweep), and who waits since when
        (oldest first)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._slots[0])
            pipe.zrange(self._slots[1], 0, -1, withscores=True)
            held, waiting = await pipe.execute()
        holders = {StagingKey.parse(_text(k)): float(_text(v)) for k, v in held.items()}
        return holders, {StagingKey.parse(_text(k)): float(score) for k, score in waiting}

    async def resync_slots(
        self,
        holders: Iterable[StagingKey],
        stale: Iterable[StagingKey],
        leave_queue: Iterable[StagingKey],
        expected: Mapping[StagingKey, float],
    ) -> bool:
        """Count `holders` as holding a slot, and free `stale` ones and take `leave_queue`
        out of the queue, only if no one claimed or freed a slot since `expected` was read
        (then False: the next sweep tries again)."""
        slots, waiting = self._slots
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(slots, waiting)
                now = await _done(pipe.hgetall(slots))
                if {StagingKey.parse(_text(k)) for k in now} != set(expected):
                    return False
                pipe.multi()  # type: ignore[no-untyped-call]
                for key in holders:
                    pipe.hsetnx(slots, str(key), "0")
                for key in stale:
                    pipe.hdel(slots, str(key))
                for key in leave_queue:
                    pipe.zrem(waiting, str(key))
                await pipe.execute()
            except WatchError:
                return False
        return True

    async def nudge(self, keys: Iterable[StagingKey]) -> None:
        """Bump the generation of these stagings (their record must exist), so a job that
        is running now goes round again instead of missing the change."""
        names = [self._staging(key) for key in keys]
        if names:
            await self._nudge(keys=names, args=[])

    async def forget_if_gone(self, key: StagingKey, cutoff: float) -> bool:
        """Delete a closed request's gone staging (record, history, commands) if it has been
        gone since `cutoff` or earlier; anything else is kept."""
        keys = [self._staging(key), self._history(key), self._commands(key), self._index]
        return bool(await self._forget(keys=keys, args=[str(key), f"{cutoff:.3f}"]))

    async def clear_if(self, key: StagingKey, name: str, value: str) -> bool:
        """Delete the field `name` if it still holds `value` (written again meanwhile: kept)."""
        return bool(await self._clear_if(keys=[self._staging(key)], args=[name, value]))


def _valid_text(fields: Mapping[str, str]) -> dict[str, str]:
    """Text from a payload may hold lone UTF-16 surrogates (valid JSON, invalid UTF-8), which
    Redis's Lua cjson refuses: replace them rather than refuse the delivery."""
    return {k: v.encode("utf-8", "replace").decode("utf-8") for k, v in fields.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def stored_links(record: StagingRecord) -> tuple[tuple[str, str], ...]:
    """The extra links a provisioner found (`links`: JSON `[{"name", "url"}]`), as (name, url);
    only http(s) URLs, whatever the stored text holds."""
    try:
        items = json.loads(record.get("links") or "[]")
    except ValueError:
        return ()
    if not isinstance(items, list):
        return ()
    found = []
    for item in items:
        name, url = (item.get("name"), item.get("url")) if isinstance(item, dict) else ("", "")
        if isinstance(name, str) and isinstance(url, str) and url.startswith(("https://", "http://")):
            found.append((name, url))
    return tuple(found)
