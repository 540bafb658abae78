"""The cluster out of reach for a while: say so on the request, once, and keep retrying.

A reconcile job that meets a `ClusterError` (the API server unreachable or answering 5xx,
the `command` provisioner's exit 75) backs off and tries again, like any temporary error.
A blip goes unseen; from the `REPORT_AFTER`-th consecutive failed attempt, a staging the
request still shows in progress is reported `failed` with the reason in words ("the cluster
cannot be reached: HTTP 503 Service Unavailable; retrying"): check run failed, comment,
deployment and one history entry. The retries go on without writing again; the first round
that reaches the cluster reports the staging's real state (deploying, then running).

A Git host's own outage is not a `ClusterError`: it cannot be reported on that host.
"""

from __future__ import annotations

from bot.errors import ClusterError
from bot.model import CheckState
from bot.store import StagingRecord

# Consecutive failed attempts of a job before the request is told. The backoff waits 1–2 s
# after the first, 2–4 s after the second: the third comes 3–6 s into an outage.
REPORT_AFTER = 3
# The head commit the outage was reported on; "" (or absent) while nothing was reported.
FIELD = "cluster_down"


def due(record: StagingRecord, head_sha: str, want_running: bool, attempts: int) -> bool:
    """Tell the request now? Only a staging wanted running whose check on the head still
    says in progress (a green or red one keeps what it says), and only once per commit."""
    return (
        want_running
        and attempts >= REPORT_AFTER
        and record.get("check_sha") == head_sha
        and record.get("check_state") == CheckState.IN_PROGRESS.value
        and record.get(FIELD) != head_sha
    )


def reason(exc: ClusterError) -> str:
    """What the request says: a status and a short phrase, nothing from a response body."""
    return f"the cluster cannot be reached: {exc.shown}; retrying"


def reported(record: StagingRecord, head_sha: str) -> bool:
    """The request says the cluster is out of reach for this commit: leave it saying so
    until an apply goes through, instead of "in progress" again on every retry."""
    return record.get(FIELD) == head_sha
