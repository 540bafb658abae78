"""docs/configuration.md, config.example.toml and bot/config.py name the same keys with the
same defaults, so none of them can drift; each failure says which key is missing where.

- bot/config.py (its dataclasses, through `SCHEMA`) is the truth: every key it reads.
- docs/configuration.md: one table row per key under `### [section]`, whose `default`
  cell is a TOML value in backticks (`"10m"`, `[]`, `8080`) or words (`required`, `unset`,
  `staging.drafts`, ...) that stand for "no value of its own".
- config.example.toml: every key set or commented out (`# key = value`), the comment
  above it saying `Default: VALUE` (or `Required`) in the same terms.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

from bot import _configparse
from bot.config import SCHEMA, SECTIONS, ApiToken, Config, RepoConfig, Secret

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"
DOCS = ROOT / "docs" / "configuration.md"
NO_VALUE = object()  # a default given in words: "required", "unset", "inherits ..."
_HEADER = re.compile(r"^(?:# )?\[\[?([\w.]+)\]\]?\s*$")
_SETTING = re.compile(r"^(?:# )?(\w+) = ")
_DOC_SECTION = re.compile(r"^### `\[\[?([\w.]+)\]\]?`")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_DEFAULT = re.compile(r'Default: ("[^"]*"|\[[^\]]*\]|-?\d+(?:\.\d+)?\b|true\b|false\b)?')


def truth() -> dict[str, dict[str, Any]]:
    """section -> key -> (kind, default) from bot/config.py."""
    defaults = Config()
    keys = {
        name: {key: (kind, getattr(getattr(defaults, name), key)) for key, kind in kinds.items()}
        for name, kinds in SCHEMA.items()
    }
    repo, token = RepoConfig(host="", repo=""), ApiToken(name="", token=Secret(""), role="")
    keys["repos"] = {
        f.name: (_configparse_kind(RepoConfig, f.name), getattr(repo, f.name))
        for f in fields(RepoConfig)
    }
    keys["api.tokens"] = {
        f.name: (_configparse_kind(ApiToken, f.name), getattr(token, f.name))
        for f in fields(ApiToken)
    }
    return keys


def _configparse_kind(cls: type[Any], name: str) -> str:
    from bot.config import REPO_SCHEMA, TOKEN_SCHEMA

    return str((REPO_SCHEMA if cls is RepoConfig else TOKEN_SCHEMA)[name])


# --- reading the two documents ---------------------------------------------------------


def literal(text: str) -> object:
    """A TOML value, or NO_VALUE when `text` is not one (words)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return NO_VALUE


def docs_defaults(text: str) -> dict[str, dict[str, object]]:
    """section -> key -> the default cell read as a TOML value (or NO_VALUE)."""
    found: dict[str, dict[str, object]] = {}
    section, column = "", -1
    for line in text.split("\n## Reference", 1)[-1].splitlines():
        if heading := _DOC_SECTION.match(line):
            section, column = heading.group(1), -1
            continue
        if not section or not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in _CELL_SPLIT.split(line.strip().strip("|"))]
        if "default" in cells:
            column = cells.index("default")
            continue
        keys = re.findall(r"`(\w+)`", cells[0])
        if column < 0 or not keys or not re.fullmatch(r"(`\w+`,?\s*)+", cells[0]):
            continue
        default = re.match(r"`([^`]*)`(?!')", cells[column])
        value = literal(default.group(1)) if default else NO_VALUE
        for key in keys:
            found.setdefault(section, {})[key] = value
    return found


def example_defaults(text: str) -> dict[str, dict[str, object | None]]:
    """section -> key -> the `Default:` of the comment above it (NO_VALUE: in words;
    None: the comment gives no default and does not say `Required`)."""
    found: dict[str, dict[str, object | None]] = {}
    lines = text.splitlines()
    section = ""
    for index, line in enumerate(lines):
        if header := _HEADER.match(line):
            section = header.group(1)
        elif (setting := _SETTING.match(line)) and section:
            comment = " ".join(_comment_above(lines, index))
            match = _DEFAULT.search(comment)
            if match:
                value = literal(match.group(1)) if match.group(1) else NO_VALUE
            else:
                value = NO_VALUE if "Required" in comment else None
            found.setdefault(section, {})[setting.group(1)] = value
    return found


def _comment_above(lines: list[str], index: int) -> list[str]:
    """The prose comment lines above line `index`, past other settings and headers (a
    block may describe several keys, e.g. `archive` and `restore`)."""
    at = index - 1
    while at >= 0 and (_SETTING.match(lines[at]) or _HEADER.match(lines[at])):
        at -= 1
    block: list[str] = []
    while at >= 0 and lines[at].startswith("#") and not _SETTING.match(lines[at]):
        if _HEADER.match(lines[at]):
            break
        block.insert(0, lines[at].lstrip("# "))
        at -= 1
    return block


# --- comparing ---------------------------------------------------------------------------


def same_default(kind: str, default: object, written: object) -> bool:
    """Whether a default written in a document means the code's default."""
    real = default.reveal() if isinstance(default, Secret) else default
    if written is NO_VALUE:  # words: only for a key without a value of its own
        return real in (None, "", ())
    try:
        return _configparse.from_toml(kind, written) == real  # type: ignore[arg-type]
    except _configparse.Invalid:
        return False


def show(value: object) -> str:
    return "(in words)" if value is NO_VALUE else repr(value)


def drift() -> list[str]:
    """Every disagreement, one line each, saying which key is missing or wrong where."""
    code = truth()
    docs = docs_defaults(DOCS.read_text())
    example = example_defaults(EXAMPLE.read_text())
    problems: list[str] = []
    places = (("docs/configuration.md", docs), ("config.example.toml", example))
    for place, written in places:
        for section in sorted(set(code) | set(written)):
            for key in sorted(set(code.get(section, {})) | set(written.get(section, {}))):
                name = f"{section}.{key}"
                if key not in code.get(section, {}):
                    problems.append(f"{name}: in {place}, but bot/config.py has no such key")
                elif key not in written.get(section, {}):
                    problems.append(f"{name}: in bot/config.py, missing from {place}")
                else:
                    kind, default = code[section][key]
                    value = written[section][key]
                    if value is None:
                        problems.append(f"{name}: {place} gives no 'Default:' (or 'Required')")
                    elif not same_default(kind, default, value):
                        problems.append(
                            f"{name}: {place} says the default is {show(value)}, "
                            f"bot/config.py has {default!r}"
                        )
    return problems


def test_every_key_is_documented_in_both_places_with_the_code_default() -> None:
    assert drift() == []


def test_every_section_of_the_code_is_known_here() -> None:
    assert set(truth()) == {*SECTIONS, "repos", "api.tokens"}


def test_a_missing_row_and_a_wrong_default_are_reported_by_key_and_place() -> None:
    docs = docs_defaults(
        "## Reference\n### `[server]`\n| key | type | default |\n|---|---|---|\n"
        '| `port` | integer | `9090` |\n| `bogus` | string | `""` |\n'
    )
    assert docs == {"server": {"port": 9090, "bogus": ""}}
    example = example_defaults(
        '[server]\n# Port. Default: 8080.\nport = 8080\n# Where.\nhost = "x"\n'
    )
    assert example == {"server": {"port": 8080, "host": None}}
    kind, default = truth()["server"]["port"]
    assert same_default(kind, default, 8080) and not same_default(kind, default, 9090)
    assert same_default("duration", 600.0, "10m")
    assert same_default("int?", None, NO_VALUE) and not same_default("int", 8080, NO_VALUE)
