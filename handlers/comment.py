"""Slash-commands from comments: who may run them, and what they change in the desired state.

The web app queues each new comment holding a command on its staging (once per comment
id); the reconcile job runs them here, oldest first, before it converges. A command only
writes desired-state fields (see `handlers.plan`); the round that follows acts on them.
A command is dropped from the queue together with writing its effect, so a job killed
half-way runs it again: its reaction is not doubled, a reply may be (at least once).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot import commands, lifecycle, replies
from bot.commands import Command, Verb
from bot.config import Rules
from bot.errors import PermanentError
from bot.hosts.base import CONFUSED, EYES, THUMBS_UP, Access, GitHost
from bot.model import PullRequest, StagingKey
from bot.report import timestamp
from bot.services import Services
from bot.store import StagingRecord
from handlers import actions, plan, qa
from handlers.actions import Effect

log = logging.getLogger("stagingbot.commands")
T = TypeVar("T")

MAX_OVERRIDES = actions.MAX_OVERRIDES
# Accepted, every other command counts as activity: the staging is not idle. `extend` sets
# its own deadline, and reading (status, help) keeps nothing running.
NOT_ACTIVITY = frozenset({*commands.OPEN_VERBS, Verb.EXTEND})


@dataclass
class Run:
    """One comment being handled: what it changes, what the bot says back."""

    svc: Services
    host: GitHost
    key: StagingKey
    pr: PullRequest
    author: str
    seen_sha: str  # the head the comment was written against, "" when unknown
    state: dict[str, str]  # the staging's fields as the comment's commands leave them
    changes: dict[str, str] = field(default_factory=dict)
    replies: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    refusals: int = 0

    @property
    def ok(self) -> bool:
        return self.refusals == 0

    def write(self, **fields: str) -> None:
        self.state.update(fields)
        self.changes.update(fields)

    def apply(self, effect: Effect, refusal: str = "") -> bool:
        """Write an action's effect, or refuse with `refusal` (its reply); True if written."""
        if effect.refusal is not None:
            self.refuse(refusal or effect.refusal.value)
            return False
        self.write(**effect.changes)
        return True

    def say(self, text: str) -> None:
        self.replies.append(text)

    def refuse(self, text: str) -> None:
        self.say(text)
        self.refusals += 1

    @property
    def rules(self) -> Rules:
        return self.svc.config.rules(self.svc.config.repo(self.key.host, self.pr.repo.full_name))

    @property
    def prefix(self) -> str:
        return self.svc.config.commands.prefix


async def run_commands(svc: Services, host: GitHost, pr: PullRequest, record: StagingRecord) -> int:
    """Run every queued command of this staging; how many were handled."""
    handled = 0
    while (queued := await svc.store.next_command(record.key)) is not None:
        current = await svc.store.load(record.key) or record
        try:
            run = await _run_comment(svc, host, pr, current, queued)
        except PermanentError as exc:
            # Retrying cannot help, and a command stuck first in the queue would block the
            # staging for ever (its teardown included): drop it and say why in the log.
            log.warning("dropped a command on %s: %s", record.key, exc.reason)
            run = None
        await svc.store.command_done(record.key, run.changes if run else {})
        for entry in run.history if run else []:
            await svc.store.add_history(record.key, entry)
        handled += 1
    return handled


async def _run_comment(
    svc: Services, host: GitHost, pr: PullRequest, record: StagingRecord, queued: dict[str, str]
) -> Run | None:
    body, author = queued.get("body", ""), queued.get("author", "")
    if not author or replies.written_by_bot(body):
        return None
    own = await _tolerant(host.identity(), "read the bot's identity") or ""
    if author.casefold() == own.casefold():
        return None  # the bot's own comment: it never answers itself (markers also tell)
    config = svc.config.commands
    parsed = commands.parse(body, config.prefix, config.max_value_length)
    if not parsed.commands and not parsed.problems:
        return None
    comment_id = int(queued["id"])
    # A comment deleted meanwhile, or a locked conversation, refuses reactions and replies:
    # the command still counts, only the acknowledgement is lost.
    await _tolerant(host.react(pr.repo, pr.number, comment_id, EYES), "react")
    run = Run(svc, host, record.key, pr, author, queued.get("sha", ""), dict(record.fields))
    if parsed.problems:
        run.refuse(replies.problems(author, parsed.problems, config.prefix))
    exposed = _secret_keys_in(body, config.secret_keys)
    if exposed:  # whoever wrote it, however malformed: the value is public now
        run.say(replies.secret_refused(author, exposed))
    writes = [c for c in parsed.commands if c.verb not in commands.OPEN_VERBS]
    access = Access.NONE
    if writes:
        access = await _tolerant(host.permission(pr.repo, author), "read access") or Access.NONE
    for command in parsed.commands:
        if command.verb in commands.QA_VERBS:  # its own rule for who may: qa.allowed
            result = await qa.command(run, command, access)
        elif command.verb in commands.OPEN_VERBS or access.may_run_commands:
            refusals = run.refusals
            await _execute(run, command, comment_id)
            result = "accepted" if run.refusals == refusals else "refused"
            if result == "accepted" and command.verb not in NOT_ACTIVITY:
                run.write(**{lifecycle.ACTIVE_AT: f"{run.svc.clock():.3f}"})  # not idle
        else:
            run.refuse(replies.refused(author, command.line, pr.repo.host))
            result = "refused: no write access"
        run.history.append(_entry(run, command, result))
    for text in run.replies:
        await _tolerant(host.reply(pr.repo, pr.number, replies.reply(text)), "reply")
    done = THUMBS_UP if run.ok else CONFUSED
    await _tolerant(host.react(pr.repo, pr.number, comment_id, done), "react")
    log.info("commands from %s on %s: %s", author, record.key, "ok" if run.ok else "refused")
    return run


def _secret_keys_in(body: str, secret_keys: tuple[str, ...]) -> set[str]:
    """Secret keys the comment assigns a value to, however malformed the rest of it is."""
    return {key for key in secret_keys if re.search(rf"(?<![A-Z0-9_]){key}=", body)}


async def _tolerant(call: Awaitable[T], what: str) -> T | None:
    try:
        return await call
    except PermanentError as exc:
        log.warning("could not %s: %s", what, exc.reason)
        return None


async def _execute(run: Run, command: Command, comment_id: int) -> None:
    verb, author, head = command.verb, run.author, run.pr.head_sha
    if verb is Verb.DEPLOY:
        if _approve(run, command):
            run.apply(actions.deploy(skipped=bool(plan.skip_reason(run.pr, run.rules))))
    elif verb is Verb.REDEPLOY:
        run.apply(actions.redeploy(f"comment-{comment_id}"))
    elif verb is Verb.ARCHIVE:
        nothing = replies.NOTHING_TO.format(author=author, verb="archive", prefix=run.prefix)
        run.apply(actions.archive(run.state, head, author, plan.BY_COMMENT), nothing)
    elif verb is Verb.RESTORE:
        restored = actions.restore(run.state, f"comment-{comment_id}")
        run.apply(restored, replies.NOT_ARCHIVED.format(author=author))
    elif verb is Verb.DESTROY:
        run.apply(actions.destroy(head, author))
    elif verb is Verb.EXTEND:
        _extend(run, command)
    elif verb is Verb.SET or verb is Verb.UNSET:
        _change_overrides(run, command)
    elif verb is Verb.STATUS:
        await _status(run)
    elif verb is Verb.HELP:
        run.say(commands.help_text(run.prefix))


def _extend(run: Run, command: Command) -> None:
    now, author = run.svc.clock(), run.author
    effect = actions.extend(run.state, run.svc.config.staging, now, command.seconds, author)
    if run.apply(effect, f"@{author}, {effect.detail}. Nothing was changed."):
        until = float(effect.changes[lifecycle.EXTENDED_UNTIL])
        run.say(lifecycle.EXTENDED_REPLY.format(author=author, until=timestamp(until)))


def _approve(run: Run, command: Command) -> bool:
    """`deploy [sha]`: a named SHA must be the head; on a fork it approves that head.

    A fork's approval must name exactly the code the maintainer reviewed: the head the
    comment saw (when the bot knows it) or the full 40-character SHA — a short prefix
    could be matched by another commit crafted to share it.
    """
    head, author = run.pr.head_sha, run.author
    if command.sha and not head.startswith(command.sha):
        run.refuse(replies.NOT_HEAD.format(author=author, sha=command.sha, head=head))
        return False
    if not run.pr.fork:
        return True
    seen = run.seen_sha
    if command.sha and command.sha != head:
        run.refuse(replies.FULL_SHA.format(author=author, head=head, prefix=run.prefix))
        return False
    if not command.sha and seen != head:
        # The fork pushed after the comment was written (or the bot cannot tell which head
        # the comment saw): its author cannot be known to have reviewed this code.
        template = replies.FORK_MOVED if seen else replies.UNKNOWN_SEEN
        run.refuse(template.format(author=author, head=head, seen=seen[:7], prefix=run.prefix))
        return False
    run.apply(actions.approve(head, author))
    run.say(replies.APPROVED.format(author=author, sha=head))
    run.history.append(_entry(run, command, f"approved {head[:7]}"))
    return True


def _change_overrides(run: Run, command: Command) -> None:
    if command.verb is Verb.SET:
        secret_keys = set(run.svc.config.commands.secret_keys)
        if {key for key, _ in command.assignments} & secret_keys:
            run.refusals += 1  # the reply already warns that the value is exposed
            return
        too_many = replies.TOO_MANY.format(author=run.author, limit=MAX_OVERRIDES)
        run.apply(actions.set_overrides(run.state, command.assignments), too_many)
        return
    effect = actions.unset_overrides(run.state, command.keys)
    if effect.unknown:
        run.say(replies.unset_unknown(run.author, effect.unknown))
    run.apply(effect)


async def _status(run: Run) -> None:
    secret_keys = run.svc.config.commands.secret_keys
    shown = plan.shown_overrides(run.state, secret_keys)
    history = await run.svc.store.history(run.key)
    qa_line = qa.note(run.svc.config, run.state, run.pr.head_sha)
    run.say(replies.status(run.state, shown, history) + (f"\n\n{qa_line}" if qa_line else ""))


def _entry(run: Run, command: Command, result: str) -> dict[str, Any]:
    return {
        "at": round(run.svc.clock(), 3),
        "action": f"command {command.verb.value}",
        "result": result,
        "sha": run.pr.head_sha,
        "event": "comment.created",
        "by": run.author,
        "reason": "",
    }
