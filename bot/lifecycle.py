"""Timers and quotas of a staging's life (pure): idle sleep, retention, extend, the queue.

Every timer is read off the staging's stored fields and the clock, so the sweep can ask
each record "is anything due?" without calling a host. What is due becomes desired-state
fields written like a person's command (`handlers.plan`): an idle staging is archived by
the decision `archive`, an archived one past its retention removed by the decision
`destroy` (which lasts until a push or `deploy`), and the reconcile job acts on them.

An archive the provisioner refuses (it would delete data: `bot.errors.ArchiveRefused`), or
that fails for good (`bot.errors.ArchiveFailed`: what it left is recorded too), is
recorded with the idle deadline it happened under: the idle timer neither warns nor tries
again for that deadline, only once an activity, a deploy or an extend has moved it. The
sticky comment says why until the next deploy (which applies the templates as they are
now) or an archive that goes through.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bot import errors
from bot.config import StagingConfig
from bot.model import Phase, StagingKey
from bot.report import timestamp
from handlers import plan

# Fields of the staging's record (Redis hash) kept by this module's rules.
ACTIVE_AT = "active_at"  # the last push, command, dashboard or API action (unix seconds)
DEPLOYED_AT = "deployed_at"  # the last apply: a deploy is the result of an activity
ARCHIVED_AT = "archived_at"  # when the staging was last archived: retention counts from it
EXTENDED_UNTIL = "extended_until"  # `extend`: no idle sleep or retention before this
EXTENDED_BY = "extended_by"
IDLE_WARNED = "idle_warned"  # the deadline the idle warning was given for (once per period)
NOTICE = "notice"  # a reply the reconcile job owes the request (posted once, then cleared)
NOTICE_KIND = "notice_kind"  # which timer left it (Kind), so a stale warning is dropped
QUEUE_POSITION = "queue_position"  # 1-based place in the queue for a slot
ARCHIVE_REFUSED = "archive_refused"  # why the last archive was refused ("" when it was not)
ARCHIVE_REMEDY = "archive_remedy"  # what would make the staging archivable
ARCHIVE_REFUSED_FOR = "archive_refused_for"  # the idle deadline it was refused under
# An archive that failed instead (bot.errors.ArchiveFailed): what the staging was left like
# ("" for a refusal), and "1" when some workloads stay scaled to zero (a deploy restores).
ARCHIVE_FAILED = "archive_failed"
ARCHIVE_PARTLY = "archive_partly"

EVENT_IDLE = "idle"  # `last_event` of what the timers write: the history says "automatic"
EVENT_RETENTION = "retention"

# Phases in which nothing of the staging runs or is being built, whatever its fields say.
NOT_RUNNING = (Phase.ARCHIVED, Phase.QUEUED, Phase.GONE, Phase.DESTROYING)
# Phases in which the staging is on its way somewhere: its job is at work, no timer fires.
IN_FLIGHT = (Phase.PENDING, Phase.DEPLOYING, Phase.DESTROYING)
# Phases of a commit on its way to running: applied or about to be, its outcome not known.
UNDER_WAY = (Phase.PENDING, Phase.DEPLOYING)

IDLE_REASON = "idle for {idle}"
RETENTION_REASON = "archived for {archived} (staging.archive_retention)"
WARNING_REPLY = (
    "💤 This staging has had no push, command or dashboard action for {idle}: it will be "
    "archived (scaled to zero, its data kept) at **{deadline}**. To keep it running, push a "
    "commit or comment `{prefix} extend` (or e.g. `{prefix} extend 2d`)."
)
WARNING_NOTE = (
    "💤 Idle: this staging is archived at **{deadline}** unless there is a push or "
    "`{prefix} extend [duration]`."
)
RETENTION_REPLY = (
    "🗑️ This staging was archived for {archived} and has been removed "
    "(staging.archive_retention). A push or `{prefix} deploy` creates it again."
)
RETENTION_NOTE = (
    "🗓️ Archived stagings are removed after {retention}: this one at **{deadline}** unless "
    "it is restored, pushed to or extended (`{prefix} extend [duration]`)."
)
REFUSED_NOTE = (
    "⚠️ **Not archived:** {why}. The staging keeps running, its data untouched. To archive "
    "it, {remedy}; or remove it, its data included, with `{prefix} destroy`."
)
FAILED_NOTE = (
    "⚠️ **Archive failed:** {why}. {state}. To archive it, fix the cause and ask again "
    "with `{prefix} archive`; or remove it, its data included, with `{prefix} destroy`."
)
PARTLY_NOTE = (
    "⚠️ **Archive failed part-way:** {why}. {state}. No data was deleted. Once "
    "the cause is fixed, `{prefix} archive` finishes archiving; a push, "
    "`{prefix} restore` or `{prefix} redeploy` brings it all back up."
)
QUEUED_NOTE = (
    "⏳ Position **{position}** in the queue: it is deployed as soon as a staging is "
    "archived, removed or its request closed."
)
EXTENDED_REPLY = "@{author}, the staging is kept until at least **{until}**."
NOTHING_TO_EXTEND = "there is no staging to extend"
IDLE_OFF = "idle stagings are never archived here (staging.idle_ttl = 0): nothing to extend"
RETENTION_OFF = (
    "archived stagings are never removed here (staging.archive_retention = 0): nothing to extend"
)
EXTEND_TOO_LONG = "a staging is extended by at most {limit} (staging.max_extend), not {asked}"


class Kind(enum.StrEnum):
    WARN = "warn"  # the idle warning: sticky note and one reply
    SLEEP = "sleep"  # idle for idle_ttl: archive
    RETIRE = "retire"  # archived for archive_retention: remove, with a reply


@dataclass(frozen=True)
class Due:
    """A timer that fired: the fields to write (as one transaction) and why, in words."""

    kind: Kind
    key: StagingKey
    fields: Mapping[str, str]
    why: str


@dataclass(frozen=True)
class Limits:
    """The quotas: 0 means no limit. `own`: the repositories whose `[[repos]]` entry sets
    a cap of its own (`max_active`), which replaces `per_repo` for them."""

    total: int = 0
    per_repo: int = 0
    own: Mapping[tuple[str, int], int] = field(default_factory=dict)

    def of_repo(self, repo: tuple[str, int]) -> int:
        return self.own.get(repo, self.per_repo)


@dataclass(frozen=True)
class Extension:
    """What `extend` writes, or why it writes nothing."""

    changes: dict[str, str] = field(default_factory=dict)
    refusal: str = ""
    until: float = 0.0


def phase_of(fields: Mapping[str, str]) -> Phase:
    try:
        return Phase(fields.get("phase") or Phase.PENDING.value)
    except ValueError:
        return Phase.PENDING


def number(fields: Mapping[str, str], name: str) -> float | None:
    try:
        value = float(fields.get(name) or "")
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def runs(fields: Mapping[str, str]) -> bool:
    """Something of the staging is up (or failing) in the cluster: it holds a slot."""
    return bool(fields.get("sha")) and phase_of(fields) not in NOT_RUNNING


def last_active(fields: Mapping[str, str]) -> float | None:
    """The newest of: an activity, a deploy; the last event when neither is known."""
    known = [t for t in (number(fields, ACTIVE_AT), number(fields, DEPLOYED_AT)) if t is not None]
    return max(known) if known else number(fields, "event_at")


def idle_deadline(fields: Mapping[str, str], staging: StagingConfig) -> float | None:
    """When a running staging is archived as idle; None when idle sleep is off."""
    last = last_active(fields)
    if staging.idle_ttl <= 0 or last is None:
        return None
    return max(last + staging.idle_ttl, number(fields, EXTENDED_UNTIL) or 0.0)


def retention_deadline(fields: Mapping[str, str], staging: StagingConfig) -> float | None:
    """When an archived staging is removed; None when retention is off or not yet known."""
    since = number(fields, ARCHIVED_AT)
    if staging.archive_retention <= 0 or since is None:
        return None
    return max(since + staging.archive_retention, number(fields, EXTENDED_UNTIL) or 0.0)


def _decided(fields: Mapping[str, str]) -> bool:
    """A person or a timer already decided an archive or removal for the current head."""
    decision = fields.get(plan.DECISION)
    return bool(decision) and fields.get(plan.DECISION_SHA) == fields.get("desired_sha")


def due(
    key: StagingKey, fields: Mapping[str, str], staging: StagingConfig, now: float, prefix: str
) -> Due | None:
    """The timer of this staging that fired at `now`, if any (at most one per sweep)."""
    phase = phase_of(fields)
    if fields.get("desired") == "gone" or phase in IN_FLIGHT:
        return None
    if phase is Phase.ARCHIVED:  # archived by a person or as idle: retention counts
        removing = _decided(fields) and fields.get(plan.DECISION) == plan.DESTROY
        return None if removing else _retention(key, fields, staging, now, prefix)
    if _decided(fields) or not runs(fields):
        return None
    deadline = idle_deadline(fields, staging)
    if deadline is None or refused_under(fields, deadline):
        return None  # an archive refused under this deadline is not tried (or warned) again
    idle = duration_text(now - (last_active(fields) or now))
    if now >= deadline:
        reason = IDLE_REASON.format(idle=idle)
        return Due(Kind.SLEEP, key, _decision(fields, plan.ARCHIVE, reason, EVENT_IDLE), reason)
    warned = fields.get(IDLE_WARNED) == _stamp(deadline)
    if staging.idle_warning <= 0 or warned or now < deadline - staging.idle_warning:
        return None
    text = WARNING_REPLY.format(idle=idle, deadline=timestamp(deadline), prefix=prefix)
    why = f"idle for {idle}: archived at {timestamp(deadline)}"
    fields = {IDLE_WARNED: _stamp(deadline), NOTICE: text, NOTICE_KIND: Kind.WARN.value}
    return Due(Kind.WARN, key, fields, why)


def _retention(
    key: StagingKey, fields: Mapping[str, str], staging: StagingConfig, now: float, prefix: str
) -> Due | None:
    deadline = retention_deadline(fields, staging)
    if deadline is None or now < deadline:
        return None
    archived = duration_text(now - (number(fields, ARCHIVED_AT) or now))
    reason = RETENTION_REASON.format(archived=archived)
    changes = _decision(fields, plan.DESTROY, reason, EVENT_RETENTION)
    changes[NOTICE] = RETENTION_REPLY.format(archived=archived, prefix=prefix)
    changes[NOTICE_KIND] = Kind.RETIRE.value
    changes[plan.FORCED] = ""  # like a person's destroy: a forced staging stops being forced
    return Due(Kind.RETIRE, key, changes, reason)


def _decision(fields: Mapping[str, str], decision: str, reason: str, event: str) -> dict[str, str]:
    """A decision taken by no one: the history says "automatic" and gives the reason."""
    return {
        plan.DECISION: decision,
        plan.DECISION_SHA: fields.get("desired_sha", ""),
        plan.DECISION_BY: "",
        plan.DECISION_REASON: reason,
        plan.DECISION_VIA: "",
        "last_event": event,
        "last_sender": "",
    }


def refused_under(fields: Mapping[str, str], deadline: float) -> bool:
    """An archive was refused while the idle deadline was `deadline`."""
    return fields.get(ARCHIVE_REFUSED_FOR) == _stamp(deadline)


def archive_refused(
    fields: Mapping[str, str],
    staging: StagingConfig,
    why: str,
    remedy: str,
    failed: str = "",
    partly: bool = False,
) -> dict[str, str]:
    """What a refused archive records: why, what would help, and the idle deadline it came
    under (the idle timer does not try again before that deadline moves). A failed one
    records what the staging was left like (`failed`) instead of a remedy."""
    deadline = idle_deadline(fields, staging)
    return {
        ARCHIVE_REFUSED: why,
        ARCHIVE_REMEDY: remedy,
        ARCHIVE_REFUSED_FOR: "" if deadline is None else _stamp(deadline),
        ARCHIVE_FAILED: failed,
        ARCHIVE_PARTLY: "1" if partly else "",
    }


# Written by a deploy and by an archive that went through: the refusal no longer holds.
NOT_REFUSED = {ARCHIVE_REFUSED: "", ARCHIVE_REMEDY: "", ARCHIVE_FAILED: "", ARCHIVE_PARTLY: ""}


def refused_reason(fields: Mapping[str, str]) -> str:
    """The refusal the sticky comment shows, in one line (the API's and dashboard's Why)."""
    why = fields.get(ARCHIVE_REFUSED)
    if not why:
        return ""
    if fields.get(ARCHIVE_FAILED):
        return errors.failed_reason(why, fields[ARCHIVE_FAILED])
    return errors.refused_reason(why, fields.get(ARCHIVE_REMEDY, ""))


def _refused_note(fields: Mapping[str, str], prefix: str) -> str:
    why, state = fields[ARCHIVE_REFUSED], fields.get(ARCHIVE_FAILED, "")
    if not state:
        remedy = fields.get(ARCHIVE_REMEDY, "")
        return REFUSED_NOTE.format(why=why, remedy=remedy, prefix=prefix)
    note = PARTLY_NOTE if fields.get(ARCHIVE_PARTLY) else FAILED_NOTE
    return note.format(why=why, state=state[:1].upper() + state[1:], prefix=prefix)


def notice_stale(fields: Mapping[str, str], staging: StagingConfig) -> bool:
    """An idle warning that no longer holds (a push or an extend came before it was
    posted): saying it would be wrong."""
    if fields.get(NOTICE_KIND) != Kind.WARN.value:
        return False
    deadline = idle_deadline(fields, staging)
    return deadline is None or fields.get(IDLE_WARNED) != _stamp(deadline) or not runs(fields)


def still_due(before: Due, fields: Mapping[str, str], staging: StagingConfig, now: float) -> bool:
    """The same timer fires on the record as read again (no activity came in between)."""
    again = due(before.key, fields, staging, now, "")
    return again is not None and again.kind is before.kind


def extend(
    fields: Mapping[str, str], staging: StagingConfig, now: float, seconds: float | None, by: str
) -> Extension:
    """`extend [duration]`: no idle sleep (or, archived, no removal) before now + duration.

    The default is a whole idle period (archived: a whole retention period), at most
    `staging.max_extend`. It never brings a deadline forward, and is not an activity
    itself: `extend 12h` on a staging that would sleep in two days changes nothing.
    """
    archived = phase_of(fields) is Phase.ARCHIVED
    if not archived and not runs(fields):
        return Extension(refusal=NOTHING_TO_EXTEND)
    period = staging.archive_retention if archived else staging.idle_ttl
    if period <= 0:
        return Extension(refusal=RETENTION_OFF if archived else IDLE_OFF)
    if seconds is None:
        seconds = min(period, staging.max_extend)
    if seconds > staging.max_extend:
        limit, asked = duration_text(staging.max_extend), duration_text(seconds)
        return Extension(refusal=EXTEND_TOO_LONG.format(limit=limit, asked=asked))
    current = retention_deadline(fields, staging) if archived else idle_deadline(fields, staging)
    until = float(_stamp(max(now + seconds, current or 0.0)))
    return Extension({EXTENDED_UNTIL: _stamp(until), EXTENDED_BY: by}, until=until)


def sticky_note(
    fields: Mapping[str, str], phase: Phase, staging: StagingConfig, prefix: str
) -> str:
    """What the sticky comment adds for the timers, the queue and a refused archive, in
    `phase` (what the comment is about to say, maybe not stored yet); "" when nothing."""
    if phase is Phase.QUEUED:
        position = int(number(fields, QUEUE_POSITION) or 0)
        return QUEUED_NOTE.format(position=position) if position else ""
    if phase is Phase.ARCHIVED:
        deadline = retention_deadline(fields, staging)
        if deadline is None:
            return ""
        retention = duration_text(staging.archive_retention)
        return RETENTION_NOTE.format(
            retention=retention, deadline=timestamp(deadline), prefix=prefix
        )
    deadline = idle_deadline(fields, staging)
    up = phase not in NOT_RUNNING and phase not in IN_FLIGHT and bool(fields.get("sha"))
    notes = []
    if up and fields.get(ARCHIVE_REFUSED):
        notes.append(_refused_note(fields, prefix))
    warned = deadline is not None and fields.get(IDLE_WARNED) == _stamp(deadline)
    # Refused under this deadline: not archived then, so nothing to warn about.
    if up and warned and deadline is not None and not refused_under(fields, deadline):
        notes.append(WARNING_NOTE.format(deadline=timestamp(deadline), prefix=prefix))
    return "\n\n".join(notes)


def timers_view(fields: Mapping[str, str], staging: StagingConfig) -> dict[str, float | int | None]:
    """What the API and dashboard show of the timers: when the staging sleeps as idle, when
    retention removes it, and its place in the queue (None where it does not apply)."""
    phase = phase_of(fields)
    up = runs(fields) and phase not in IN_FLIGHT
    position = int(number(fields, QUEUE_POSITION) or 0) if phase is Phase.QUEUED else 0
    removal = retention_deadline(fields, staging) if phase is Phase.ARCHIVED else None
    idle_until = idle_deadline(fields, staging) if up else None
    if idle_until is not None and refused_under(fields, idle_until):
        idle_until = None  # its archive was refused: it does not sleep at that deadline
    return {
        "idle_until": idle_until,
        "removed_at": removal,
        "queue_position": position or None,
    }


def queued_reason(limits: Limits, repo: tuple[str, int] | None = None) -> str:
    """Why a staging (of `repo`) waits, naming the quotas that are set for it."""
    parts = []
    if limits.total:
        parts.append(f"at most {limits.total} stagings run at once (staging.max_active)")
    if repo is not None and repo in limits.own:
        if limits.own[repo]:
            parts.append(f"at most {limits.own[repo]} for this repository ([[repos]] max_active)")
    elif limits.per_repo:
        parts.append(f"at most {limits.per_repo} per repository (staging.max_active_per_repo)")
    return " and ".join(parts) or "waiting for a free slot"


def admissible(
    waiting: Sequence[StagingKey], holders: Sequence[StagingKey], limits: Limits
) -> list[StagingKey]:
    """The waiting stagings (oldest first) that get a slot now, as `Store.claim` gives them:
    first come, first served, each repository within its own quota."""
    total = len(holders)
    per_repo: dict[tuple[str, int], int] = {}
    for key in holders:
        per_repo[repo_of(key)] = per_repo.get(repo_of(key), 0) + 1
    admitted = []
    for key in waiting:
        repo = repo_of(key)
        fits_total = not limits.total or total < limits.total
        cap = limits.of_repo(repo)
        if fits_total and (not cap or per_repo.get(repo, 0) < cap):
            admitted.append(key)
            total += 1
            per_repo[repo] = per_repo.get(repo, 0) + 1
    return admitted


def repo_of(key: StagingKey) -> tuple[str, int]:
    return key.host, key.repo_id


def _stamp(at: float) -> str:
    """Deadlines are kept to the second: what the comment shows and what is compared."""
    return str(int(at))


UNITS = (("day", 86400), ("hour", 3600), ("minute", 60))


def duration_text(seconds: float) -> str:
    """ "3 days", "1 day", "12 hours"; 90 minutes is "1 hour" (the largest whole unit)."""
    for name, size in UNITS:
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {name}{'s' if count != 1 else ''}"
    return "less than a minute"
