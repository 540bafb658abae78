"""What the command line prints for people: tables and `name: value` lines (pure functions)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

LIST_COLUMNS = ("REF", "STATE", "SHA", "UPDATED", "URL", "TITLE")
HISTORY_COLUMNS = ("WHEN", "ACTION", "RESULT", "SHA", "BY", "REASON")
NO_STAGINGS = "no stagings"
NO_HISTORY = "no history yet"
RECENT = 5  # history entries `show` prints; `history` prints them all
TITLE_WIDTH = 50
REASON_WIDTH = 80
MISSING = "-"

ACCEPTED = "{action} of {ref} accepted"
SET_ONE = "set {key} on {ref}{secret}"
UNSET_ONE = "unset {key} on {ref}"
SWEEP_QUEUED = "sweep queued"
MORE_HISTORY = "(older entries: stagingbot history {ref})"
KEPT_UNTIL = "{ref} is kept until at least {until}"


def when(value: object) -> dt.datetime | None:
    """A server time: seconds since the epoch, or ISO 8601 text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(float(value), dt.UTC)
    if isinstance(value, str) and value:
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return None


def age(value: object, now: float) -> str:
    """`42s ago`, `5m ago`, `3h ago`, `2d ago`; `-` when unknown."""
    moment = when(value)
    if moment is None:
        return MISSING
    seconds = max(0, int(now - moment.timestamp()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def stamp(value: object) -> str:
    moment = when(value)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else MISSING


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart; the last column is not padded."""
    widths = [max(len(row[i]) for row in (headers, *rows)) for i in range(len(headers))]
    lines = []
    for row in (headers, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return lines


def cut(text: object, width: int) -> str:
    words = " ".join(str(text or "").split())  # a newline in a title must not break the table
    return words if len(words) <= width else words[: width - 1] + "…"


def short_sha(value: object) -> str:
    return str(value)[:7] if value else MISSING


def staging_list(answer: Mapping[str, Any], now: float) -> list[str]:
    stagings = answer.get("stagings") or []
    if not stagings:
        return [NO_STAGINGS]
    rows = [
        (
            str(s.get("ref", MISSING)),
            str(s.get("state") or MISSING),
            short_sha(s.get("sha")),
            age(s.get("updated_at"), now),
            str(s.get("url") or MISSING),
            cut(s.get("title"), TITLE_WIDTH),
        )
        for s in stagings
    ]
    return table(LIST_COLUMNS, rows)


def staging_detail(staging: Mapping[str, Any], now: float) -> list[str]:
    """Every field a person asks about, its overrides (secret ones masked by the server)
    and the latest history entries."""
    fields = [
        ("ref", staging.get("ref")),
        ("state", staging.get("state")),
        ("reason", staging.get("reason")),
        ("url", staging.get("url")),
        ("request", staging.get("pr_url")),
        ("title", cut(staging.get("title"), 200)),
        ("author", staging.get("author")),
        ("branch", staging.get("branch")),
        ("sha", staging.get("sha")),
        ("namespace", staging.get("namespace")),
        ("qa", qa_line(staging.get("qa"))),
        ("updated", f"{stamp(staging.get('updated_at'))} ({age(staging.get('updated_at'), now)})"),
    ]
    shown = [(name, str(value)) for name, value in fields if value]
    width = max(len(name) for name, _ in shown)
    lines = [f"{name + ':':<{width + 1}} {value}" for name, value in shown]
    overrides = staging.get("overrides") or {}
    if overrides:
        lines.append("overrides:")
        lines += [f"  {key}={value}" for key, value in sorted(overrides.items())]
    entries = staging.get("history") or []
    lines.append("history:" if entries else f"history: {NO_HISTORY}")
    if entries:
        lines += ["  " + line for line in history_table(entries[:RECENT])]
        if len(entries) > RECENT:
            lines.append("  " + MORE_HISTORY.format(ref=staging.get("ref", "REF")))
    return lines


def qa_line(qa: object) -> str:
    """QA's last sign-off in one line; "" before there is one."""
    if not isinstance(qa, Mapping) or not qa.get("verdict"):
        return ""
    sha, by, note = short_sha(qa.get("sha")), qa.get("by") or MISSING, qa.get("note") or ""
    if not qa.get("current"):
        return f"pending (new commits since QA {qa['verdict']} at {sha}, by {by})"
    return f"{qa['verdict']} at {sha} by {by}" + (f": {cut(note, 200)}" if note else "")


def history_table(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    if not entries:
        return [NO_HISTORY]
    rows = [
        (
            stamp(e.get("at")),
            str(e.get("action") or MISSING),
            str(e.get("result") or MISSING),
            short_sha(e.get("sha")),
            str(e.get("by") or MISSING),
            cut(e.get("reason"), REASON_WIDTH),
        )
        for e in entries
    ]
    return table(HISTORY_COLUMNS, rows)


def override_set(ref: str, answer: Mapping[str, Any]) -> str:
    secret = " (secret: shown masked)" if answer.get("secret") else ""
    return SET_ONE.format(key=answer.get("key"), ref=ref, secret=secret)
