"""The request's current state for one reconcile round: read from the host, or the answer
the round before read when this round only follows the cluster and nothing moved since
(bot.pull_cache says why that is safe)."""

from __future__ import annotations

from dataclasses import replace

from bot.hosts.base import GitHost
from bot.model import Phase, PullRequest, RepoRef
from bot.services import Services
from bot.store import StagingRecord

# Rounds that come back only to look at the cluster again: a rollout, a namespace deleting.
FOLLOWING = (Phase.DEPLOYING, Phase.DESTROYING)


async def current(
    svc: Services, host: GitHost, repo: RepoRef, record: StagingRecord
) -> PullRequest:
    """`host.get_pull`, or the answer kept at this very generation while the staging is
    only being followed."""
    key, generation = record.key, record.generation
    if record.get("phase") in FOLLOWING:
        kept = svc.pulls.get(key, generation)
        if kept is not None:  # its comment count may be out of date: not known
            return replace(kept, comments=None)
    pr = await host.get_pull(repo, key.number)
    svc.pulls.put(key, generation, pr)
    return pr
