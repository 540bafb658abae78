"""The command line's API commands: check the arguments, call the server, print, pick the exit code.

Results go to stdout (JSON with `--json`), progress and errors to stderr, so a CI job
can pipe `--json` output into another tool while it watches a deploy.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from bot import cli_format, commands
from bot.client import Api, CliError, Exit, parse_ref, server

URL_ENV = "STAGINGBOT_URL"
TOKEN_ENV = "STAGINGBOT_TOKEN"  # noqa: S105 - the variable's name, not a token
ACTIONS = ("deploy", "redeploy", "archive", "restore", "destroy", "extend")
WAITABLE = ("deploy", "redeploy", "restore")
# The highest `commands.max_value_length` a server may be configured with: the server
# applies its own limit, the command line only refuses what no server would take.
MAX_VALUE_LENGTH = 65536
DEFAULT_TIMEOUT = 15 * 60.0
FIRST_POLL, POLL_FACTOR, MAX_POLL = 1.0, 1.5, 10.0
SETTLED = ("running", "failed")
# The head's build failed (staging.wait_for): the deploy ends there, as a failure.
BUILD_FAILED = "build failed"
SPINNER = "|/-\\"
CLEAR_LINE = "\r\x1b[K"

DUPLICATE = "{key} is given twice"
NOTHING_TO_SET = "set needs KEY=VALUE assignments, or --secret KEY"
NO_STDIN = "--secret {key}: no standard input to read the value from"
WAIT_FAILED = "{ref} failed: {reason}"
WAIT_TIMEOUT = "{ref} is still {state} after {seconds:g} s (--timeout)"
ALREADY = "{ref} is already {state} at {sha}: deploy changes nothing (redeploy builds it again)"
STATE_LINE = "[{elapsed:>5}] {ref}: {state}{reason}"


@dataclass
class Terminal:
    """Where the command line writes and how it tells time; tests pass fast fakes."""

    out: TextIO
    err: TextIO
    monotonic: Callable[[], float]  # for --wait's deadline
    now: Callable[[], float]  # wall clock, for "5m ago"
    sleep: Callable[[float], None]
    tty: bool  # stderr is a terminal: --wait may redraw a spinner line
    stdin: TextIO | None = None  # `set --secret` reads the value from here

    @classmethod
    def real(cls) -> Terminal:
        return cls(
            sys.stdout,
            sys.stderr,
            time.monotonic,
            time.time,
            time.sleep,
            sys.stderr.isatty(),
            sys.stdin,
        )

    def print(self, line: str) -> None:
        self.out.write(line + "\n")

    def json(self, value: object) -> None:
        self.out.write(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


def run(args: argparse.Namespace, environ: Mapping[str, str], term: Terminal) -> int:
    """One API command; the exit code says how it ended (bot.client.Exit)."""
    try:
        command = COMMANDS[args.command]
        checked = check(args)
        url, token = server(args.url or environ.get(URL_ENV), args.token or environ.get(TOKEN_ENV))
        with Api(url, token) as api:
            try:
                return command(api, args, checked, term)
            except CliError as exc:
                raise CliError(exc.code, api.scrub(exc.message)) from None
    except CliError as exc:
        term.err.write(f"stagingbot: {exc.message}\n")
        return int(exc.code)


@dataclass(frozen=True)
class Checked:
    """The arguments, checked before anything is sent."""

    ref: str = ""
    assignments: tuple[tuple[str, str], ...] = ()
    keys: tuple[str, ...] = ()
    secret: str = ""  # `set --secret KEY`: its value comes from standard input
    note: str = ""  # qa-pass --note / qa-fail --reason


def check(args: argparse.Namespace) -> Checked:
    ref = parse_ref(args.ref) if getattr(args, "ref", None) else ""
    if getattr(args, "sha", None) and (problem := commands.sha_problem(args.sha)):
        raise CliError(Exit.USAGE, problem)
    if getattr(args, "duration", None) and commands.parse_duration(args.duration) is None:
        word = commands.code(args.duration)
        raise CliError(Exit.USAGE, commands.NOT_A_DURATION.format(word=word))
    if args.command == "set":
        return checked_set(ref, args.assignments, args.secret or "")
    if args.command == "unset":
        for key in args.keys:
            if problem := commands.override_problem(key, None, MAX_VALUE_LENGTH):
                raise CliError(Exit.USAGE, problem)
        return Checked(ref, keys=tuple(dict.fromkeys(args.keys)))
    if args.command in ("qa-pass", "qa-fail"):
        return Checked(
            ref,
            note=qa_note(args.command, getattr(args, "note", "") or getattr(args, "reason", "")),
        )
    return Checked(ref)


def checked_set(ref: str, words: Sequence[str], secret: str) -> Checked:
    pairs = assignments(words)
    if not pairs and not secret:
        raise CliError(Exit.USAGE, NOTHING_TO_SET)
    if secret and (problem := commands.override_problem(secret, None, MAX_VALUE_LENGTH)):
        raise CliError(Exit.USAGE, problem)
    if secret in dict(pairs):
        raise CliError(Exit.USAGE, DUPLICATE.format(key=commands.code(secret)))
    return Checked(ref, assignments=pairs, secret=secret)


def read_secret(key: str, term: Terminal) -> str:
    """The value of `set --secret KEY`: one line from standard input (its line end
    dropped), or typed without echo when standard input is a terminal."""
    stream = term.stdin
    if stream is None:
        raise CliError(Exit.USAGE, NO_STDIN.format(key=key))
    if stream.isatty():
        value = getpass.getpass(f"value of {key} (not shown): ", stream=term.err)
    else:
        value = stream.read(MAX_VALUE_LENGTH + 2)
        value = value[:-1] if value.endswith("\n") else value
        value = value[:-1] if value.endswith("\r") else value
    if problem := commands.override_problem(key, value, MAX_VALUE_LENGTH):
        raise CliError(Exit.USAGE, problem)  # names the key or the rule, never the value
    return value


def qa_note(command: str, text: str) -> str:
    """The note of a sign-off, checked by the rules of `/staging qa-pass` (bot.commands)."""
    note = commands.clean_note(text)
    if command == "qa-fail" and not note:
        raise CliError(Exit.USAGE, "qa-fail needs a --reason: what is wrong")
    if problem := commands.note_problem(note):
        raise CliError(Exit.USAGE, problem)
    return note


def assignments(words: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """`KEY=VALUE` words checked by the rules of `/staging set` (bot.commands)."""
    found: dict[str, str] = {}
    for word in words:
        key, equals, value = word.partition("=")
        if not equals:
            raise CliError(Exit.USAGE, commands.NOT_AN_ASSIGNMENT.format(word=commands.code(word)))
        if problem := commands.override_problem(key, value, MAX_VALUE_LENGTH):
            raise CliError(Exit.USAGE, problem)
        if key in found:
            raise CliError(Exit.USAGE, DUPLICATE.format(key=commands.code(key)))
        found[key] = value
    return tuple(found.items())


Command = Callable[[Api, argparse.Namespace, Checked, Terminal], int]


def list_stagings(api: Api, args: argparse.Namespace, _: Checked, term: Terminal) -> int:
    filters = {"host": args.host, "repo": args.repo, "state": args.state, "q": args.search}
    answer = api.list({k: v for k, v in filters.items() if v})
    if args.json:
        term.json(answer)
    else:
        for line in cli_format.staging_list(answer, term.now()):
            term.print(line)
    return Exit.OK


def show(api: Api, args: argparse.Namespace, checked: Checked, term: Terminal) -> int:
    staging = api.show(checked.ref)
    if args.json:
        term.json(staging)
    else:
        for line in cli_format.staging_detail(staging, term.now()):
            term.print(line)
    return Exit.OK


def history(api: Api, args: argparse.Namespace, checked: Checked, term: Terminal) -> int:
    entries = api.show(checked.ref).get("history") or []
    if args.json:
        term.json(entries)
    else:
        for line in cli_format.history_table(entries):
            term.print(line)
    return Exit.OK


def act(api: Api, args: argparse.Namespace, checked: Checked, term: Terminal) -> int:
    ref, action = checked.ref, args.command
    waiting = getattr(args, "wait", False)
    before = api.show(ref) if waiting else None
    answer = api.act(ref, action, _body(args))
    if not waiting:
        if args.json:
            term.json(answer)
        else:
            term.print(cli_format.ACCEPTED.format(action=action, ref=ref))
            until = cli_format.when(answer.get("until"))
            if until is not None:
                shown = until.strftime("%Y-%m-%d %H:%M UTC")
                term.print(cli_format.KEPT_UNTIL.format(ref=ref, until=shown))
        return Exit.OK
    if not args.json:
        term.err.write(cli_format.ACCEPTED.format(action=action, ref=ref) + "\n")
    assert before is not None
    watch = Watch(api, ref, action, before, getattr(args, "sha", None) or "", term)
    return watch.run(args.timeout, args.json)


def sign_off(api: Api, args: argparse.Namespace, checked: Checked, term: Terminal) -> int:
    answer = api.act(checked.ref, args.command, {"note": checked.note})
    if args.json:
        term.json(answer)
    else:
        term.print(cli_format.ACCEPTED.format(action=args.command, ref=checked.ref))
    return Exit.OK


def _body(args: argparse.Namespace) -> dict[str, str] | None:
    """The action's JSON body: `deploy --sha`, `extend --for`; None when there is none."""
    if getattr(args, "sha", None):
        return {"sha": args.sha}
    if getattr(args, "duration", None):
        return {"duration": args.duration}
    return None


def set_overrides(api: Api, args: argparse.Namespace, checked: Checked, term: Terminal) -> int:
    answers = []
    every = list(checked.assignments)
    if checked.secret:
        every.append((checked.secret, read_secret(checked.secret, term)))
    for key, value in every:
        # `secret`: the server refuses a key that is not one of its secret keys, rather
        # than keep the value as a plain override any viewer can read.
        answer = api.set_override(checked.ref, key, value, secret=key == checked.secret)
        answers.append(answer)
        if not args.json:
            term.print(cli_format.override_set(checked.ref, answer))
    if args.json:
        term.json(answers)
    return Exit.OK


def unset_overrides(api: Api, args: argparse.Namespace, checked: Checked, term: Terminal) -> int:
    for key in checked.keys:
        api.unset_override(checked.ref, key)
        if not args.json:
            term.print(cli_format.UNSET_ONE.format(key=key, ref=checked.ref))
    if args.json:
        term.json({"ref": checked.ref, "unset": list(checked.keys)})
    return Exit.OK


def sweep(api: Api, args: argparse.Namespace, _: Checked, term: Terminal) -> int:
    answer = api.sweep()
    if args.json:
        term.json(answer)
    else:
        term.print(cli_format.SWEEP_QUEUED)
    return Exit.OK


COMMANDS: dict[str, Command] = {
    "list": list_stagings,
    "show": show,
    "history": history,
    "set": set_overrides,
    "unset": unset_overrides,
    "sweep": sweep,
    "qa-pass": sign_off,
    "qa-fail": sign_off,
    **dict.fromkeys(ACTIONS, act),
}


class Watch:
    """`--wait`: poll the staging, with a backoff, until the action has run to an end."""

    def __init__(
        self, api: Api, ref: str, action: str, before: Mapping[str, Any], sha: str, term: Terminal
    ) -> None:
        self.api, self.ref, self.action, self.sha, self.term = api, ref, action, sha, term
        self.before = before
        self.moved = False  # seen in a state other than running/failed since the action
        self.frame = 0
        self.drawn = False
        self.note = ""  # why the wait ended without anything new

    def run(self, timeout: float, as_json: bool) -> int:
        start = self.term.monotonic()
        delay, state = FIRST_POLL, None
        while True:
            staging = self.api.show(self.ref)
            elapsed = self.term.monotonic() - start
            if staging.get("state") != state:
                state = staging.get("state")
                self.change(staging, elapsed)
            # A build that failed ends the wait once the staging moved after the action.
            if state not in (*SETTLED, BUILD_FAILED):
                self.moved = True
            elif self.settled(staging) if state in SETTLED else self.moved:
                return self.end(staging, as_json)
            if elapsed >= timeout:
                self.clear()
                seconds = round(timeout, 1)
                raise CliError(
                    Exit.TIMEOUT, WAIT_TIMEOUT.format(ref=self.ref, state=state, seconds=seconds)
                )
            self.spin(str(state), elapsed)
            self.term.sleep(min(delay, timeout - elapsed))
            delay = min(delay * POLL_FACTOR, MAX_POLL)

    def settled(self, staging: Mapping[str, Any]) -> bool:
        """Running or failed *because of* the action, not still as it was before it."""
        if self.sha and not str(staging.get("sha") or "").startswith(self.sha.lower()):
            return False
        if self.moved or self.new_outcome(staging):
            return True
        # A deploy of a staging already built at that commit changes nothing (redeploy does).
        before = self.before
        same = all(staging.get(name) == before.get(name) for name in ("state", "sha"))
        if self.action == "deploy" and before.get("state") in SETTLED and same:
            sha = cli_format.short_sha(before.get("sha"))
            self.note = ALREADY.format(ref=self.ref, state=staging.get("state"), sha=sha)
            return True
        return False

    def new_outcome(self, staging: Mapping[str, Any]) -> bool:
        """The history has a rollout outcome (running / failed) newer than before the action."""
        old = self.before.get("history") or []
        entries = staging.get("history") or []
        newer = entries[: entries.index(old[0])] if old and old[0] in entries else entries
        return any(entry.get("action") in SETTLED for entry in newer)

    def end(self, staging: Mapping[str, Any], as_json: bool) -> int:
        self.clear()
        if self.note:
            self.term.err.write(self.note + "\n")
        if as_json:
            self.term.json(staging)
        failed = staging.get("state") in ("failed", BUILD_FAILED)
        if failed:
            reason = str(staging.get("reason") or "no reason given")
            self.term.err.write(f"stagingbot: {WAIT_FAILED.format(ref=self.ref, reason=reason)}\n")
            return Exit.FAILED
        if not as_json:
            self.term.print(f"{self.ref} is running: {staging.get('url') or '(no URL)'}")
        return Exit.OK

    def change(self, staging: Mapping[str, Any], elapsed: float) -> None:
        """One line per state: all a log of a CI job shows."""
        self.clear()
        reason = staging.get("reason")
        line = STATE_LINE.format(
            elapsed=f"{elapsed:.0f}s",
            ref=self.ref,
            state=staging.get("state") or "unknown",
            reason=f" ({reason})" if reason else "",
        )
        self.term.err.write(line + "\n")

    def spin(self, state: str, elapsed: float) -> None:
        if self.term.tty:
            self.frame += 1
            mark = SPINNER[self.frame % len(SPINNER)]
            self.term.err.write(f"{CLEAR_LINE}{mark} {state} ({elapsed:.0f}s)")
            self.term.err.flush()
            self.drawn = True

    def clear(self) -> None:
        if self.drawn:
            self.term.err.write(CLEAR_LINE)
            self.drawn = False
