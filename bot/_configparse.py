"""Schema-driven helpers for the config loader: conversion, validation rules, env overrides.

Nothing here knows the config's dataclasses: a schema maps section -> key -> kind of value.
A value converter raises `Invalid` with a reason and the caller adds the key's name; the
table and environment functions collect "key: reason" problems. No message ever shows the
value of a secret. The only I/O is reading the TOML file and `*_FILE` secrets.
"""

from __future__ import annotations

import difflib
import json
import re
import string
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Literal

Kind = Literal[
    "str", "str?", "int", "int?", "float", "duration", "bool", "bool?", "secret", "list", "list?"
]

EXPECTED: dict[Kind, str] = {
    "str": "a string",
    "str?": "a string",
    "int": "an integer",
    "int?": "an integer",
    "float": "a number",
    "duration": 'a number of seconds or a duration like "90s", "5m", "3h", "14d"',
    "bool": "true or false",
    "bool?": "true or false",
    "secret": "a string",
    "list": "a list of strings",
    "list?": "a list of strings",
}
TRUE_WORDS = frozenset({"true", "1", "yes"})
FALSE_WORDS = frozenset({"false", "0", "no"})
DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
IMAGE_FIELDS = ("sha", "short_sha", "branch", "number")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_ENV_KEY = re.compile(r"[A-Z_][A-Z0-9_]*")


class Invalid(ValueError):
    """A value is wrong: the message is the reason, without the key's name."""


def show(value: object) -> str:
    """A short, quoted rendering of a non-secret value for an error message."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _wrong(kind: Kind, value: object) -> Invalid:
    if kind == "secret":  # the value may be the secret itself, mistyped: never echo it
        return Invalid(f"expected {EXPECTED[kind]}")
    return Invalid(f"expected {EXPECTED[kind]}, got {show(value)}")


def from_toml(kind: Kind, value: object) -> object:
    """Check a value read from TOML (or JSON) against its kind; numbers widen to float."""
    if kind in ("str?", "int?", "bool?", "list?") and value is None:  # JSON null: unset
        return None
    if kind in ("list", "list?") and isinstance(value, list):
        return _strings(value)
    if kind in ("str", "str?", "secret") and isinstance(value, str):
        return value
    if kind in ("int", "int?") and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind in ("bool", "bool?") and isinstance(value, bool):
        return value
    is_number = isinstance(value, int | float) and not isinstance(value, bool)  # true isn't 1s
    if kind in ("float", "duration") and is_number and isinstance(value, int | float):
        return float(value)
    if kind == "duration" and isinstance(value, str):
        return parse_duration(value)
    raise _wrong(kind, value)


def _strings(items: list[object]) -> tuple[str, ...]:
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise Invalid(f"expected a list of strings, element {index} is {show(item)}")
    return tuple(str(item) for item in items)


def from_env(kind: Kind, text: str) -> object:
    """Convert an environment variable's text to its kind; "" unsets an optional value.

    A list is comma-separated ("dependabot[bot],renovate[bot]"), blanks around each item
    dropped; "" is the empty list.
    """
    if kind in ("str", "secret"):
        return text
    if kind in ("str?", "int?", "bool?", "list?") and text == "":
        return None
    if kind in ("list", "list?"):
        return tuple(item.strip() for item in text.split(",") if item.strip())
    stripped = text.strip()
    if kind in ("int", "int?"):
        try:
            return int(stripped)
        except ValueError:
            raise _wrong(kind, text) from None
    if kind in ("bool", "bool?"):
        if stripped.lower() in TRUE_WORDS | FALSE_WORDS:
            return stripped.lower() in TRUE_WORDS
        raise Invalid(f"expected true/false/1/0/yes/no, got {show(text)}")
    if kind == "float":
        try:
            return float(stripped)
        except ValueError:
            raise _wrong(kind, text) from None
    if kind == "duration":
        return parse_duration(text)
    return text  # "str?" with a value


def parse_duration(text: str) -> float:
    """Seconds from "90", "90s", "5m", "3h" or "14d" (a decimal count is fine: "1.5h")."""
    stripped = text.strip()
    try:
        return float(stripped)
    except ValueError:
        pass
    match = _DURATION.fullmatch(stripped)
    if match is None:
        raise _wrong("duration", text)
    return float(match.group(1)) * DURATION_UNITS[match.group(2)]


def suggestion(name: str, known: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest known name, or ''."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


Check = tuple[str, str | None, Callable[[str], None]]  # dotted key, value (None: unset), rule


def each(key: str, values: tuple[str, ...] | None, check: Callable[[str], None]) -> list[Check]:
    """One check per element of a list, each named by its index: `key[2]`."""
    return [(f"{key}[{index}]", value, check) for index, value in enumerate(values or ())]


def run_checks(checks: list[Check]) -> list[str]:
    """Apply each rule to its value; the problems name the key."""
    problems = []
    for key, value, check in checks:
        try:
            if value is not None:
                check(value)
        except Invalid as exc:
            problems.append(f"{key}: {exc}")
    return problems


def check_dns_name(text: str) -> None:
    """A DNS name Kubernetes accepts in an Ingress host: lowercase labels joined by dots."""
    labels = text.split(".")
    if len(text) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise Invalid(
            f"{show(text)} is not a valid DNS name "
            "(lowercase letters, digits and '-', labels joined by '.', no trailing dot)"
        )


def check_choice(text: str, options: tuple[str, ...]) -> None:
    if text not in options:
        raise Invalid(f"expected one of {', '.join(options)}, got {show(text)}")


def check_redis_url(text: str) -> None:
    if not text.startswith(REDIS_SCHEMES):
        raise Invalid(f"expected a URL starting with {', '.join(REDIS_SCHEMES)}, got {show(text)}")


def check_http_url(text: str) -> None:
    if not text.startswith(("http://", "https://")):
        raise Invalid(f"expected an http:// or https:// URL, got {show(text)}")


def check_image_template(text: str) -> None:
    """Only {sha} {short_sha} {branch} {number} may appear: the worker fills nothing else."""
    allowed = "{" + "} {".join(IMAGE_FIELDS) + "}"
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise Invalid(
            f"{show(text)} is not a valid template ({exc}); placeholders: {allowed}"
        ) from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in IMAGE_FIELDS or spec or conversion:
            raise Invalid(f"unknown placeholder {{{name}}} in {show(text)}; allowed: {allowed}")


def check_env_key(text: str) -> None:
    """A variable name a staging's environment can hold: upper case, digits and "_"."""
    if not _ENV_KEY.fullmatch(text):
        raise Invalid(
            f"{show(text)} is not a valid key name "
            "(upper-case A-Z, 0-9 and _, not starting with a digit)"
        )


def check_command_prefix(text: str) -> None:
    """What a comment starts with to talk to the bot: one word, so a command can follow it."""
    if not text or any(char.isspace() for char in text):
        raise Invalid(
            f'expected a non-empty word without spaces, like "/staging", got {show(text)}'
        )


def check_not_blank(text: str) -> None:
    """A label name or a login: an empty one could never match."""
    if not text.strip():
        raise Invalid(f"expected a name, got {show(text)}")


def check_repo_path(host: str, text: str) -> None:
    """GitHub: "owner/name". GitLab: "group/project", groups may nest ("group/sub/project")."""
    segments = text.split("/")
    shape_ok = len(segments) == 2 if host == "github" else len(segments) >= 2
    if not shape_ok or not all(_PATH_SEGMENT.fullmatch(s) for s in segments):
        shape = '"owner/name"' if host == "github" else '"group/project" or "group/sub/project"'
        raise Invalid(f"expected {shape}, got {show(text)}")


# --- tables and environment variables, for any schema ------------------------------------

Schema = dict[str, dict[str, Kind]]  # section -> key -> kind
Values = dict[str, dict[str, object]]  # section -> key -> converted value (secrets as str)


def convert_table(
    prefix: str,
    schema: dict[str, Kind],
    table: dict[str, object],
    problems: list[str],
    origin: str = "",
) -> dict[str, object]:
    """Check a table's keys against its schema and convert each value; problems name the key."""
    converted: dict[str, object] = {}
    for key, value in table.items():
        if key not in schema:
            hint = suggestion(f"{prefix}.{key}", [f"{prefix}.{k}" for k in schema])
            problems.append(f"{prefix}.{key}: unknown key{hint}{origin}")
            continue
        try:
            converted[key] = from_toml(schema[key], value)
        except Invalid as exc:
            problems.append(f"{prefix}.{key}: {exc}{origin}")
    return converted


def convert_sections(
    document: dict[str, object], schema: Schema, extra: tuple[str, ...], problems: list[str]
) -> Values:
    """Every `[section]` of a document converted; sections named in `extra` are left alone."""
    values: Values = {name: {} for name in schema}
    for name, table in document.items():
        if name in extra:
            continue
        if name not in schema:
            problems.append(f"{name}: unknown section{suggestion(name, [*schema, *extra])}")
        elif not isinstance(table, dict):
            problems.append(f"{name}: expected a table ([{name}])")
        else:
            values[name] = convert_table(name, schema[name], table, problems)
    return values


def env_name(prefix: str, section: str, key: str) -> str:
    return f"{prefix}{section}_{key}".upper()


def env_table(prefix: str, schema: Schema) -> dict[str, tuple[str, str, bool]]:
    """Variable name -> (section, key, names a file holding the secret) for every key.

    Names are enumerated rather than split on "_" because keys hold underscores
    (webhook_secret, private_key_file); on a clash the longest section name wins.
    """
    table: dict[str, tuple[str, str, bool]] = {}
    for section in sorted(schema, key=len):
        for key, kind in schema[section].items():
            if kind == "secret":
                table[env_name(prefix, section, key) + "_FILE"] = (section, key, True)
            table[env_name(prefix, section, key)] = (section, key, False)
    return table


def apply_env(
    values: Values, schema: Schema, environ: Mapping[str, str], prefix: str, problems: list[str]
) -> None:
    """Override values from `<PREFIX><SECTION>_<KEY>` variables, or `..._FILE` for secrets.

    Any other variable under the prefix is not ours (the config path, Kubernetes service
    links such as STAGINGBOT_SERVICE_HOST) and is ignored.
    """
    table = env_table(prefix, schema)
    for name in sorted(environ):
        if name not in table:
            continue
        section, key, from_file = table[name]
        plain = env_name(prefix, section, key)
        if from_file and plain in environ:
            problems.append(f"{section}.{key}: both {plain} and {name} are set; use one")
            continue
        try:
            text = read_secret_file(environ[name]) if from_file else environ[name]
            values[section][key] = from_env(schema[section][key], text)
        except Invalid as exc:
            problems.append(f"{section}.{key}: {exc} (from {name})")


def read_secret_file(path: str) -> str:
    """A secret mounted as a file (Docker, Kubernetes): one trailing newline is dropped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise Invalid(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise Invalid(f"{path} is not UTF-8 text") from None
    for newline in ("\r\n", "\n"):
        if text.endswith(newline):
            return text[: -len(newline)]
    return text


def read_toml(path: str) -> dict[str, object]:
    """The parsed file; an error says where, never what the offending text was."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise Invalid(f"config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise Invalid(f"config file {path}: invalid TOML: {exc}") from None


def json_list(text: str, name: str, problems: list[str]) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(f"repos: {name} is not valid JSON: {exc}")
        return []


def convert_list(
    name: str,
    entries: object,
    schema: dict[str, Kind],
    required: tuple[str, ...],
    origin: str,
    problems: list[str],
) -> list[tuple[int, dict[str, object]]]:
    """A list of tables (`[[repos]]`), each converted; only the entries without problems."""
    if not isinstance(entries, list):
        problems.append(f"{name}: expected a list of tables ([[{name}]]){origin}")
        return []
    good: list[tuple[int, dict[str, object]]] = []
    for index, entry in enumerate(entries):
        where = f"{name}[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a table with {', '.join(required)}{origin}")
            continue
        count = len(problems)
        values = convert_table(where, schema, entry, problems, origin)
        problems.extend(f"{where}.{key}: required{origin}" for key in required if key not in entry)
        if len(problems) == count:
            good.append((index, values))
    return good
