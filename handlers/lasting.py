"""Decisions that outlive Redis: a staging removed while its request stays open stays gone.

A person's destroy (or retention) is written in the record (`decision`, `decision_sha`);
before the staging is torn down the decision is also kept with the provisioner (a
ConfigMap in the bot's namespace, or a file), so that a Redis wipe followed by a sweep
does not build it again. It is forgotten when a push or a deploy asks for the staging
again, and when the request closes. `decisions.KEPT` in the record holds the head the
decision was kept for, so each is written once.
"""

from __future__ import annotations

from bot.model import PullRequest
from bot.provision.decisions import KEPT, Decision
from bot.services import Services
from bot.store import StagingRecord
from handlers import plan


def removed_by_decision(record: StagingRecord, pr: PullRequest) -> bool:
    """The request is open and a person (or a rule like retention) removed its staging."""
    return (
        pr.open
        and record.get(plan.DECISION) == plan.DESTROY
        and record.get(plan.DECISION_SHA) == pr.head_sha
    )


async def before_teardown(svc: Services, record: StagingRecord, pr: PullRequest) -> None:
    """Keep the decision first (never remove what a wipe could bring back); or, the request
    being closed, forget one kept before. Raises TemporaryError when it cannot be kept."""
    if removed_by_decision(record, pr):
        if record.get(KEPT) == pr.head_sha:
            return
        decision = Decision(
            key=record.key,
            sha=pr.head_sha,
            by=record.get(plan.DECISION_BY),
            at=svc.clock(),
            reason=record.get(plan.DECISION_REASON),  # why, when no person decided
            repo=pr.repo.full_name,
        )
        await svc.provisioner.remember_decision(svc.config.kubernetes.instance, decision)
        await svc.store.update(record.key, {KEPT: pr.head_sha})
    elif not pr.open:
        await forget(svc, record)


async def forget(svc: Services, record: StagingRecord) -> None:
    """The staging is asked for again (or its request closed): drop the kept decision."""
    if record.get(KEPT):
        await svc.provisioner.forget_decision(svc.config.kubernetes.instance, record.key)
        await svc.store.clear(record.key, [KEPT])
