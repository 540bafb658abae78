"""The reconcile job: drive one staging toward what its request wants, and report on it.

One arq job per staging (job id from the staging key). It reads the latest desired state,
asks the Git host for the request's current state and head, acts, reports, and goes round
again if an event bumped the generation meanwhile. A rollout is not waited for in the job:
it records `deploying` and asks arq to run it again after the poll interval.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

from arq import Retry

from bot import report
from bot.errors import PermanentError, TemporaryError
from bot.hosts.base import GitHost
from bot.model import DeployState, Phase, PullRequest, RepoRef, StagingKey, Target
from bot.services import Services
from bot.store import StagingRecord
from bot.targets import build_target

log = logging.getLogger("stagingbot.reconcile")

MAX_ROUNDS = 20
MAX_BACKOFF = 300.0
DESTROY_POLL = 1.0

DEPLOY_STATES = {
    Phase.PENDING: DeployState.IN_PROGRESS,
    Phase.DEPLOYING: DeployState.IN_PROGRESS,
    Phase.RUNNING: DeployState.SUCCESS,
    Phase.FAILED: DeployState.FAILURE,
    Phase.GONE: DeployState.INACTIVE,
}


@dataclass(frozen=True)
class Outcome:
    summary: str
    recheck_in: float | None = None


@dataclass(frozen=True)
class Work:
    """One round's inputs: the stored record, the host's truth, and the target built from them."""

    svc: Services
    record: StagingRecord
    host: GitHost
    pr: PullRequest
    target: Target

    @property
    def phase(self) -> Phase:
        return Phase(self.record.get("phase") or Phase.PENDING.value)


async def reconcile(ctx: dict[str, Any], key_text: str) -> str:
    """arq entry point: converge until the generation stops moving."""
    svc: Services = ctx["services"]
    key = StagingKey.parse(key_text)
    for _ in range(MAX_ROUNDS):
        record = await svc.store.load(key)
        if record is None:
            return "unknown staging"
        try:
            outcome = await converge(svc, record)
        except TemporaryError as exc:
            raise Retry(defer=await _backoff(svc, record, exc)) from exc
        await svc.store.update(key, {"handled": record.generation, "attempts": 0})
        if await svc.store.generation(key) != record.generation:
            continue
        if outcome.recheck_in is not None:
            raise Retry(defer=outcome.recheck_in)
        return outcome.summary
    raise Retry(defer=1.0)  # events keep arriving: yield the slot, come back at once


async def converge(svc: Services, record: StagingRecord) -> Outcome:
    """One round: read the truth, then deploy, follow the rollout, tear down, or do nothing."""
    key = record.key
    host = svc.hosts.get(key.host)
    repo_config = svc.config.repo(key.host, record.get("repo"))
    if host is None or repo_config is None:
        return Outcome(f"{record.get('repo')} is not served by this bot")
    repo = RepoRef(key.host, key.repo_id, record.get("repo"))
    try:
        pr = await host.get_pull(repo, key.number)
        target = build_target(svc.config, repo_config, key, pr, record.get("redeploy_token"))
    except PermanentError as exc:
        log.warning("cannot reconcile %s: %s", key, exc.reason)
        await svc.store.update(key, {"reason": exc.reason})
        return Outcome(f"error: {exc.reason}")
    work = Work(svc, record, host, pr, target)
    if not pr.open:
        return await teardown(work)
    if record.get("sha") != pr.head_sha or work.phase in (Phase.PENDING, Phase.GONE):
        return await deploy(work)
    if work.phase in (Phase.DEPLOYING, Phase.DESTROYING):
        return await follow(work)
    return Outcome(f"{work.phase.value} at {pr.head_sha[:7]}, nothing to do")


async def deploy(work: Work) -> Outcome:
    """Report that the staging is coming, apply it, and come back to follow the rollout."""
    svc, pr, target = work.svc, work.pr, work.target
    now = svc.clock()
    creating = work.phase in (Phase.PENDING, Phase.GONE)
    await _report(work, Phase.PENDING if creating else Phase.DEPLOYING, "")
    try:
        await svc.provisioner.apply(target)
    except PermanentError as exc:
        return await _finish(work, Phase.FAILED, exc.reason)
    await svc.store.update(
        work.record.key,
        {
            "phase": Phase.DEPLOYING.value,
            "sha": pr.head_sha,
            "deadline": now + svc.config.kubernetes.rollout_deadline,
            "namespace": target.namespace,
            "staging_url": target.url,
            "reason": "",
        },
    )
    await _history(work, "deploy", "applied", "")
    return Outcome(f"applied {pr.head_sha[:7]}", recheck_in=svc.config.kubernetes.rollout_poll)


async def follow(work: Work) -> Outcome:
    """Look at the rollout: running, failed with a reason, past its deadline, or not yet."""
    svc = work.svc
    if work.phase is Phase.DESTROYING:
        return await teardown(work)
    rollout = await svc.provisioner.status(work.target)
    if rollout.ready:
        return await _finish(work, Phase.RUNNING, "")
    if rollout.failed:
        return await _finish(work, Phase.FAILED, rollout.reason)
    deadline = float(work.record.get("deadline") or 0)
    if svc.clock() > deadline:
        limit = _duration(svc.config.kubernetes.rollout_deadline)
        reason = f"deadline exceeded: not available after {limit}"
        return await _finish(
            work, Phase.FAILED, f"{reason}; {rollout.reason}" if rollout.reason else reason
        )
    return Outcome(rollout.reason or "rolling out", recheck_in=svc.config.kubernetes.rollout_poll)


async def teardown(work: Work) -> Outcome:
    """The request is closed: delete the namespace, then say the staging is gone."""
    if work.phase is Phase.GONE:
        return Outcome("gone")
    done = await work.svc.provisioner.destroy(work.target)
    if not done:
        if work.phase is not Phase.DESTROYING:
            await work.svc.store.update(work.record.key, {"phase": Phase.DESTROYING.value})
            await _history(work, "destroy", "started", "")
        return Outcome("namespace terminating", recheck_in=DESTROY_POLL)
    return await _finish(work, Phase.GONE, "")


async def _finish(work: Work, phase: Phase, reason: str) -> Outcome:
    await work.svc.store.update(work.record.key, {"phase": phase.value, "reason": reason})
    await _report(work, phase, reason)
    await _history(work, phase.value, "failure" if phase is Phase.FAILED else "ok", reason)
    log.info("staging %s %s", work.record.key, phase.value, extra={"reason": reason})
    return Outcome(f"{phase.value}{': ' + reason if reason else ''}")


async def _report(work: Work, phase: Phase, reason: str) -> None:
    """Check run (or status), sticky comment, deployment; ids stored at once so a retry edits."""
    svc, pr, host = work.svc, work.pr, work.host
    # Re-read: an earlier report in this round may have stored the ids to edit.
    record = await svc.store.load(work.record.key) or work.record
    key, repo, sha = record.key, pr.repo, _reported_sha(work, phase)
    # A retried job (say, while the cluster is down) must not rewrite the same report.
    signature = f"{phase.value}|{sha}|{reason}|{work.target.url}"
    if record.get("reported") == signature:
        return
    view = report.View(phase, sha, work.target.url, reason, svc.clock(), work.target.namespace)
    check = report.check(view)
    same_commit = record.get("check_sha") == sha
    # A staging removed after it ran keeps its green check; only one still in progress ends.
    if phase is not Phase.GONE or (same_commit and record.get("check_state") == "in_progress"):
        known = record.number("check_id") if same_commit else None
        check_id = await host.report_check(repo, sha, check, known)
        fields: dict[str, str | int] = {"check_sha": sha, "check_state": check.state.value}
        if check_id is not None:
            fields["check_id"] = check_id
        await svc.store.update(key, fields)
    comment_id = await host.upsert_comment(
        repo, pr.number, report.comment(view), record.number("comment_id")
    )
    await svc.store.update(key, {"comment_id": comment_id})
    known = record.number("deployment_id") if record.get("deployment_sha") == sha else None
    if phase is Phase.GONE and known is None:
        await svc.store.update(key, {"reported": signature})
        return  # nothing was ever deployed for GitHub to mark inactive
    environment = f"{svc.config.staging.environment_prefix}{pr.number}"
    description = report.CHECK_TITLES[phase] + (f": {reason}" if reason else "")
    url = work.target.url if phase is not Phase.GONE else ""
    deployment_id = await host.report_deployment(
        repo, environment, sha, DEPLOY_STATES[phase], url, description[:140], known
    )
    await svc.store.update(
        key, {"deployment_sha": sha, "deployment_id": deployment_id, "reported": signature}
    )


def _reported_sha(work: Work, phase: Phase) -> str:
    """A torn-down staging is reported on the commit it ran, not the request's last head."""
    if phase is Phase.GONE:
        return work.record.get("sha") or work.pr.head_sha
    return work.pr.head_sha


async def _history(work: Work, action: str, result: str, reason: str) -> None:
    record = work.record
    entry = {
        "at": round(work.svc.clock(), 3),
        "action": action,
        "result": result,
        "sha": work.pr.head_sha,
        "event": record.get("last_event"),
        "by": record.get("last_sender") or "automatic",
        "reason": reason[:500],
    }
    await work.svc.store.add_history(record.key, entry)


async def _backoff(svc: Services, record: StagingRecord, exc: TemporaryError) -> float:
    """Exponential backoff with jitter, never sooner than the server's Retry-After."""
    attempts = (record.number("attempts") or 0) + 1
    await svc.store.update(record.key, {"attempts": attempts, "reason": exc.reason})
    delay = min(MAX_BACKOFF, 2.0 ** min(attempts, 10)) * random.uniform(0.5, 1.0)  # noqa: S311
    delay = max(delay, exc.delay or 0.0)
    log.warning("temporary error on %s, retry in %.1fs: %s", record.key, delay, exc.reason)
    return delay


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"
