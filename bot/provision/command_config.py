"""The rules a `[command]` section must follow; problems name the key, as the loader's do.

Kept beside the provisioner it configures; `bot.config` calls `problems` while validating.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import CommandConfig

STEPS = ("create", "update", "archive", "restore", "check", "destroy", "info", "notify")
REQUIRED = ("create", "destroy")
# The only variables a step inherits from the bot (plus `command.pass_env`): the bot's own
# credentials stay out of programs that did not ask for them.
INHERITED = ("PATH", "HOME", "LANG")
# What the bot sets for every step (docs/provisioners.md); notify adds the last two.
VARIABLES = (
    "STAGING_STEP",
    "STAGING_NAME",
    "STAGING_NAMESPACE",
    "STAGING_HOST",
    "STAGING_URL",
    "STAGING_SHA",
    "STAGING_BRANCH",
    "STAGING_PR",
    "STAGING_REPO",
    "STAGING_HOST_KIND",
    "STAGING_IMAGE",
    "STAGING_OVERRIDE_KEYS",
    "STAGING_OVERRIDE_PREFIX",
    "STAGING_STATE",
    "STAGING_REASON",
)
# Prefixes whose variables change how programs run, not what they deploy: an override key
# from a comment must never become LD_PRELOAD.
RESERVED_PREFIXES = ("LD_", "DYLD_")
MIN_OUTPUT, MAX_OUTPUT = 1024, 16 * 1024 * 1024
_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_PASS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def problems(command: CommandConfig, provisioner: str) -> list[str]:
    """Everything wrong with `[command]`; files are only checked when it is the provisioner."""
    found: list[str] = []
    used = provisioner == "command"
    for step in STEPS:
        argv: tuple[str, ...] | None = getattr(command, step)
        if argv is None:
            if used and step in REQUIRED:
                found.append(
                    f'command.{step}: required with staging.provisioner = "command" '
                    '(an argv list, e.g. ["./deploy/staging.sh", "' + step + '"])'
                )
            continue
        found += [f"command.{step}: {problem}" for problem in _argv_problems(argv)]
    if (command.archive is None) != (command.restore is None):
        found.append("command.restore: archive and restore are set together, or neither")
    found += _setting_problems(command)
    if used and not found:
        found += _file_problems(command)
    return found


def _argv_problems(argv: tuple[str, ...]) -> list[str]:
    if not argv:
        return ['empty: an argv list needs at least the program, e.g. ["./deploy.sh"]']
    if not argv[0].strip():
        return ["the program (element 0) is blank"]
    return [f"element {i} contains a NUL character" for i, arg in enumerate(argv) if "\0" in arg]


def _setting_problems(command: CommandConfig) -> list[str]:
    found = []
    prefix = command.env_prefix
    if not _NAME.fullmatch(prefix) or not prefix.endswith("_"):
        found.append(
            f"command.env_prefix: expected upper-case A-Z, 0-9 and _ ending in _, "
            f'like "STAGING_ENV_", got {prefix!r}'
        )
    elif prefix.startswith(RESERVED_PREFIXES):
        found.append(
            f"command.env_prefix: {prefix!r} may not start with "
            f"{', '.join(RESERVED_PREFIXES)}: an override could change how programs run"
        )
    elif taken := [v for v in (*VARIABLES, *INHERITED, *command.pass_env) if v.startswith(prefix)]:
        found.append(
            f"command.env_prefix: {prefix!r} would let an override replace {taken[0]}; "
            'choose a prefix no other variable starts with, like "STAGING_ENV_"'
        )
    found += [
        f"command.pass_env[{index}]: {name!r} is not a variable name"
        for index, name in enumerate(command.pass_env)
        if not _PASS_NAME.fullmatch(name)
    ]
    if command.timeout < 1:
        found.append(f"command.timeout: expected at least 1 s, got {command.timeout:g} s")
    if not MIN_OUTPUT <= command.output_limit <= MAX_OUTPUT:
        found.append(
            f"command.output_limit: expected {MIN_OUTPUT}..{MAX_OUTPUT} bytes, "
            f"got {command.output_limit}"
        )
    return found


def _file_problems(command: CommandConfig) -> list[str]:
    """A mistyped script path fails at start-up, not on the first pull request."""
    workdir = command.workdir or os.getcwd()
    if not os.path.isdir(workdir):
        return [f"command.workdir: {workdir} does not exist or is not a directory"]
    found = []
    for step in STEPS:
        argv: tuple[str, ...] | None = getattr(command, step)
        program = argv[0] if argv else ""
        if "/" not in program:
            continue  # looked up on PATH when it runs
        path = os.path.join(workdir, program)
        if not os.path.isfile(path):
            found.append(f"command.{step}: {program} does not exist (looked in {workdir})")
        elif not os.access(path, os.X_OK):
            found.append(f"command.{step}: {program} is not executable (chmod +x {program})")
    return found
