"""What the sweep repairs, from what the cluster runs, the hosts have open and Redis holds (pure).

Every repair is a record written (created, rebuilt from the cluster, or given the desired
state a lost webhook would have written) and the staging's reconcile job queued. Nothing
here deletes: a staging whose request is not in the open list is only queued, and the
reconcile job asks the host about that one request before it tears anything down.

A partial record (`StagingRecord.partial`: what a job wrote after Redis was wiped under it)
counts as missing: it is rebuilt from the cluster, or created, keeping only the ids of what
the bot wrote on the request (`KEPT`). A rebuilt staging that should run is `deploying`:
the namespace says which commit was applied, not whether its rollout finished, so the
reconcile job looks (as after an apply) and says `running` only once it is ready.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from bot import sealed, sweep_checks
from bot.config import Config, Rules
from bot.model import ClusterStaging, Phase, PullRequest, StagingKey
from bot.provision.decisions import Decision
from bot.store import StagingRecord
from handlers import plan as staging_plan
from handlers.plan import Want
from handlers.pull_request import request_fields

CREATE = "create"  # a record for an open request with neither staging nor record
REBUILD = "rebuild"  # a record rebuilt from the cluster (Redis lost it)
REFRESH = "refresh"  # the desired state a lost webhook would have written
ENQUEUE = "enqueue"  # the record differs from what it should be, or the request may be closed
EVENT = "sweep"  # `last_event` of what the sweep writes; its history entries say "automatic"
IN_FLIGHT = (Phase.PENDING, Phase.DEPLOYING, Phase.DESTROYING)
EMPTY: Mapping[StagingKey, Decision] = {}
# What a rebuild keeps of a partial record: the ids of the check run, comment and
# deployment on the request (edited, not written again) and what they last said. Not the
# lists of `handlers.written` (begun after the wipe, they may miss earlier commits), nor
# anything about the staging itself: that comes from the cluster.
KEPT = (
    "check_id",
    "check_sha",
    "check_state",
    "comment_id",
    "deployment_id",
    "deployment_sha",
    "reported",
    "installation_id",
)


@dataclass(frozen=True)
class Action:
    kind: str
    key: StagingKey
    why: str
    fields: Mapping[str, str] = field(default_factory=dict)  # written before the enqueue


@dataclass(frozen=True)
class Listing:
    """One served repository's open requests, or why they could not be read."""

    host: str
    repo: str
    pulls: tuple[PullRequest, ...] = ()
    error: str = ""
    gone: bool = False  # the host says the repository is gone (404): its stagings are orphans


@dataclass(frozen=True)
class SweepReport:
    """What one sweep found and did; `lines()` says it in words."""

    stagings: tuple[ClusterStaging, ...] = ()
    listings: tuple[Listing, ...] = ()
    actions: tuple[Action, ...] = ()
    orphans: tuple[ClusterStaging, ...] = ()  # repository not served: reported, kept
    skipped: tuple[StagingKey, ...] = ()  # their repository's list failed: left alone
    error: str = ""  # the cluster could not be listed: nothing was done
    queued: frozenset[StagingKey] = frozenset()  # actions whose job was queued (not already)
    health_error: str = ""  # the workloads' health could not be read: none changed
    decisions_error: str = ""  # kept decisions unreadable: no record created or rebuilt
    deleted: tuple[ClusterStaging, ...] = ()  # orphans deleted (sweep.delete_orphans)
    timers: tuple[str, ...] = ()  # what the timers pass did (bot.timers), in words

    @property
    def failed(self) -> bool:
        return (
            bool(self.error or self.health_error or self.decisions_error)
            or any(listing.error for listing in self.listings)
        )

    def lines(self) -> list[str]:
        if self.error:
            return [f"sweep failed, nothing changed: {self.error}"]
        terminating = sum(s.terminating for s in self.stagings)
        archived = sum(s.archived for s in self.stagings)
        out = [
            f"cluster: {len(self.stagings)} stagings "
            f"({terminating} terminating, {archived} archived)"
        ]
        for listing in self.listings:
            where = f"{listing.host} {listing.repo}"
            if listing.error:
                out.append(
                    f"{where}: cannot list open requests, its stagings left alone: {listing.error}"
                )
            else:
                out.append(f"{where}: {len(listing.pulls)} open requests")
        for action in self.actions:
            state = "queued" if action.key in self.queued else "already queued"
            out.append(f"{action.kind} {action.key}: {action.why} ({state})")
        if self.health_error:
            out.append(f"cannot read the stagings' health, none changed: {self.health_error}")
        if self.decisions_error:
            out.append(
                "cannot read the decisions kept outside Redis, no record created or "
                f"rebuilt: {self.decisions_error}"
            )
        for orphan in self.orphans:
            fate = "deleted" if orphan in self.deleted else "kept"
            out.append(
                f"orphan {orphan.namespace} ({orphan.key.host} {orphan.repo or '?'} "
                f"#{orphan.key.number}): repository not served, {fate}"
            )
        out.extend(self.timers)
        out.append(
            f"done: {len(self.actions)} to reconcile ({len(self.queued)} queued), "
            f"{len(self.skipped)} left alone, {len(self.orphans)} orphans"
        )
        return out


def plan(
    cluster: Iterable[ClusterStaging],
    listings: Iterable[Listing],
    records: Mapping[StagingKey, StagingRecord],
    config: Config,
    now: float,
    decisions: Mapping[StagingKey, Decision] | None = EMPTY,
    unhealthy: Mapping[StagingKey, str] | None = None,
    looked_at: frozenset[StagingKey] = frozenset(),
) -> SweepReport:
    """What to repair, from what the cluster runs, the hosts have open and Redis holds.

    `decisions`: those kept outside Redis (None: unreadable, so no record is created or
    rebuilt). `unhealthy`: why stagings in `looked_at` are unavailable (None: not read).
    """
    stagings = {staging.key: staging for staging in cluster}
    listings = tuple(listings)
    by_name = {(item.host, item.repo.lower()): item for item in listings}
    by_id = {(p.repo.host, p.repo.id): item for item in listings for p in item.pulls}
    pulls = {
        StagingKey(p.repo.host, p.repo.id, p.number): p for item in listings for p in item.pulls
    }
    actions: list[Action] = []
    orphans: list[ClusterStaging] = []
    skipped: list[StagingKey] = []
    for key in sorted({*stagings, *records, *pulls}):
        staging, record, pr = stagings.get(key), records.get(key), pulls.get(key)
        name = pr.repo.full_name if pr else (record.get("repo") if record else "")
        name = name or (staging.repo if staging else "")
        entry = config.repo(key.host, name)
        listing = by_id.get((key.host, key.repo_id)) or (
            by_name.get((entry.host, entry.repo.lower())) if entry else None
        )
        if listing is None:
            if staging is not None:
                orphans.append(staging)
            continue
        if listing.error:
            if listing.gone and staging is not None:
                orphans.append(staging)
            elif not listing.gone:
                skipped.append(key)
            continue
        rules = config.rules(entry or config.repo(key.host, listing.repo))
        secret_key = config.staging.secret_key.reveal()
        deadline = now + config.kubernetes.rollout_deadline
        action = decide(key, staging, record, pr, rules, now, secret_key, deadline=deadline)
        if action is not None and action.kind in sweep_checks.REBUILDING:
            if decisions is None:
                skipped.append(key)
                continue
            action = _with_decision(action, decisions.get(key), pr, staging)
        if action is None:
            seen = sweep_checks.seen_health(key, unhealthy, looked_at)
            change = sweep_checks.health_change(record, seen)
            if change is not None:
                action = Action(sweep_checks.HEALTH, key, change[0], change[1])
        if action is not None:
            actions.append(action)
    return SweepReport(
        tuple(stagings.values()), listings, tuple(actions), tuple(orphans), tuple(skipped)
    )


def _with_decision(
    action: Action,
    decision: Decision | None,
    pr: PullRequest | None,
    staging: ClusterStaging | None,
) -> Action:
    """A created or rebuilt record carries the decision kept outside Redis."""
    if decision is None:
        return action
    fields = {**action.fields, **sweep_checks.decision_fields(decision, pr, staging)}
    if sweep_checks.stays_gone(decision, pr):
        by = f" by @{decision.by}" if decision.by else ""
        why = f"{action.why}; removed{by} (decision kept outside Redis): stays gone"
    else:
        why = f"{action.why}; removed earlier, asked for again since (a push)"
    return replace(action, why=why, fields=fields)


def decide(
    key: StagingKey,
    staging: ClusterStaging | None,
    record: StagingRecord | None,
    pr: PullRequest | None,
    rules: Rules,
    now: float,
    secret_key: str = "",
    *,
    deadline: float,
) -> Action | None:
    """The repair one staging needs, if any; `pr` is None when it is not in the open list.

    `deadline`: when the rollout of a rebuilt staging counts as failed if not ready.
    """
    if record is None or record.partial:
        lost = "not in Redis" if record is None else "only a partial record (Redis wiped mid-job)"
        if staging is not None:
            fields = rebuilt_fields(staging, pr, rules, now, secret_key, deadline=deadline)
            return Action(REBUILD, key, f"{lost}: record rebuilt from the cluster", fields)
        if pr is None:
            return None  # nothing to rebuild it from, nothing asks for it
        no_record = "no record" if record is None else "only a partial record"
        why = f"open, with no staging and {no_record}"
        return Action(CREATE, key, why, opened_fields(pr, now))
    if pr is None:
        gone = _phase(record) is Phase.GONE
        if gone and (staging is None or staging.terminating):
            return None
        return Action(ENQUEUE, key, "not among the open requests: reconcile asks the host")
    if pr.head_sha != record.get("desired_sha"):
        why = f"head is {pr.head_sha[:7]}, Redis knew {record.get('desired_sha')[:7] or 'none'}"
        return Action(REFRESH, key, why, opened_fields(pr, now))
    why = differs(record, staging_plan.decide(pr, rules, record))
    return Action(ENQUEUE, key, why) if why else None


def differs(record: StagingRecord, wanted: staging_plan.Plan) -> str:
    """Why the recorded state is not what the plan asks for; "" when it is."""
    phase = _phase(record)
    if record.generation > (record.number("handled") or 0):
        return "an event was not handled yet"
    if phase in IN_FLIGHT:
        return f"{phase.value}: its job may have been lost"
    if wanted.want is Want.NONE:
        return "" if phase is Phase.GONE else f"should have no staging: {wanted.reason}"
    if wanted.awaiting_approval:
        return "" if phase is Phase.AWAITING_APPROVAL else "should wait for approval"
    if wanted.want is Want.ARCHIVED:
        return "" if phase is Phase.ARCHIVED else "should be archived"
    if phase is Phase.QUEUED:
        return ""  # waits for a slot: freeing one wakes it, and so does the timers pass
    sha = wanted.sha[:7]
    if phase in (Phase.GONE, Phase.ARCHIVED, Phase.AWAITING_APPROVAL):
        return f"{phase.value}, should run {sha}"
    if staging_plan.last_applied(record) == staging_plan.applied_signature(wanted.sha, record):
        return ""
    if phase in (Phase.WAITING_FOR_BUILD, Phase.BUILD_FAILED):
        # A backstop for a build event that was lost: the job asks the host again.
        return f"{phase.value} of {sha}: the build is checked again"
    if phase is Phase.FAILED and record.get("reported").startswith(f"failed|{wanted.sha}|"):
        return ""  # failed at this very commit, and said so: a push or a command retries
    return f"should run {sha}, runs {record.get('sha')[:7] or 'nothing'}"


def opened_fields(pr: PullRequest, now: float) -> dict[str, str]:
    """The desired state an `opened` (or `synchronize`) event writes: see handlers/pull_request."""
    return {
        "host": pr.repo.host,
        "repo_id": str(pr.repo.id),
        "repo": pr.repo.full_name,
        "number": str(pr.number),
        "last_event": EVENT,
        "last_sender": "",
        "event_at": f"{now:.3f}",
        "desired": "running",
        "desired_sha": pr.head_sha,
        "branch": pr.branch,
        "title": pr.title,
        "author": pr.author,
        "pr_url": pr.url,
        **request_fields(pr.labels, pr.draft, pr.fork),
    }


def rebuilt_fields(
    staging: ClusterStaging,
    pr: PullRequest | None,
    rules: Rules,
    now: float,
    secret_key: str = "",
    *,
    deadline: float,
) -> dict[str, str]:
    """A record that says what the cluster runs, so that nothing is applied again for it.

    What people decided is read back from the staging as far as it shows: archived stays
    archived at its commit, a fork's running commit was approved, and a staging the rules
    would not give (say, a draft) exists because someone asked for it. One that should run
    is `deploying` until its job sees the rollout ready, by `deadline`.
    """
    key = staging.key
    fields = {
        **(opened_fields(pr, now) if pr else {}),
        "host": key.host,
        "repo_id": str(key.repo_id),
        "repo": pr.repo.full_name if pr else staging.repo,
        "number": str(key.number),
        "last_event": EVENT,
        "event_at": f"{now:.3f}",
        "namespace": staging.namespace,
        "sha": staging.sha,
        "staging_url": staging.url,
        "phase": _rebuilt_phase(staging).value,
    }
    if _rebuilt_phase(staging) is Phase.DEPLOYING:
        fields["deadline"] = f"{deadline:.3f}"
    if staging.overrides:
        fields[staging_plan.OVERRIDES] = staging_plan.encode_overrides(staging.overrides)
    if staging.secret_overrides and secret_key:  # from the staging's Secret, sealed again
        values = staging.secret_overrides
        sealed_values = {key: sealed.seal(secret_key, key, values[key]) for key in values}
        fields[staging_plan.SECRET_OVERRIDES] = sealed.encode(sealed_values)
    if staging.archived:
        fields.update({staging_plan.DECISION: staging_plan.ARCHIVE})
        fields[staging_plan.DECISION_SHA] = staging.sha
    if pr is not None and pr.fork:
        fields[staging_plan.APPROVED_SHA] = staging.sha
    if pr is not None and not staging.terminating and staging_plan.skip_reason(pr, rules):
        fields[staging_plan.FORCED] = "1"
    fields[staging_plan.APPLIED] = staging_plan.applied_signature(
        staging.sha, StagingRecord(key, fields)
    )
    return fields


def _rebuilt_phase(staging: ClusterStaging) -> Phase:
    """The namespace shows the commit applied, not whether its rollout finished: a staging
    that should run is `deploying`, and its reconcile job follows the rollout."""
    if staging.terminating:
        return Phase.DESTROYING
    return Phase.ARCHIVED if staging.archived else Phase.DEPLOYING


def _phase(record: StagingRecord) -> Phase:
    try:
        return Phase(record.get("phase") or Phase.PENDING.value)
    except ValueError:
        return Phase.PENDING
