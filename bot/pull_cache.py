"""The request as the Git host last answered, kept for a job's follow-up rounds (per worker).

A reconcile round reads the request's current state from the host, never from an event.
A round that only looks at the cluster again (a rollout being followed, a namespace
terminating) may reuse the answer of the round before it, while nothing can have changed
it: every event that changes a request (push, close, reopen, label, edit, command) and the
sweep's repair of a lost one bump the staging's generation, and an answer is kept for the
generation the record had *before* it was read, so an event that arrives meanwhile makes the
next round read again. `MAX_AGE` bounds what a lost webhook can hide until the sweep finds it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.model import PullRequest, StagingKey

MAX_AGE = 30.0  # seconds an answer is reused at most
MAX_ENTRIES = 10_000  # past that, the oldest answers are dropped


@dataclass(frozen=True)
class _Kept:
    generation: int
    at: float
    pr: PullRequest


@dataclass
class PullCache:
    """Answers of `GitHost.get_pull` by staging and generation; a worker process keeps one."""

    clock: Callable[[], float] = field(default=time.monotonic)
    _kept: dict[StagingKey, _Kept] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: StagingKey, generation: int) -> PullRequest | None:
        """The answer read at `generation`, if it is recent enough."""
        with self._lock:
            kept = self._kept.get(key)
        if kept is None or kept.generation != generation or self.clock() - kept.at > MAX_AGE:
            return None
        return kept.pr

    def put(self, key: StagingKey, generation: int, pr: PullRequest) -> None:
        """Keep `pr`, read while the record was at `generation`."""
        now = self.clock()
        with self._lock:
            self._kept.pop(key, None)  # re-inserted last: the dict stays oldest-first
            self._kept[key] = _Kept(generation, now, pr)
            while len(self._kept) > MAX_ENTRIES:
                del self._kept[next(iter(self._kept))]

    def drop(self, key: StagingKey) -> None:
        with self._lock:
            self._kept.pop(key, None)
