"""The reconcile job: drive one staging toward what its request wants, and report on it.

One arq job per staging (job id from the staging key). It reads the latest desired state,
asks the Git host for the request's current state and head, acts, reports, and goes round
again if an event bumped the generation meanwhile. A rollout is not waited for in the job:
it records `deploying` and asks arq to run it again after the poll interval.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from arq import Retry

from bot import lifecycle, logs, report
from bot.errors import ArchiveFailed, ArchiveRefused, ClusterError, PermanentError, TemporaryError
from bot.events import Kind
from bot.hosts.base import GitHost
from bot.model import (
    CheckReport,
    CheckState,
    DeployState,
    Phase,
    PullRequest,
    RepoRef,
    StagingKey,
    Target,
)
from bot.services import Services
from bot.store import StagingRecord, stored_links
from bot.targets import build_target, environment_name
from handlers import build, health, lasting, outage, plan, pull_read, qa, upkeep, written
from handlers.comment import run_commands
from handlers.plan import Plan, Want

log = logging.getLogger("stagingbot.reconcile")
T = TypeVar("T")

MAX_ROUNDS = 20
MAX_BACKOFF = 300.0
DESTROY_POLL = 1.0
DESTROY_POLL_MAX = 30.0
# A namespace still terminating this long after the request closed (a finalizer may hold
# it for hours) is said on the request — "being removed", no link — until it is gone.
DESTROY_REPORT_AFTER = 10.0
# After a rollout failure (say, the image is not pushed yet) keep looking until the deadline:
# the kubelet keeps retrying, and a staging that comes up after all is reported green.
FAILED_RECHECK = 15.0
# Pushes in a burst (a branch rebased and pushed commit by commit, fix-ups from a bot): a
# staging that already runs a commit is updated once no push has come for this long, to
# the last one, instead of once per round the burst straddles. A push on its own waits as
# much; a request's first staging never does.
PUSH_QUIET = 0.3

DEPLOY_STATES = {
    Phase.PENDING: DeployState.IN_PROGRESS,
    Phase.DEPLOYING: DeployState.IN_PROGRESS,
    Phase.RUNNING: DeployState.SUCCESS,
    Phase.FAILED: DeployState.FAILURE,
    Phase.ARCHIVED: DeployState.INACTIVE,
    Phase.QUEUED: DeployState.INACTIVE,  # a restore waiting for a slot: still scaled to zero
    Phase.GONE: DeployState.INACTIVE,
}
# Phases that say nothing new about the commit: its check keeps what it last said.
KEEPS_CHECK = (Phase.ARCHIVED, Phase.DESTROYING, Phase.GONE)
# Phases where no staging runs at all, so the host's deployment / environment is retired.
NOT_RUNNING = (Phase.ARCHIVED, Phase.QUEUED, Phase.GONE)


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
    pr: PullRequest  # the request as the host has it, with `head_sha` the commit to run
    target: Target | None  # None when the staging cannot be built (the reason is reported)
    plan: Plan

    @property
    def phase(self) -> Phase:
        return Phase(self.record.get("phase") or Phase.PENDING.value)


async def reconcile(ctx: dict[str, Any], key_text: str) -> str:
    """arq entry point: converge until the generation stops moving."""
    svc: Services = ctx["services"]
    key = StagingKey.parse(key_text)
    for _ in range(MAX_ROUNDS):
        record = await svc.store.load(key)
        logs.bind(last_delivery=record.get("last_delivery") if record else "")
        if record is None:
            return "unknown staging"
        settling = _pushes_settling(svc, record)
        if settling:
            raise Retry(defer=settling)  # each push of the burst brings the job back at once
        try:
            outcome = await converge(svc, record)
        except TemporaryError as exc:
            raise Retry(defer=await _backoff(svc, record, exc)) from exc
        except PermanentError as exc:
            # Retrying cannot help: record why and stop, or the job would run again at once.
            log.warning("cannot reconcile %s: %s", key, exc.reason)
            await svc.store.update(key, {"reason": exc.reason})
            outcome = Outcome(f"error: {exc.reason}")
        except Retry:
            raise  # a step asking arq for a delay itself
        except Exception as exc:
            # A bug, or a library error the mapping does not know (say, a 200 whose body is
            # not what it should be). Failing the job would have `requeue_if_needed` queue
            # it again at once, every few milliseconds: back off like a temporary error.
            log.exception("unexpected error reconciling %s", key)
            problem = TemporaryError(f"internal error ({type(exc).__name__}): see the bot's log")
            raise Retry(defer=await _backoff(svc, record, problem)) from exc
        await svc.store.update(key, {"handled": record.generation, "attempts": 0})
        if await svc.store.generation(key) != record.generation:
            continue
        if outcome.recheck_in is not None:
            raise Retry(defer=outcome.recheck_in)
        return outcome.summary
    raise Retry(defer=1.0)  # events keep arriving: yield the slot, come back at once


def _pushes_settling(svc: Services, record: StagingRecord) -> float:
    """How long to wait for the pushes to a deployed staging to settle (`PUSH_QUIET`): the
    last event, not yet handled, is a push that came less than that long ago. Web and
    worker clocks may differ: an event from the future does not hold anything up."""
    if record.get("last_event") != Kind.PR_SYNCHRONIZED.value or not record.get("sha"):
        return 0.0
    if record.get("phase") in lifecycle.NOT_RUNNING:  # nothing up to update: deploy at once
        return 0.0
    if record.number("handled") == record.generation:
        return 0.0
    age = svc.clock() - float(record.get("event_at") or 0)  # stored to the millisecond
    return PUSH_QUIET - age if 0 <= age < PUSH_QUIET - 0.001 else 0.0


async def converge(svc: Services, record: StagingRecord) -> Outcome:
    """One round: read the truth and people's commands, then act toward the plan."""
    key = record.key
    host = svc.hosts.get(key.host)
    repo_config = svc.config.repo(key.host, record.get("repo"))
    if host is None or repo_config is None:
        return Outcome(f"{record.get('repo')} is not served by this bot")
    repo = RepoRef(key.host, key.repo_id, record.get("repo"), record.number("installation_id") or 0)
    pr = await pull_read.current(svc, host, repo, record)  # the host's, or kept: no event since
    if await run_commands(svc, host, pr, record):
        record = await svc.store.load(key) or record
    await upkeep.post_notice(svc, host, pr, record)  # a timer's warning or removal notice
    await qa.report(svc, host, pr, record)  # `staging/qa` follows the head: a push resets it
    wanted = plan.decide(pr, svc.config.rules(repo_config), record)
    running = replace(pr, head_sha=wanted.sha) if wanted.sha else pr
    try:
        target = build_target(
            svc.config,
            repo_config,
            key,
            running,
            record.get(plan.REDEPLOY_TOKEN),
            namespace=record.get("namespace") if record.get("phase") != Phase.GONE else "",
            overrides=plan.overrides(record.fields),
            secret_overrides=plan.secret_overrides(record.fields),
        )
    except PermanentError as exc:
        work = Work(svc, record, host, running, None, wanted)
        if wanted.want is Want.NONE or record.get("reported", "").startswith(
            f"failed|{running.head_sha}|"
        ):
            return Outcome(f"error: {exc.reason}")
        return await _finish(work, Phase.FAILED, exc.reason)
    return await _through_outage(Work(svc, record, host, running, target, wanted))


async def _through_outage(work: Work) -> Outcome:
    """`act`; once the cluster has been out of reach for a while, the request is told, and
    when a round reaches it again, what the staging is really doing (handlers/outage.py)."""
    svc, key, head = work.svc, work.record.key, work.pr.head_sha
    try:
        outcome = await act(work)
    except ClusterError as exc:
        record = await svc.store.load(key) or work.record  # this round may have reported
        attempts = (record.number("attempts") or 0) + 1
        if outage.due(record, head, work.plan.want is Want.RUNNING, attempts):
            reason = outage.reason(exc)
            log.warning("staging %s reported failed: %s", key, reason)
            await _report(work, Phase.FAILED, reason)
            await _history(work, Phase.FAILED.value, "failure", reason)
            await svc.store.update(key, {outage.FIELD: head})
        raise
    if work.record.get(outage.FIELD):
        await svc.store.update(key, {outage.FIELD: ""})
        record = await svc.store.load(key) or work.record
        phase = Phase(record.get("phase") or Phase.PENDING.value)
        # A round that reaches the cluster again may leave these unreported (a rollout
        # followed, an apply that finally went through): the others report themselves.
        if phase in lifecycle.UNDER_WAY:  # the round reported nothing: it still says failed
            await _report(work, phase, "")
    return outcome


async def act(work: Work) -> Outcome:
    """Tear down, wait for approval, archive, restore, deploy, follow, or only keep reporting."""
    wanted, record, phase = work.plan, work.record, work.phase
    if wanted.want is Want.NONE or wanted.awaiting_approval:
        await upkeep.free_slot(work.svc, record.key)  # removed, closed: a slot frees
    if wanted.want is Want.NONE:
        return await teardown(work)
    if wanted.awaiting_approval:
        if phase is not Phase.AWAITING_APPROVAL:
            return await _finish(work, Phase.AWAITING_APPROVAL, "")
        await _report(work, phase, "")
        return Outcome("awaiting approval")
    if wanted.want is Want.ARCHIVED:
        return await archive(work)
    changed = plan.last_applied(record) != plan.applied_signature(wanted.sha, record)
    if changed or phase in (
        Phase.PENDING,
        Phase.AWAITING_APPROVAL,
        Phase.ARCHIVED,
        Phase.GONE,
        Phase.DESTROYING,  # reopened while the namespace terminates: apply waits for it
        *build.NOT_BUILT,  # a push back to the running commit ends the wait
        Phase.QUEUED,
    ):
        assert work.target is not None
        held = await build.hold(work.svc, work.host, work.pr, work.target, record)
        if held is not None:
            return await _hold(work, held)
        if position := await upkeep.take_slot(work.svc, record):
            return await wait_in_queue(work, position)
        return await deploy(work)
    if phase is Phase.DEPLOYING or _still_hopeful(work):
        return await follow(work)
    if health.needs_look(phase, record):
        return await look_at_health(work)
    # Nothing to build, but the comment may have news (a fork's unapproved push).
    await _report(work, phase, record.get("reason"))
    return Outcome(f"{phase.value} at {wanted.sha[:7]}, nothing to do")


async def _hold(work: Work, held: build.Held) -> Outcome:
    """The head's build is not ready, or failed: say so; what ran before keeps running."""
    await _supersede(work)
    if work.phase is not held.phase or work.record.get("reason") != held.reason:
        outcome = await _finish(work, held.phase, held.reason)
    else:
        await _report(work, held.phase, held.reason)
        outcome = Outcome(held.reason)
    return replace(outcome, recheck_in=held.recheck_in)


def _still_hopeful(work: Work) -> bool:
    """A rollout that failed before its deadline may still come up (an image pushed late)."""
    record = work.record
    deadline = float(record.get("deadline") or 0)
    return (
        work.phase is Phase.FAILED
        and record.get("failure") == "rollout"
        and work.svc.clock() < deadline
    )


async def deploy(work: Work) -> Outcome:
    """Report that the staging is coming, apply it, and come back to follow the rollout."""
    svc, pr, target, record = work.svc, work.pr, work.target, work.record
    assert target is not None
    now = svc.clock()
    # Before a wait for the build or for a slot, if there was one.
    was = upkeep.phase_before_queue(record, build.effective_phase(record))
    creating = was in (Phase.PENDING, Phase.AWAITING_APPROVAL, Phase.GONE, Phase.DESTROYING)
    await lasting.forget(svc, record)  # asked for again: a kept "stay gone" no longer holds
    await _supersede(work)
    if not outage.reported(record, pr.head_sha):  # else it says failed until applied
        await _report(work, Phase.PENDING if creating else Phase.DEPLOYING, "")
    built = bool(record.get("sha")) and not creating  # the command provisioner's update
    try:
        # A failed archive may have left some workloads scaled to zero: bring them back.
        if was is Phase.ARCHIVED or record.get(lifecycle.ARCHIVE_PARTLY):
            await svc.provisioner.restore(target)
        await svc.provisioner.apply(replace(target, built=built))
    except PermanentError as exc:
        return await _finish(work, Phase.FAILED, exc.reason)
    await svc.store.update(
        record.key,
        {
            "phase": Phase.DEPLOYING.value,
            "sha": pr.head_sha,
            plan.APPLIED: plan.applied_signature(pr.head_sha, record),
            "deadline": now + svc.config.kubernetes.rollout_deadline,
            "namespace": target.namespace,
            "staging_url": target.url,
            "reason": "",
            "failure": "",
            health.FIELD: "",
            **upkeep.deployed(now),
        },
    )
    await _notify(work, Phase.DEPLOYING, "")
    await _history(work, "deploy", "applied", "")
    return Outcome(f"applied {pr.head_sha[:7]}", recheck_in=svc.config.kubernetes.rollout_poll)


async def look_at_health(work: Work) -> Outcome:
    """The sweep saw the workloads of a running staging unavailable (or a staging failed
    that way available again): look closely, and say so on the request if it changed."""
    svc, record, target = work.svc, work.record, work.target
    assert target is not None
    rollout = await svc.provisioner.status(target)
    change = health.verdict(work.phase, rollout, record.get(health.FIELD))
    if change is None:
        if work.phase is Phase.RUNNING:  # available again already: nothing to say
            await svc.store.update(record.key, {health.FIELD: ""})
        return Outcome(f"{work.phase.value}: {rollout.reason or 'nothing changed'}")
    phase, reason = change
    failure = health.FAILURE if phase is Phase.FAILED else ""
    await svc.store.update(record.key, {"failure": failure})
    return await _finish(work, phase, reason)


async def archive(work: Work) -> Outcome:
    """Scale the staging to zero, keeping its data, until a restore, deploy or push; its
    slot frees. One the provisioner refuses to archive keeps running, and its slot."""
    svc, record, target = work.svc, work.record, work.target
    assert target is not None
    if work.phase is Phase.ARCHIVED:
        await upkeep.free_slot(svc, record.key)
        await _report(work, Phase.ARCHIVED, record.get("reason"))
        return Outcome("archived")
    if not record.get("sha") or work.phase in (Phase.GONE, Phase.DESTROYING):
        await upkeep.free_slot(svc, record.key)
        return Outcome("nothing to archive")
    try:
        await svc.provisioner.archive(target)
    except ArchiveRefused as refused:  # an ArchiveFailed too: said once, not retried
        return await _archive_refused(work, refused)
    except PermanentError as exc:  # a provisioner that does not say what it left
        return await _archive_refused(work, ArchiveFailed(exc.reason, UNKNOWN_STATE))
    await upkeep.free_slot(svc, record.key)
    # Retention's start; a refusal said earlier no longer holds.
    await svc.store.update(
        record.key, {lifecycle.ARCHIVED_AT: svc.clock(), **lifecycle.NOT_REFUSED}
    )
    by, why = record.get(plan.DECISION_BY), record.get(plan.DECISION_REASON)
    reason = f"archived by @{by}" if by else (why or "archived")  # e.g. "idle for 3 days"
    return await _finish(work, Phase.ARCHIVED, reason)


# What a failed archive left, when the provisioner does not say.
UNKNOWN_STATE = "what was changed before it failed is not known: it is still taken as running"


async def _archive_refused(work: Work, refused: ArchiveRefused) -> Outcome:
    """Nothing was changed (archiving would delete data, or this provisioner cannot), or
    the archive failed for good (`ArchiveFailed`: what it left is in its words): the
    staging is not archived. Said once — history, sticky comment, and a reply to a command
    — and not tried again on every sweep: the decision is dropped, and the idle timer waits
    for its deadline to move (bot.lifecycle)."""
    svc, record = work.svc, work.record
    log.warning("staging %s %s", record.key, refused.reason)
    result = "failed" if isinstance(refused, ArchiveFailed) else "refused"
    by = record.get(plan.DECISION_BY) or "automatic"
    await _history(work, "archive", result, refused.reason, by=by)
    await upkeep.refuse_archive(svc, work.host, work.pr, record, refused)
    await _report(work, work.phase, record.get("reason"))  # the sticky comment's note
    return Outcome(refused.reason)


async def wait_in_queue(work: Work, position: int) -> Outcome:
    """Every slot is taken: the staging waits its turn, its comment shows its place."""
    fields: dict[str, str | int] = {lifecycle.QUEUE_POSITION: position}
    if work.phase is not Phase.QUEUED:
        fields[upkeep.QUEUED_FROM] = build.effective_phase(work.record).value
    await work.svc.store.update(work.record.key, fields)
    limits = upkeep.limits(work.svc, work.record)
    reason = lifecycle.queued_reason(limits, lifecycle.repo_of(work.record.key))
    if work.phase is Phase.QUEUED:
        await _report(work, Phase.QUEUED, reason)  # its place may have changed
        return Outcome(f"queued at position {position}")
    return await _finish(work, Phase.QUEUED, reason)


async def follow(work: Work) -> Outcome:
    """Look at the rollout: running, failed with a reason, past its deadline, or not yet."""
    svc, target = work.svc, work.target
    assert target is not None
    rollout = await svc.provisioner.status(target)
    if rollout.ready:
        return await _finish(work, Phase.RUNNING, "")
    deadline = float(work.record.get("deadline") or 0)
    if rollout.failed:
        await svc.store.update(work.record.key, {"failure": "rollout"})
        outcome = await _finish(work, Phase.FAILED, rollout.reason)
        hopeful = svc.clock() < deadline
        return Outcome(outcome.summary, recheck_in=FAILED_RECHECK if hopeful else None)
    if svc.clock() > deadline:
        limit = _duration(svc.config.kubernetes.rollout_deadline)
        reason = f"deadline exceeded: not available after {limit}"
        return await _finish(
            work, Phase.FAILED, f"{reason}; {rollout.reason}" if rollout.reason else reason
        )
    return Outcome(rollout.reason or "rolling out", recheck_in=svc.config.kubernetes.rollout_poll)


async def teardown(work: Work) -> Outcome:
    """The request is closed: delete the namespace, then say the staging is gone."""
    svc, record, target = work.svc, work.record, work.target
    assert target is not None
    await lasting.before_teardown(svc, record, work.pr)
    # Nothing built and nothing said: stay silent. A job killed between its first report and
    # storing the commit has said something, so the comment and check must still end.
    reported = any(record.get(field) for field in ("comment_id", "check_id", "reported"))
    if work.phase is Phase.GONE:
        if reported:  # a job killed between storing `gone` and saying it: say it now
            await _report(work, Phase.GONE, record.get("reason"))
        return Outcome("gone")
    never_deployed = work.phase is Phase.PENDING and not record.get("sha") and not reported
    done = await svc.provisioner.destroy(target)
    if not done:
        now = svc.clock()
        if work.phase is not Phase.DESTROYING:
            await svc.store.update(
                record.key, {"phase": Phase.DESTROYING.value, "destroy_started": now}
            )
            await _notify(work, Phase.DESTROYING, "")
            await _history(work, "destroy", "started", "")
        waited = now - float(record.get("destroy_started") or now)
        if waited >= DESTROY_REPORT_AFTER and reported:
            await _report(work, Phase.DESTROYING, "")  # once: the same report is not rewritten
        # A namespace held by a finalizer can terminate for hours: poll less and less often.
        return Outcome(
            "namespace terminating", recheck_in=min(DESTROY_POLL_MAX, max(DESTROY_POLL, waited / 5))
        )
    if never_deployed:  # nothing was built: nothing to say on the request
        await svc.store.update(record.key, {"phase": Phase.GONE.value})
        return Outcome(f"no staging: {work.plan.reason}")
    await _end_head_check(work)
    return await _finish(work, Phase.GONE, work.plan.reason)


async def _end_head_check(work: Work) -> None:
    """Closed while the head's check, on a commit that never ran, still says in progress or
    red for a cluster out of reach: end it, or a merged commit would carry it for good (the
    gone staging is reported on the commit that ran)."""
    record = work.record
    head = record.get("check_sha")
    in_progress = record.get("check_state") == CheckState.IN_PROGRESS
    if not head or head == _reported_sha(work, Phase.GONE):
        return
    if not (in_progress or outage.reported(record, head)):
        return
    await _end_check(work, head, report.closed_before_deploy(head))


async def _end_check(work: Work, sha: str, check: CheckReport) -> None:
    """End the check run the record holds (on `sha`, not the head's report) with `check`:
    edited where GitHub allows it, else a new run (`CheckState.can_follow`)."""
    record = work.record
    editable = check.state.can_follow(record.get("check_state"))
    known = record.number("check_id") if editable else None
    written = await _tolerant(
        work.host.report_check(work.pr.repo, sha, check, known), record.key, "check"
    )
    fields: dict[str, str | int] = {"check_state": check.state.value}
    if written is not None:
        fields["check_id"] = written
    await work.svc.store.update(record.key, fields)


async def _finish(work: Work, phase: Phase, reason: str) -> Outcome:
    await work.svc.store.update(work.record.key, {"phase": phase.value, "reason": reason})
    await _report(work, phase, reason)
    await _notify(work, phase, reason)
    failed = phase in (Phase.FAILED, Phase.BUILD_FAILED)
    await _history(work, phase.value, "failure" if failed else "ok", reason)
    log.info("staging %s %s", work.record.key, phase.value, extra={"reason": reason})
    return Outcome(f"{phase.value}{': ' + reason if reason else ''}")


async def _report(work: Work, phase: Phase, reason: str) -> None:
    """Check run (or status), sticky comment, deployment; ids stored at once so a retry edits.

    A write the host refuses for good (say, the App lacks the Deployments permission) is
    logged and skipped: it must not keep the staging from being built or the others written.
    """
    svc, pr, host = work.svc, work.pr, work.host
    # Re-read: an earlier report in this round may have stored the ids to edit.
    record = await svc.store.load(work.record.key) or work.record
    key, repo, sha = record.key, pr.repo, _reported_sha(work, phase)
    url = work.target.url if work.target else ""
    # A retried job (say, while the cluster is down) must not rewrite the same report.
    signature = f"{phase.value}|{sha}|{reason}|{url}"
    namespace = work.target.namespace if work.target else ""
    shown = plan.shown_overrides(record.fields, svc.config.commands.secret_keys)
    qa_note = qa.note(svc.config, record.fields, sha)
    timers_note = upkeep.sticky_note(svc, record, phase)  # idle warning, retention, queue
    note = "\n\n".join(filter(None, (_note(work, phase), qa_note, timers_note)))
    links = stored_links(record)
    signature += f"|{note}|{shown}" + (f"|{links}" if links else "")
    if record.get("reported") == signature:
        return
    view = report.View(
        phase, sha, url, reason, svc.clock(), namespace, note, tuple(shown), pr.repo.host, links
    )
    check = report.check(view)
    same_commit = record.get("check_sha") == sha
    in_progress = same_commit and record.get("check_state") == "in_progress"
    # A staging archived or removed after it ran keeps its green check; only one still in
    # progress ends. A fork's commit awaiting approval gets no check until it is built.
    # A check red only for a cluster out of reach does not stay so on a removed staging.
    outage_red = same_commit and phase is Phase.GONE and outage.reported(record, sha)
    keeps_check = phase in KEEPS_CHECK and not (in_progress or outage_red)
    if phase is not Phase.AWAITING_APPROVAL and not keeps_check:
        known = record.number("check_id") if same_commit else None
        if known is not None and not check.state.can_follow(record.get("check_state")):
            known = None  # completed for good: the adapter starts a new run (looked up first)
        unseen = known is None and written.unseen(record, written.CHECKS, sha)
        if known is None:  # may create: say so first, or a retry could not tell
            await written.begin(svc.store, record, written.CHECKS, sha, record.get("check_sha"))
        writing = host.report_check(repo, sha, check, known, unseen=unseen)
        check_id = await _tolerant(writing, key, "check")
        fields: dict[str, str | int] = {"check_sha": sha, "check_state": check.state.value}
        if check_id is not None:
            fields["check_id"] = check_id
        await svc.store.update(key, fields)
    known_comment = record.number("comment_id")
    # A running staging updated to a new commit: its comment keeps saying what the URL
    # serves until the new commit's outcome (the check run on it says in progress).
    keeps_comment = (
        phase is Phase.DEPLOYING
        and known_comment is not None
        and record.get("reported").startswith(f"{Phase.RUNNING.value}|")
    )
    if not keeps_comment:
        body = report.comment(view, svc.config.commands.prefix)
        no_comments = known_comment is None and pr.comments == 0  # none at all: none to find
        comment = host.upsert_comment(repo, pr.number, body, known_comment, unseen=no_comments)
        comment_id = await _tolerant(comment, key, "comment")
        if comment_id is not None:
            await svc.store.update(key, {"comment_id": comment_id})
    known = record.number("deployment_id") if record.get("deployment_sha") == sha else None
    nothing_deployed = (
        phase is Phase.AWAITING_APPROVAL
        or phase in build.NOT_BUILT  # the head is not deployed: its deployment comes later
        or (phase in NOT_RUNNING and known is None)
        # The commit's deployment is created with its outcome (running or failed): until
        # then the URL still serves what ran before, and the check run says in progress.
        or (phase in lifecycle.UNDER_WAY and known is None)
    )
    if nothing_deployed or phase is Phase.DESTROYING or work.target is None:
        await svc.store.update(key, {"reported": signature})
        return  # nothing deployed for GitHub to mark inactive, or nothing to deploy
    environment = environment_name(svc.config, pr)
    description = (report.CHECK_TITLES[phase] + (f": {reason}" if reason else ""))[:140]
    state, env_url = DEPLOY_STATES[phase], url if phase not in NOT_RUNNING else ""
    unseen = known is None and written.unseen(record, written.DEPLOYMENTS, sha)
    if known is None:
        previous = record.get("deployment_sha")
        await written.begin(svc.store, record, written.DEPLOYMENTS, sha, previous)
    deployment = host.report_deployment(
        repo, environment, sha, state, env_url, description, known, unseen=unseen
    )
    fields = {"reported": signature}
    deployment_id = await _tolerant(deployment, key, "deployment")
    if deployment_id is not None:
        fields.update(deployment_sha=sha, deployment_id=deployment_id)
    await svc.store.update(key, fields)


def _note(work: Work, phase: Phase) -> str:
    """What the comment adds beyond the phase: a fork's push that waits for approval, or the
    commit that keeps running while a newer one waits for its build."""
    unapproved = work.plan.unapproved
    if not unapproved:
        if phase not in build.NOT_BUILT or work.target is None:
            return ""
        return build.still_running_note(work.record, work.target.url)
    prefix = work.svc.config.commands.prefix
    return report.AWAITING_APPROVAL_NOTE.format(sha=unapproved[:7], prefix=prefix)


async def _supersede(work: Work) -> None:
    """The head moved while the previous commit was still deploying: close its check and
    deployment, or they would stay "in progress" on that commit for ever."""
    record, pr, host = work.record, work.pr, work.host
    old = record.get("check_sha")
    if not old or old == pr.head_sha or record.get("check_state") != "in_progress":
        return
    check = report.superseded(old, pr.head_sha)
    await _end_check(work, old, check)
    deployment_id = record.number("deployment_id")
    # GitHub has a deployment per commit, to close; GitLab one environment per merge
    # request, which the new commit's report keeps using.
    per_commit = pr.repo.host == "github"
    if per_commit and deployment_id is not None and record.get("deployment_sha") == old:
        environment = environment_name(work.svc.config, pr)
        inactive = host.report_deployment(
            pr.repo, environment, old, DeployState.INACTIVE, "", check.title, deployment_id
        )
        await _tolerant(inactive, record.key, "deployment")


async def _tolerant(write: Awaitable[T], key: StagingKey, what: str) -> T | None:
    try:
        return await write
    except PermanentError as exc:
        log.warning("could not write the %s for %s: %s", what, key, exc.reason)
        return None


def _reported_sha(work: Work, phase: Phase) -> str:
    """A torn-down staging is reported on the commit it ran, not the request's last head."""
    if phase in (Phase.GONE, Phase.DESTROYING):
        return work.record.get("sha") or work.pr.head_sha
    return work.pr.head_sha


async def _history(
    work: Work, action: str, result: str, reason: str, by: str | None = None
) -> None:
    record = work.record
    entry = {
        "at": round(work.svc.clock(), 3),
        "action": action,
        "result": result,
        "sha": work.pr.head_sha,
        "event": record.get("last_event"),
        "by": by or record.get("last_sender") or "automatic",
        "reason": reason[:500],
    }
    if work.target is not None:  # what the provisioner's own programs printed meanwhile
        taken = work.svc.provisioner.take_output(work.target)
        if taken.text:
            entry["output"] = taken.text
        if taken.links is not None:
            links = [{"name": link.name, "url": link.url} for link in taken.links]
            await work.svc.store.update(record.key, {"links": json.dumps(links)})
    await work.svc.store.add_history(record.key, entry)


async def _notify(work: Work, phase: Phase, reason: str) -> None:
    """Tell the provisioner the staging changed phase (the `command` provisioner's notify)."""
    if work.target is not None and phase is not work.phase:
        await work.svc.provisioner.notify(work.target, phase, reason)


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
