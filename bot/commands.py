"""Slash-commands in pull-request comments: find them, check their arguments, describe them."""

from __future__ import annotations

import difflib
import enum
import re
import shlex
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass


class Verb(enum.StrEnum):
    """What a command asks for: the word after the prefix."""

    DEPLOY = "deploy"
    REDEPLOY = "redeploy"
    ARCHIVE = "archive"
    RESTORE = "restore"
    DESTROY = "destroy"
    EXTEND = "extend"
    STATUS = "status"
    SET = "set"
    UNSET = "unset"
    QA_PASS = "qa-pass"  # noqa: S105 - a verb, not a password
    QA_FAIL = "qa-fail"
    HELP = "help"


OPEN_VERBS: frozenset[Verb] = frozenset({Verb.STATUS, Verb.HELP})
"""Anyone who can comment may run these; every other verb changes a staging and needs write."""

QA_VERBS: frozenset[Verb] = frozenset({Verb.QA_PASS, Verb.QA_FAIL})
"""QA's sign-off: who may run these is `qa.allowed` (default: write access), see `handlers.qa`.
The rest of the line is a free-text note, taken as written (not split into words)."""

DEFAULT_PREFIX = "/staging"
MAX_VALUE_LENGTH = 1024
MAX_COMMANDS = 10
MAX_KEY_LENGTH = 128
MAX_NOTE_LENGTH = 500  # a QA note: it shows in the check, the sticky comment and history
# shlex builds each word a character at a time, in time growing with the square of its length.
MAX_LINE_LENGTH = 16 * 1024
KEY_PATTERN = re.compile(r"[A-Z_][A-Z0-9_]*")

DESCRIPTIONS: dict[Verb, str] = {
    Verb.DEPLOY: "create the staging if there is none; on a pull request from a fork this "
    "approves the head commit, or the SHA given, which must be the current head",
    Verb.REDEPLOY: "apply the current head again even if nothing changed, e.g. to rerun migrations",
    Verb.ARCHIVE: "scale the staging to zero but keep its data",
    Verb.RESTORE: "bring an archived staging back as it was",
    Verb.DESTROY: "remove the staging now; a later push or deploy can create it again",
    Verb.EXTEND: "keep the staging from being archived as idle (archived: from being removed) "
    "for the duration given, like `12h` or `2d`, or by default for the configured idle time",
    Verb.STATUS: "answer with the state, URL, commit, overrides and recent history",
    Verb.SET: "set environment variables of this staging, applied by a restart; quote values "
    'with spaces: `GREETING="hello world"`',
    Verb.UNSET: "remove environment variables given with `set`",
    Verb.QA_PASS: "QA passed the staging at the head commit: sets the `staging/qa` check to "
    "success, with your note",
    Verb.QA_FAIL: "QA failed the staging at the head commit: sets `staging/qa` to failure; say why",
    Verb.HELP: "this list",
}
_ARGUMENT_HINTS = {
    Verb.DEPLOY: " [sha]",
    Verb.EXTEND: " [duration]",
    Verb.SET: " KEY=VALUE [KEY=VALUE ...]",
    Verb.UNSET: " KEY [KEY ...]",
    Verb.QA_PASS: " [note]",
    Verb.QA_FAIL: " <reason>",
}
HELP_ITEM = "- `{prefix} {verb}{arguments}` — {description}"

NO_VERB = "no command after `{prefix}`: see `{prefix} help`"
UNKNOWN_VERB = "{verb} is not a command"
DID_YOU_MEAN = "; did you mean `{prefix} {verb}`?"
UNBALANCED_QUOTE = "a quote is not closed: every ' or \" needs its partner on the same line"
TRAILING_BACKSLASH = "the line ends in a backslash that escapes nothing"
TAKES_NO_ARGUMENTS = "`{verb}` takes no arguments, got {arguments}"
DEPLOY_TAKES_ONE_SHA = "`deploy` takes at most one commit SHA, got {arguments}"
EXTEND_TAKES_ONE_DURATION = "`extend` takes at most one duration, got {arguments}"
NOT_A_DURATION = (
    "{word} is not a duration: give a number and a unit, m (minutes), h (hours), d (days) "
    "or w (weeks), like `12h` or `2d`"
)
NOT_A_SHA = "{word} is not a commit SHA: give 7 to 40 hex characters"
SET_NEEDS_ASSIGNMENT = "`set` needs at least one KEY=VALUE"
UNSET_NEEDS_KEY = "`unset` needs at least one KEY"
NOT_AN_ASSIGNMENT = "{word} is not KEY=VALUE"
MISSING_KEY = "{word} has no key before the `=`"
EMPTY_KEY = "a key can't be empty"
KEY_TOO_LONG = "the key {key} is longer than {limit} characters"
KEY_NOT_UPPER_CASE = "{key} is not a valid key; keys are upper case: `{upper}`"
BAD_KEY = "{key} is not a valid key: use A-Z, 0-9 and _, and don't start with a digit"
VALUE_TOO_LONG = "the value of `{key}` is {length} characters long; at most {limit} are allowed"
CONTROL_CHARACTER = "the value of `{key}` contains the control character U+{code:04X}"
NOT_A_CHARACTER = "the value of `{key}` contains U+{code:04X}, which is not a character"
DUPLICATE_KEY = "`{key}` is set twice in one command"
TOO_MANY_COMMANDS = (
    "only the first {limit} command lines of a comment are run; skipped {skipped} from here on"
)
LINE_TOO_LONG = "this command line is {length} characters long; at most {limit} are read"
BLANK_PREFIX = "the command prefix can't be blank"
NEEDS_REASON = "`qa-fail` needs a reason: `{prefix} qa-fail the checkout button does nothing`"
NOTE_TOO_LONG = "the note is {length} characters long; at most {limit} are allowed"
NOTE_CHARACTER = "the note contains U+{code:04X}, which a note may not hold"


@dataclass(frozen=True)
class Command:
    verb: Verb
    line: str  # the command line as written, stripped (for replies)
    sha: str = ""  # deploy <sha>: lower-case hex, 7..40 characters, else ""
    assignments: tuple[tuple[str, str], ...] = ()  # set KEY=VALUE ..., in the order given
    keys: tuple[str, ...] = ()  # unset KEY ..., without repeats, in the order given
    seconds: float | None = None  # extend [duration]: None for the configured default
    note: str = ""  # qa-pass / qa-fail: the rest of the line, spaces collapsed


@dataclass(frozen=True)
class Problem:
    line: str  # the offending line, stripped
    message: str  # what is wrong, in words a user understands


@dataclass(frozen=True)
class Parsed:
    commands: tuple[Command, ...]
    problems: tuple[Problem, ...]


_VERBS = {verb.value: verb for verb in Verb}
_SHA = re.compile(r"[0-9a-fA-F]{7,40}")
_DURATION = re.compile(r"(?P<count>[0-9]{1,6})(?P<unit>[mhdwMHDW])")
_DURATION_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# CommonMark: fences, block quotes and HTML comments may be indented by at most 3 spaces.
_FENCE_OPEN = re.compile(r" {0,3}(?P<run>`{3,}|~{3,})(?P<info>.*)")
_FENCE_CLOSE = re.compile(r" {0,3}(?P<run>`{3,}|~{3,})[ \t]*")
_HTML_COMMENT_OPEN = re.compile(r" {0,3}<!--")
_QUOTE_OR_COMMENT = re.compile(r" {0,3}(>|<!--)")
# Everything `re`'s \s matches (no whitespace lies above U+3000), so the prefix test and
# the word splitting agree on what a space is, a no-break space included.
_WHITESPACE = "".join(char for char in map(chr, range(0x3001)) if char.isspace())
_ECHO_LENGTH = 40  # user text quoted back in a message is cut to this
_SUGGEST_LENGTH = 20  # no verb is near a word longer than this


def parse(
    body: str, prefix: str = DEFAULT_PREFIX, max_value_length: int = MAX_VALUE_LENGTH
) -> Parsed:
    """The commands in a comment, and a problem for each command line that isn't one.

    Raises `ValueError` only for a blank prefix (a configuration error, not the user's).
    """
    prefix = prefix.strip()
    if not prefix:
        raise ValueError(BLANK_PREFIX)
    pattern = re.compile(rf" {{0,3}}{re.escape(prefix)}(?=\s|\Z)", re.IGNORECASE)
    found = [
        (line.strip(), line[match.end() :])
        for line in _prose_lines(body)
        if (match := pattern.match(line))
    ]
    commands: list[Command] = []
    problems: list[Problem] = []
    for line, rest in found[:MAX_COMMANDS]:
        outcome = _parse_line(line, rest, prefix, max_value_length)
        if isinstance(outcome, Command):
            commands.append(outcome)
        else:
            problems.append(outcome)
    if len(found) > MAX_COMMANDS:
        skipped = len(found) - MAX_COMMANDS
        message = TOO_MANY_COMMANDS.format(limit=MAX_COMMANDS, skipped=skipped)
        problems.append(Problem(found[MAX_COMMANDS][0], message))
    return Parsed(tuple(commands), tuple(problems))


def help_text(prefix: str = DEFAULT_PREFIX) -> str:
    """A markdown list of every verb with its arguments and what it does."""
    return "\n".join(
        HELP_ITEM.format(
            prefix=prefix.strip(),
            verb=verb,
            arguments=_ARGUMENT_HINTS.get(verb, ""),
            description=DESCRIPTIONS[verb],
        )
        for verb in Verb
    )


def suggest(word: str) -> str | None:
    """The verb closest to a mistyped one, or None when none is close."""
    if len(word) > _SUGGEST_LENGTH:
        return None
    close = difflib.get_close_matches(word.lower(), list(_VERBS), n=1)
    return close[0] if close else None


def _prose_lines(body: str) -> Iterator[str]:
    """The lines a reader sees as text: not code, not quoted, not inside an HTML comment."""
    block_ends: Callable[[str], bool] | None = None
    for line in _LINE_BREAK.split(body):
        if block_ends is not None:
            if block_ends(line):
                block_ends = None
            continue
        block_ends = _block_opened_by(line)
        # Indented code (4 spaces, a tab) is skipped by the prefix test, which allows 3 spaces.
        if block_ends is None and not _QUOTE_OR_COMMENT.match(line):
            yield line


def _block_opened_by(line: str) -> Callable[[str], bool] | None:
    """The test for the last line of the block `line` opens: a code fence or HTML comment."""
    fence = _FENCE_OPEN.fullmatch(line)
    if fence and not (fence["run"][0] == "`" and "`" in fence["info"]):
        run = fence["run"]
        return lambda later: _closes_fence(later, run)
    if _HTML_COMMENT_OPEN.match(line) and "-->" not in line:
        return lambda later: "-->" in later
    return None


def _closes_fence(line: str, run: str) -> bool:
    close = _FENCE_CLOSE.fullmatch(line)
    return close is not None and close["run"][0] == run[0] and len(close["run"]) >= len(run)


def _parse_line(line: str, rest: str, prefix: str, max_value_length: int) -> Command | Problem:
    """One command line: `rest` is what follows the prefix."""
    if len(line) > MAX_LINE_LENGTH:
        return Problem(line, LINE_TOO_LONG.format(length=len(line), limit=MAX_LINE_LENGTH))
    first, *note = rest.split(None, 1) or [""]
    qa_verb = _VERBS.get(first.lower())
    if qa_verb is not None and qa_verb in QA_VERBS:  # prose: an apostrophe is no open quote
        outcome = _qa(qa_verb, line, note[0] if note else "", prefix)
        return Problem(line, outcome) if isinstance(outcome, str) else outcome
    try:
        words = _split_words(rest)
    except ValueError as error:
        quote = "quotation" in str(error)  # shlex: "No closing quotation" / "No escaped ..."
        return Problem(line, UNBALANCED_QUOTE if quote else TRAILING_BACKSLASH)
    if not words or not words[0]:
        return Problem(line, NO_VERB.format(prefix=prefix))
    verb = _VERBS.get(words[0].lower())
    if verb is None:
        return Problem(line, _unknown_verb(words[0], prefix))
    outcome = _ARGUMENT_PARSERS.get(verb, _no_arguments)(verb, line, words[1:], max_value_length)
    return Problem(line, outcome) if isinstance(outcome, str) else outcome


def _split_words(text: str) -> list[str]:
    """`shlex.split(text, comments=False, posix=True)`, also splitting at Unicode spaces."""
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace = _WHITESPACE
    lexer.whitespace_split = True
    lexer.commenters = ""
    return list(lexer)


def _unknown_verb(word: str, prefix: str) -> str:
    close = suggest(word)
    hint = DID_YOU_MEAN.format(prefix=prefix, verb=close) if close else ""
    return UNKNOWN_VERB.format(verb=code(word)) + hint


# Each takes the verb, the stripped line, the words after the verb and the longest value
# allowed, and returns the command or what is wrong with it.
_ArgumentParser = Callable[[Verb, str, list[str], int], Command | str]


def _no_arguments(verb: Verb, line: str, words: list[str], _limit: int) -> Command | str:
    if words:
        return TAKES_NO_ARGUMENTS.format(verb=verb, arguments=code(" ".join(words)))
    return Command(verb, line)


def _deploy(verb: Verb, line: str, words: list[str], _limit: int) -> Command | str:
    if not words:
        return Command(verb, line)
    if len(words) > 1:
        return DEPLOY_TAKES_ONE_SHA.format(arguments=code(" ".join(words)))
    if not _SHA.fullmatch(words[0]):
        return NOT_A_SHA.format(word=code(words[0]))
    return Command(verb, line, sha=words[0].lower())


def _set(verb: Verb, line: str, words: list[str], limit: int) -> Command | str:
    if not words:
        return SET_NEEDS_ASSIGNMENT
    assignments: dict[str, str] = {}
    for word in words:
        problem = _assignment_problem(word, limit)
        key, _, value = word.partition("=")
        if problem is None and key in assignments:
            problem = DUPLICATE_KEY.format(key=key)
        if problem is not None:
            return problem
        assignments[key] = value
    return Command(verb, line, assignments=tuple(assignments.items()))


def _unset(verb: Verb, line: str, words: list[str], _limit: int) -> Command | str:
    if not words:
        return UNSET_NEEDS_KEY
    for key in words:
        if (problem := _key_problem(key)) is not None:
            return problem
    return Command(verb, line, keys=tuple(dict.fromkeys(words)))


def _qa(verb: Verb, line: str, text: str, prefix: str) -> Command | str:
    note = clean_note(text)
    if verb is Verb.QA_FAIL and not note:
        return NEEDS_REASON.format(prefix=prefix)
    return note_problem(note) or Command(verb, line, note=note)


def clean_note(text: str) -> str:
    """A note as kept: one line, runs of spaces as one, surrounding quotes dropped."""
    note = " ".join(text.split())
    if len(note) >= 2 and note[0] == note[-1] and note[0] in "\"'":
        note = note[1:-1].strip()
    return note


def note_problem(note: str) -> str | None:
    """Why `note` (already `clean_note`d) cannot be a QA note; None when it can."""
    if len(note) > MAX_NOTE_LENGTH:
        return NOTE_TOO_LONG.format(length=len(note), limit=MAX_NOTE_LENGTH)
    for char in note:
        if unicodedata.category(char) in ("Cc", "Cs"):
            return NOTE_CHARACTER.format(code=ord(char))
    return None


def _extend(verb: Verb, line: str, words: list[str], _limit: int) -> Command | str:
    if not words:
        return Command(verb, line)
    if len(words) > 1:
        return EXTEND_TAKES_ONE_DURATION.format(arguments=code(" ".join(words)))
    seconds = parse_duration(words[0])
    if seconds is None:
        return NOT_A_DURATION.format(word=code(words[0]))
    return Command(verb, line, seconds=seconds)


def parse_duration(word: str) -> float | None:
    """Seconds from `90m`, `12h`, `2d`, `1w` (a whole number, then the unit); None when the
    word is not one of those, or not above zero. The API and the command line use it too."""
    match = _DURATION.fullmatch(word.strip())
    if match is None or int(match["count"]) == 0:
        return None
    return float(int(match["count"]) * _DURATION_UNITS[match["unit"].lower()])


_ARGUMENT_PARSERS: dict[Verb, _ArgumentParser] = {
    Verb.DEPLOY: _deploy,
    Verb.EXTEND: _extend,
    Verb.SET: _set,
    Verb.UNSET: _unset,
}


def override_problem(key: str, value: str | None, limit: int) -> str | None:
    """Why `key` (and `value`) cannot be a staging's override, by the rules of `set` (the
    API and the dashboard apply them too); None when it can. Never quotes the value."""
    return _key_problem(key) or (None if value is None else _value_problem(key, value, limit))


def _assignment_problem(word: str, limit: int) -> str | None:
    key, equals, value = word.partition("=")
    if not equals:
        return NOT_AN_ASSIGNMENT.format(word=code(word))
    if not key:
        return MISSING_KEY.format(word=code(word))
    return _key_problem(key) or _value_problem(key, value, limit)


def _key_problem(key: str) -> str | None:
    if not key:
        return EMPTY_KEY
    if len(key) > MAX_KEY_LENGTH:
        return KEY_TOO_LONG.format(key=code(key), limit=MAX_KEY_LENGTH)
    if KEY_PATTERN.fullmatch(key):
        return None
    # ASCII only: str.upper() turns some other letters into ASCII ones ("ß" into "SS").
    if key.isascii() and KEY_PATTERN.fullmatch(key.upper()):
        return KEY_NOT_UPPER_CASE.format(key=code(key), upper=key.upper())
    return BAD_KEY.format(key=code(key))


def _value_problem(key: str, value: str, limit: int) -> str | None:
    if len(value) > limit:
        return VALUE_TOO_LONG.format(key=key, length=len(value), limit=limit)
    for char in value:
        category = unicodedata.category(char)
        if category == "Cc":
            return CONTROL_CHARACTER.format(key=key, code=ord(char))
        if category == "Cs":  # a lone surrogate: no encoding can carry it to the cluster
            return NOT_A_CHARACTER.format(key=key, code=ord(char))
    return None


def code(text: str) -> str:
    """User text as a markdown code span, cut short, that no backtick in it can break out of.

    Echoed outside a code span, a comment could make the bot's reply @mention people.
    """
    if len(text) > _ECHO_LENGTH:
        text = text[: _ECHO_LENGTH - 1] + "…"
    if not text:
        return '`""`'
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if longest else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def sha_problem(word: str) -> str | None:
    """Why `word` cannot be the SHA of `deploy` (the command line checks it too); None if it can."""
    return None if _SHA.fullmatch(word) else NOT_A_SHA.format(word=code(word))
