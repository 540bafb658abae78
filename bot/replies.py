"""What the bot answers to slash-commands, when the outcome needs words (pure).

Every reply carries `REPLY_MARKER`, so the bot never takes its own words for a command.
Outcomes that need no words (a deploy, a set) show in the sticky comment instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot import commands, config
from bot.hosts.base import STICKY_MARKER
from bot.report import short, timestamp

REPLY_MARKER = "<!-- stagingbot:reply -->"
MASK = config.MASK  # "**********", as everywhere a secret is hidden

WRITE_ACCESS = {
    "github": "write access to the repository (the Write, Maintain or Admin role)",
    "gitlab": "the Developer role or higher in the project",
}

REFUSED = "@{author}, {line} needs {access}. Nothing was changed."
PROBLEMS = "@{author}, I could not run this:"
EXPOSED_VALUE = (
    "@{author}, {keys} {are} secret and cannot be set from a comment, which everyone who "
    "can read this pull request sees. **Treat the value you wrote as exposed and rotate "
    "it**, then set the new one through the stagingbot API, dashboard or CLI. Nothing was set."
)
APPROVED = "@{author} approved commit `{sha}` from the fork: deploying it."
FORK_MOVED = (
    "@{author}, the fork pushed `{head}` after your comment (which saw `{seen}`), so nothing "
    "was approved. Review the new commit, then approve it with `{prefix} deploy {head}`."
)
UNKNOWN_SEEN = (
    "@{author}, I cannot tell which commit your comment saw, so nothing was approved. "
    "Review the head commit, then approve exactly it with `{prefix} deploy {head}`."
)
FULL_SHA = (
    "@{author}, a fork's commit is approved by its full SHA (or by `{prefix} deploy` alone): "
    "`{prefix} deploy {head}`. Nothing was approved."
)
NOT_HEAD = (
    "@{author}, `{sha}` is not the head of this pull request (`{head}`): a staging only "
    "ever runs the current head. Nothing was approved."
)
NOTHING_TO = "@{author}, there is no staging to {verb}: `{prefix} deploy` creates one."
NOT_ARCHIVED = "@{author}, the staging is not archived, so there is nothing to restore."
ARCHIVE_REFUSED = (
    "@{author}, the staging was **not archived**: {why}. Nothing was changed: it keeps "
    "running, its data untouched. To archive it, {remedy}, then `{prefix} archive` again; "
    "or remove the staging, its data included, with `{prefix} destroy`."
)
ARCHIVE_FAILED = (
    "@{author}, archiving the staging **failed**: {why}. {state}. Once the cause is fixed, "
    "`{prefix} archive` tries again; or remove the staging, its data included, with "
    "`{prefix} destroy`."
)
ARCHIVE_PARTLY = (
    "@{author}, archiving the staging **failed part-way**: {why}. {state}. No data was "
    "deleted. Once the cause is fixed, `{prefix} archive` finishes archiving; a push, "
    "`{prefix} restore` or `{prefix} redeploy` brings it all back up."
)
UNSET_UNKNOWN = "@{author}, {keys} {were} not set on this staging."
TOO_MANY = "@{author}, a staging holds at most {limit} overrides. Nothing was set."


def written_by_bot(body: str) -> bool:
    """The bot's own comments carry one of its markers: they are never commands."""
    return STICKY_MARKER in body or REPLY_MARKER in body


def reply(text: str) -> str:
    """The body posted: the text, marked as the bot's own."""
    return f"{REPLY_MARKER}\n{text}"


def echo(line: str) -> str:
    """A command line quoted back: values cut off (one may be a secret), safely in code."""
    head, equals, _ = line.partition("=")
    return commands.code(f"{head}=…" if equals else line)


def refused(author: str, line: str, host: str) -> str:
    return REFUSED.format(author=author, line=echo(line), access=WRITE_ACCESS[host])


def problems(author: str, found: Sequence[commands.Problem], prefix: str) -> str:
    lines = [PROBLEMS.format(author=author), ""]
    lines += [f"- {echo(problem.line)}: {problem.message}" for problem in found]
    lines += ["", commands.help_text(prefix)]
    return "\n".join(lines)


def secret_refused(author: str, keys: Iterable[str]) -> str:
    names = sorted(keys)
    listed = ", ".join(f"`{key}`" for key in names)
    return EXPOSED_VALUE.format(author=author, keys=listed, are=_are(names))


def unset_unknown(author: str, keys: Iterable[str]) -> str:
    names = sorted(keys)
    listed = ", ".join(f"`{key}`" for key in names)
    were = "were" if len(names) > 1 else "was"
    return UNSET_UNKNOWN.format(author=author, keys=listed, were=were)


def masked(values: Mapping[str, str], secret_keys: Iterable[str]) -> list[tuple[str, str]]:
    """Overrides as shown to people: secret values never appear."""
    secret = set(secret_keys)
    return [(key, MASK if key in secret else value) for key, value in sorted(values.items())]


def status(
    fields: Mapping[str, str],
    shown_overrides: Sequence[tuple[str, str]],
    history: Sequence[Mapping[str, Any]],
) -> str:
    """`/staging status`: state, URL, commit, overrides and the last few things that happened."""
    phase = fields.get("phase") or "pending"
    lines = [f"**Staging:** {phase}"]
    if fields.get("staging_url") and phase not in ("gone", "pending"):
        lines.append(f"**URL:** {fields['staging_url']}")
    if fields.get("sha"):
        lines.append(f"**Commit:** `{short(fields['sha'])}`")
    if fields.get("reason"):
        lines.append(f"**Why:** {' '.join(fields['reason'].split())[:500]}")
    if shown_overrides:
        lines += ["", "**Overrides:**"] + [
            f"- `{k}` = {commands.code(v)}" for k, v in shown_overrides
        ]
    if history:
        lines += ["", "| When | What | By | Commit | Result |", "|---|---|---|---|---|"]
        for entry in history[:5]:
            when = timestamp(float(entry.get("at") or 0))
            what, by = entry.get("action", ""), entry.get("by", "")
            sha, result = short(str(entry.get("sha", ""))), entry.get("result", "")
            lines.append(f"| {when} | {what} | {by} | `{sha}` | {result} |")
    return "\n".join(lines)


def _are(names: Sequence[str]) -> str:
    return "are" if len(names) > 1 else "is"
