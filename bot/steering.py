"""People's actions from the API and the dashboard, through the desired-state path.

It is the path webhooks and slash-commands take: the effect (`handlers.actions`) is
written as desired-state fields with the generation bumped, the staging's reconcile job is
queued, and the history says who did it. The web app never calls a Git host, so where a
comment's handler asks the host, this reads what the last event stored (head, labels,
draft, fork). The worker asks the host before it acts and has the last word: approving a
fork's head that has moved on since approves nothing that runs.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from arq.connections import ArqRedis

from bot import commands, lifecycle, queue, sealed
from bot.build_index import BUILT_BY, BUILT_SHA
from bot.config import Config, Rules
from bot.model import PullRequest, StagingKey
from bot.report import timestamp
from bot.store import StagingRecord, Store
from bot.tokens import Caller
from handlers import actions, plan
from handlers.actions import Effect

ACTIONS = ("deploy", "redeploy", "archive", "restore", "destroy", "extend")
# QA's sign-off: the qa and operator roles; the verdict each writes (handlers.qa reports it).
QA_ACTIONS = {"qa-pass": actions.PASSED, "qa-fail": actions.FAILED}
NEEDS_REASON = 'qa-fail needs a reason: send {"note": "what is wrong"}'
NOT_A_DURATION = 'duration must be a string like "12h" or "2d" (m, h, d or w after a whole number)'
ROLLBACK = "a staging never rolls back: {sha} is not the head of this request ({head})"
NOT_A_SHA = "sha must be a full commit SHA: 40 hexadecimal characters"
NO_HEAD = "the head of this request is not known yet: wait for its next event or a sweep"
CLOSED = "this request is closed: only an open request has a staging"
NOT_SET = "{key} is not set on this staging"
UNAPPROVED_FORK = (
    "{sha} comes from a fork and is not approved: a maintainer approves it with "
    "`/staging deploy` (or a deploy without a SHA) before a build can deploy it"
)
_SHA = re.compile(r"[0-9a-f]{40}")


class Refused(Exception):
    """The action cannot be done: an HTTP status and a reason for the person."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Decision:
    """What one action writes and what the history says about it."""

    changes: dict[str, str] = field(default_factory=dict)
    result: str = "accepted"

    def add(self, effect: Effect) -> None:
        if effect.refusal is not None:
            raise Refused(409, effect.refusal.value)
        self.changes.update(effect.changes)


def decide(
    record: StagingRecord,
    action: str,
    caller: Caller,
    config: Config,
    sha: str = "",
    *,
    now: float = 0.0,
    duration: float | None = None,
) -> Decision:
    """The effect of `action` by `caller` on the staging as stored (pure); `now` and
    `duration` are for `extend`."""
    state, head, by = record.fields, record.get("desired_sha"), caller.name
    decision = Decision()
    if action == "extend":
        return _extend(record, caller, config, now, duration)
    if action in ("deploy", "redeploy") and record.get("desired") == "gone":
        raise Refused(409, CLOSED)
    if action == "deploy":
        if sha and sha != head:
            raise Refused(409, ROLLBACK.format(sha=sha[:12], head=head[:12] or "unknown"))
        if sha:  # CI says the commit is built: the gate is open, never a fork's approval
            if _fork(record) and record.get(plan.APPROVED_SHA) != sha:
                raise Refused(409, UNAPPROVED_FORK.format(sha=sha[:7]))
            decision.changes.update({BUILT_SHA: sha, BUILT_BY: f"{by} via {caller.via}"})
            decision.result = f"built at {sha[:7]}, said {by} via {caller.via}: deploy at once"
        elif _fork(record):
            if not head:
                raise Refused(409, NO_HEAD)
            decision.add(actions.approve(head, by))
            decision.result = f"approved via {caller.via} by {by} ({head[:7]})"
        skipped = plan.skip_reason(_request(record), _rules(record, config))
        decision.add(actions.deploy(skipped=bool(skipped)))
    elif action == "redeploy":
        decision.add(actions.redeploy(f"{caller.via.lower()}-{uuid.uuid4().hex[:12]}"))
    elif action == "archive":
        decision.add(actions.archive(state, head, by, caller.via))
    elif action == "restore":
        decision.add(actions.restore(state, f"{caller.via.lower()}-{uuid.uuid4().hex[:12]}"))
    elif action == "destroy":
        decision.add(actions.destroy(head, by))
    else:
        raise Refused(404, f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    return decision


def _extend(
    record: StagingRecord, caller: Caller, config: Config, now: float, duration: float | None
) -> Decision:
    effect = actions.extend(record.fields, config.staging, now, duration, caller.name)
    if effect.refusal is not None:
        too_long = duration is not None and duration > config.staging.max_extend
        raise Refused(422 if too_long else 409, effect.detail or effect.refusal.value)
    until = float(effect.changes[lifecycle.EXTENDED_UNTIL])
    return Decision(dict(effect.changes), f"accepted: kept until {timestamp(until)}")


def check_duration(body: Mapping[str, Any]) -> float | None:
    """The optional `{"duration": "2d"}` of an extend; None when not given."""
    text = body.get("duration")
    if text is None:
        return None
    seconds = commands.parse_duration(text) if isinstance(text, str) else None
    if seconds is None:
        raise Refused(422, NOT_A_DURATION)
    return seconds


def check_sha(body: Mapping[str, Any]) -> str:
    """The optional `{"sha": "<40 hex>"}` of a deploy; "" when not given."""
    sha = body.get("sha")
    if sha is None:
        return ""
    if not isinstance(sha, str) or not _SHA.fullmatch(sha.lower()):
        raise Refused(422, NOT_A_SHA)
    return sha.lower()


def override_change(record: StagingRecord, key: str, value: str | None, config: Config) -> Decision:
    """Set (`value` given) or unset one override, by the rules of the `set` command."""
    problem = commands.override_problem(key, value, config.commands.max_value_length)
    if problem:
        raise Refused(422, problem.replace("`", ""))
    decision = Decision()
    if value is None:
        effect = actions.unset_overrides(record.fields, [key])
        if effect.unknown:
            raise Refused(404, NOT_SET.format(key=key))
        decision.add(effect)
        return decision
    if key in config.commands.secret_keys:
        secret_key = config.staging.secret_key.reveal()
        decision.add(actions.set_secret(record.fields, key, sealed.seal(secret_key, key, value)))
        decision.result = "accepted (secret: the value is kept sealed, never shown)"
        return decision
    decision.add(actions.set_overrides(record.fields, [(key, value)]))
    return decision


def sign_off_decision(
    record: StagingRecord, action: str, note: str, caller: Caller, at: float
) -> Decision:
    """The effect of QA's `action` with `note` by `caller` on the staging as stored (pure):
    on the head the last event named, which the staging must run."""
    verdict = QA_ACTIONS[action]
    note = commands.clean_note(note)
    problem = commands.note_problem(note)
    if problem:
        raise Refused(422, problem)
    if verdict == actions.FAILED and not note:
        raise Refused(422, NEEDS_REASON)
    if record.get("desired") == "gone":
        raise Refused(409, CLOSED)
    head = record.get("desired_sha")
    decision = Decision(result=actions.signed_result(verdict, note))
    decision.add(actions.sign_off(record.fields, head, caller.name, verdict, note, at))
    return decision


@dataclass(frozen=True)
class Steering:
    """What an action needs: the web app's store, queue and config."""

    store: Store
    redis: ArqRedis
    config: Config
    clock: Callable[[], float] = time.time

    async def act(
        self,
        key: StagingKey,
        action: str,
        caller: Caller,
        sha: str = "",
        duration: float | None = None,
    ) -> Decision:
        """Do `action`: write its effect, queue the reconcile, record it in history."""
        what = f"{action} via {caller.via}"
        now = self.clock()
        return await self._through(
            key,
            what,
            caller,
            lambda record: decide(
                record, action, caller, self.config, sha, now=now, duration=duration
            ),
            active=action != "extend",  # extend sets its own deadline
        )

    async def sign_off(self, key: StagingKey, action: str, note: str, caller: Caller) -> Decision:
        """QA's verdict (`qa-pass` / `qa-fail`) on the staging's head, with a note."""
        return await self._through(
            key,
            f"{action} via {caller.via}",
            caller,
            lambda record: sign_off_decision(record, action, note, caller, time.time()),
        )

    async def override(
        self, key: StagingKey, name: str, value: str | None, caller: Caller
    ) -> Decision:
        """Set (`value` given) or unset the override `name`."""
        what = f"{'unset' if value is None else 'set'} {name} via {caller.via}"
        return await self._through(
            key, what, caller, lambda record: override_change(record, name, value, self.config)
        )

    async def _through(
        self,
        key: StagingKey,
        what: str,
        caller: Caller,
        decide_on: Callable[[StagingRecord], Decision],
        *,
        active: bool = True,
    ) -> Decision:
        decided: list[Decision] = []
        # A dashboard, API or CLI action is activity: the staging is not idle.
        activity = {lifecycle.ACTIVE_AT: f"{self.clock():.3f}"} if active else {}

        def write(record: StagingRecord) -> dict[str, str]:
            decided.append(decide_on(record))
            return {**decided[-1].changes, **activity}

        record, _ = await self.store.change(key, write)
        await queue.enqueue_reconcile(self.redis, self.config.redis.key_prefix, key)
        await self.store.add_history(key, _entry(record, what, decided[-1].result, caller))
        return decided[-1]


def _entry(record: StagingRecord, what: str, result: str, caller: Caller) -> dict[str, Any]:
    return {
        "at": round(time.time(), 3),
        "action": what,
        "result": result,
        "sha": record.get("desired_sha"),
        "event": caller.via.lower(),
        "by": caller.name,
        "reason": "",
    }


def _fork(record: StagingRecord) -> bool:
    return record.get("fork") == "1" or record.get("phase") == "awaiting approval"


def _request(record: StagingRecord) -> PullRequest:
    """The request as the last event described it, for the staging rules."""
    return replace(record.request(), fork=_fork(record))


def _rules(record: StagingRecord, config: Config) -> Rules:
    return config.rules(config.repo(record.key.host, record.get("repo")))
