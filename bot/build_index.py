"""Which stagings wait for the build of which commit: a small Redis index for the intake.

A `status` delivery (GitHub) names a commit but no pull request, and a pipeline may run
for a branch rather than a merge request: the intake finds the stagings to wake through
`<p>:awaiting:<host>:<repo-id>:<sha>`, a set of staging keys written by the reconcile job
when it starts waiting and cleared when the commit is deployed or a newer push replaces
it. Entries expire, so a staging closed while it waited leaves nothing behind for long.
"""

from __future__ import annotations

from bot.model import StagingKey
from bot.store import Store, _done

TTL = 30 * 86400  # seconds: as long as a job key; a build is never awaited that long
AWAITED_SHA = "awaited_sha"  # record field: the commit the staging waits for
BUILT_SHA = "built_sha"  # record field: the commit whose gate passed (or was declared built)
BUILT_BY = "built_by"  # who declared it built (`deploy --sha` through the API), if anyone


def index_key(prefix: str, host: str, repo_id: int, sha: str) -> str:
    return f"{prefix}:awaiting:{host}:{repo_id}:{sha.lower()}"


async def remember(store: Store, key: StagingKey, sha: str) -> None:
    """`key` waits for the build of `sha`; the commit it waited for before, if another, is
    forgotten."""
    record = await store.load(key)
    before = record.get(AWAITED_SHA) if record else ""
    name = index_key(store.prefix, key.host, key.repo_id, sha)
    async with store.redis.pipeline(transaction=True) as pipe:
        if before and before != sha:
            pipe.srem(index_key(store.prefix, key.host, key.repo_id, before), str(key))
        pipe.sadd(name, str(key))
        pipe.expire(name, TTL)
        await pipe.execute()
    await store.update(key, {AWAITED_SHA: sha})


async def forget(store: Store, key: StagingKey, sha: str) -> None:
    """`key` no longer waits for `sha` (deployed, or replaced by a newer push)."""
    if sha:
        name = index_key(store.prefix, key.host, key.repo_id, sha)
        await _done(store.redis.srem(name, str(key)))
    await store.clear(key, [AWAITED_SHA])


async def waiting_on(store: Store, host: str, repo_id: int, sha: str) -> list[StagingKey]:
    """The stagings of a repository waiting for the build of `sha`."""
    members = await _done(store.redis.smembers(index_key(store.prefix, host, repo_id, sha)))
    keys = []
    for member in members:
        text = member.decode() if isinstance(member, bytes) else str(member)
        try:
            keys.append(StagingKey.parse(text))
        except ValueError:
            continue
    return sorted(keys)
