"""The request kept for follow-up rounds (bot.pull_cache) and the commits a record says the
bot began writing on (handlers.written): pure parts, no Redis."""

from __future__ import annotations

from bot.model import PullRequest, RepoRef, StagingKey
from bot.pull_cache import MAX_AGE, PullCache
from bot.store import StagingRecord
from handlers import written

KEY = StagingKey("github", 1296269, 2)
PR = PullRequest(
    RepoRef("github", 1296269, "octo/hello"), 2, "a" * 40, "b", "t", "me", "u", open=True
)


def test_a_kept_answer_serves_only_its_own_generation_and_only_for_a_while() -> None:
    now = [100.0]
    cache = PullCache(clock=lambda: now[0])
    cache.put(KEY, 3, PR)
    assert cache.get(KEY, 3) == PR
    assert cache.get(KEY, 4) is None  # an event came: read again
    assert cache.get(StagingKey("github", 1296269, 3), 3) is None
    now[0] += MAX_AGE + 1
    assert cache.get(KEY, 3) is None  # a lost webhook hides a change at most this long


def test_a_commit_is_unseen_only_where_the_record_keeps_the_list_and_lacks_it() -> None:
    sha1, sha2 = "1" * 40, "2" * 40
    fresh = StagingRecord(KEY, {})
    assert not written.unseen(fresh, written.CHECKS, sha1)  # a new or rebuilt record: look
    kept = StagingRecord(KEY, {written.CHECKS: sha1[:12]})
    assert not written.unseen(kept, written.CHECKS, sha1)  # begun on: a retry looks it up
    assert written.unseen(kept, written.CHECKS, sha2)
    assert not written.unseen(kept, written.DEPLOYMENTS, sha2)  # each kind its own list
