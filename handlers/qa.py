"""QA sign-off: who may say a staging passed or failed QA, and the `staging/qa` check it sets.

A sign-off is a desired-state field like any decision (`handlers.actions.sign_off`), written
by a slash-command (here, run by the worker), the API or the dashboard (`bot.steering`).
The reconcile job then keeps a second check run (GitHub) or commit status (GitLab) named
`<check name>/qa` on the request's head in step with it: success or failure on the commit
QA signed off, pending again as soon as the head moves on, so a sign-off always refers to
the code that will be merged. Teams make that check a required status check.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from bot import replies
from bot.commands import Command, Verb, code
from bot.config import Config
from bot.errors import PermanentError
from bot.hosts.base import Access, GitHost
from bot.model import CheckReport, CheckState, PullRequest, RepoRef
from bot.report import short, timestamp
from bot.services import Services
from bot.store import StagingRecord
from handlers import actions, plan

if TYPE_CHECKING:  # handlers.comment imports this module
    from handlers.comment import Run

log = logging.getLogger("stagingbot.qa")

GATE = "qa"  # the check is named `<github.check_name or gitlab.status_name>/qa`
# Observed fields: what the check says now, and where (a retried job edits, never doubles).
REPORTED = "qa_reported"
CHECK_ID = "qa_check_id"
CHECK_SHA = "qa_check_sha"

PASSED_TITLE = "QA passed by {by}"
FAILED_TITLE = "QA failed by {by}: {note}"
RESET_TITLE = "New commits since QA {verdict} at {sha}"
SIGNED_SUMMARY = "QA {verdict} commit `{sha}` on its staging: signed off by **{by}** at {when}."
RESET_SUMMARY = (
    "QA {verdict} commit `{old}` (signed off by **{by}**), but the head is now `{head}`. "
    "Test the staging again, then sign off with `{prefix} qa-pass [note]` or "
    "`{prefix} qa-fail <reason>` (or on the dashboard)."
)
NOTE_LINE = "\n\n> {note}"
COMMENT_NOTES = {
    actions.PASSED: "**QA:** ✅ passed by **{by}** on `{sha}`{note}",
    actions.FAILED: "**QA:** ❌ failed by **{by}** on `{sha}`{note}",
}
COMMENT_RESET = (
    "**QA:** ⏳ new commits since QA {verdict} at `{sha}`: waiting for a new sign-off "
    "(`{prefix} qa-pass`)."
)
RESET_REASON = "new commits since QA {verdict} at {sha}"
WAITING_TITLE = "Waiting for QA"
WAITING_SUMMARY = (
    "Nobody has signed off commit `{head}` on its staging yet. Test it, then sign off with "
    "`{prefix} qa-pass [note]` or `{prefix} qa-fail <reason>` (or on the dashboard)."
)
COMMENT_WAITING = "**QA:** ⏳ waiting for a sign-off (`{prefix} qa-pass`)."

NOT_ALLOWED = (
    "@{author}, {line} is for the people `qa.allowed` names in the bot's configuration "
    "({who}), and you are not one of them. Nothing was signed off."
)
LOOKUP_FAILED = " (I could not check {group}: {reason})"
MOVED = (
    "@{author}, new commits arrived after your comment (which saw `{seen}`; the head is now "
    "`{head}`), so nothing was signed off. Test the new commit's staging, then sign off again."
)
REFUSED = "@{author}, {why}. Nothing was signed off."


def check_for(
    fields: Mapping[str, str], head: str, prefix: str, waiting: bool = False
) -> CheckReport | None:
    """What `staging/qa` on `head` should say (pure). Before anyone signed off: pending
    with `waiting` (`qa.report_waiting`), else nothing at all."""
    verdict, sha, by = fields.get(plan.QA, ""), fields.get(plan.QA_SHA, ""), fields.get(plan.QA_BY)
    if verdict not in (actions.PASSED, actions.FAILED) or not sha:
        if not waiting:
            return None
        summary = WAITING_SUMMARY.format(head=short(head), prefix=prefix)
        return CheckReport(CheckState.IN_PROGRESS, WAITING_TITLE, summary)
    if sha != head:
        title = RESET_TITLE.format(verdict=verdict, sha=short(sha))
        summary = RESET_SUMMARY.format(
            verdict=verdict, old=short(sha), by=by, head=short(head), prefix=prefix
        )
        return CheckReport(CheckState.IN_PROGRESS, title, summary)
    note = safe_note(fields.get(plan.QA_NOTE, ""))
    when = timestamp(float(fields.get(plan.QA_AT) or 0))
    summary = SIGNED_SUMMARY.format(verdict=verdict, sha=short(sha), by=by, when=when)
    summary += NOTE_LINE.format(note=note) if note else ""
    if verdict == actions.PASSED:
        return CheckReport(CheckState.SUCCESS, PASSED_TITLE.format(by=by), summary)
    # A title is plain text (a check run's title, a status's description): no markdown.
    title = FAILED_TITLE.format(by=by, note=" ".join(fields.get(plan.QA_NOTE, "").split()))
    title = title[:120]
    return CheckReport(CheckState.FAILURE, title, summary)


def comment_note(fields: Mapping[str, str], head: str, prefix: str, waiting: bool = False) -> str:
    """The sticky comment's QA line; before anyone signed off, "" (or, with `waiting`, that
    a sign-off is awaited) (pure)."""
    verdict, sha = fields.get(plan.QA, ""), fields.get(plan.QA_SHA, "")
    if verdict not in COMMENT_NOTES or not sha:
        return COMMENT_WAITING.format(prefix=prefix) if waiting else ""
    if sha != head:
        return COMMENT_RESET.format(verdict=verdict, sha=short(sha), prefix=prefix)
    note = safe_note(fields.get(plan.QA_NOTE, ""))
    return COMMENT_NOTES[verdict].format(
        by=fields.get(plan.QA_BY), sha=short(sha), note=f": {note}" if note else ""
    )


def safe_note(note: str) -> str:
    """A note shown in markdown: one line, and no HTML (a `<!--` would hide what follows)."""
    return " ".join(note.split()).replace("<", "&lt;")


def groups_in(allowed: Sequence[str], host: str) -> list[str]:
    """The `qa.allowed` entries that may name a team or group, to ask the host about.

    GitHub: `org/team-slug`. GitLab: a group's full path; a top-level group has no `/`
    and looks like a username, but GitLab keeps users and groups in one namespace, so
    every entry that is not the user is asked as a group (a 404 is "not a member").
    """
    return [entry for entry in allowed if "/" in entry or host == "gitlab"]


async def may_sign_off(
    svc: Services, host: GitHost, repo: RepoRef, user: str, access: Access
) -> tuple[bool, list[str]]:
    """Whether `user` may sign off QA, and the membership lookups that failed (for the reply)."""
    allowed = svc.config.qa.allowed
    if not allowed:
        return access.may_run_commands, []
    if any(entry.casefold() == user.casefold() for entry in allowed if "/" not in entry):
        return True, []
    failed: list[str] = []
    for group in groups_in(allowed, repo.host):
        try:
            if await host.member_of(repo, group, user):
                return True, []
        except PermanentError as exc:
            log.warning("could not read %s's membership of %s: %s", user, group, exc.reason)
            failed.append(LOOKUP_FAILED.format(group=code(group), reason=exc.reason))
    return False, failed


async def command(run: Run, command: Command, access: Access) -> str:
    """`qa-pass` / `qa-fail` from a comment: check who, then write the verdict; the history's
    result. The check and the sticky comment follow in the same reconcile round."""
    author, head = run.author, run.pr.head_sha
    allowed, failed = await may_sign_off(run.svc, run.host, run.pr.repo, author, access)
    if not allowed:
        if not run.svc.config.qa.allowed:
            run.refuse(replies.refused(author, command.line, run.pr.repo.host))
            return "refused: no write access"
        who = ", ".join(code(entry) for entry in run.svc.config.qa.allowed)
        text = NOT_ALLOWED.format(author=author, line=replies.echo(command.line), who=who)
        run.refuse(text + "".join(failed))
        return "refused: not in qa.allowed"
    if run.seen_sha and run.seen_sha != head:
        run.refuse(MOVED.format(author=author, seen=short(run.seen_sha), head=short(head)))
        return "refused: new commits"
    verdict = actions.PASSED if command.verb is Verb.QA_PASS else actions.FAILED
    effect = actions.sign_off(run.state, head, author, verdict, command.note, run.svc.clock())
    why = effect.refusal.value if effect.refusal else ""
    if not run.apply(effect, REFUSED.format(author=author, why=why)):
        return f"refused: {why}"
    return actions.signed_result(verdict, command.note)


async def report(svc: Services, host: GitHost, pr: PullRequest, record: StagingRecord) -> None:
    """Keep `staging/qa` on the request's head in step with QA's last word (the reconcile
    hook): idempotent, and a host that refuses the write never stops the staging."""
    if not pr.open:
        return
    prefix, waiting = svc.config.commands.prefix, svc.config.qa.report_waiting
    check = check_for(record.fields, pr.head_sha, prefix, waiting)
    if check is None:
        return
    signature = "|".join((pr.head_sha, check.state.value, check.title, check.summary))
    if record.get(REPORTED) == signature:
        return
    if check.state is CheckState.IN_PROGRESS and record.get(plan.QA):
        await _history_reset(svc, record, pr.head_sha)
    known = record.number(CHECK_ID) if record.get(CHECK_SHA) == pr.head_sha else None
    written = record.get(REPORTED).split("|")[1:2] if known is not None else []
    if written and not check.state.can_follow(written[0]):
        known = None  # QA changed its mind on this commit: a new run (GitHub keeps the old)
    fields: dict[str, str | int] = {REPORTED: signature, CHECK_SHA: pr.head_sha}
    try:
        check_id = await host.report_check(pr.repo, pr.head_sha, check, known, gate=GATE)
    except PermanentError as exc:
        log.warning("could not write the QA check for %s: %s", record.key, exc.reason)
        check_id = None
    if check_id is not None:
        fields[CHECK_ID] = check_id
    await svc.store.update(record.key, fields)


async def _history_reset(svc: Services, record: StagingRecord, head: str) -> None:
    verdict, sha = record.get(plan.QA), record.get(plan.QA_SHA)
    entry = {
        "at": round(svc.clock(), 3),
        "action": "qa reset",
        "result": "pending",
        "sha": head,
        "event": record.get("last_event"),
        "by": "automatic",
        "reason": RESET_REASON.format(verdict=verdict, sha=short(sha)),
    }
    await svc.store.add_history(record.key, entry)


def note(config: Config, fields: Mapping[str, str], head: str) -> str:
    """The sticky comment's QA line for the configured bot (the reconcile hook)."""
    return comment_note(fields, head, config.commands.prefix, config.qa.report_waiting)
