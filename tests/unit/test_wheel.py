"""The built wheel holds every file the bot reads beside its own code at run time.

Why this exists: every other test imports `bot` from the checkout (the editable install
maps it there), so `bot/templates/*.html` and `bot/demo_webhooks/*` are always found, and
a file that `[tool.setuptools.package-data]` leaves out would only fail in an installed
bot, the Docker image or `pip install stagingbot`: a dashboard without its pages, a
`stagingbot demo-event` without its payloads.

The wheel is built as the Dockerfile's build stage builds it, from a copy of what that
stage copies (pyproject.toml, README.md, bot/, handlers/): a copy, so that no stale
`*.egg-info/SOURCES.txt` or `build/` of the checkout can add a file, and the checkout is
left as it was. `pip wheel --no-build-isolation --no-index` uses the setuptools of .venv
(the `test` extra asks for one that builds wheels by itself): no network, about a second.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bot import dashboard, demo
from tests.conftest import ROOT

PACKAGES = ("bot", "handlers")  # [tool.setuptools.packages.find] include
BUILD_CONTEXT = ("pyproject.toml", "README.md", *PACKAGES)  # the Dockerfile's COPY lines
# Code that finds files through its own location; each such place is checked below.
READS_BESIDE_ITSELF = re.compile(r"__file__|importlib\.resources|importlib_resources|get_data\(")
KNOWN_READERS = {"bot/dashboard.py", "bot/demo.py"}
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


def package_files() -> set[str]:
    """Every file of the packages in the checkout, as the wheel names it."""
    return {
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The names in a wheel freshly built from a copy of the build context."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    for name in BUILD_CONTEXT:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=IGNORED)
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(path, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    command += ["--no-index", "--disable-pip-version-check", "-q", "-w", str(work / "dist")]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    built = subprocess.run(  # noqa: S603 - this interpreter's pip, fixed arguments
        [*command, str(source)],
        cwd=work,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if built.returncode != 0:
        pytest.fail(
            "building the wheel failed (an older .venv? `scripts/bootstrap test` installs "
            f"the setuptools it needs):\n{built.stdout[-2000:]}\n{built.stderr[-3000:]}"
        )
    (made,) = (work / "dist").glob("stagingbot-*.whl")
    with zipfile.ZipFile(made) as archive:
        return set(archive.namelist())


def test_the_wheel_holds_every_file_of_the_packages(wheel: set[str]) -> None:
    missing = sorted(package_files() - wheel)

    assert not missing, (
        f"not in the built wheel: {missing}; add them to [tool.setuptools.package-data] in "
        "pyproject.toml, or move files the bot does not need at run time out of its packages"
    )


def test_the_wheel_holds_the_templates_and_demo_payloads_the_bot_reads(wheel: set[str]) -> None:
    """Named, so that the check says what matters even if the files were moved."""
    searched = [Path(folder) for folder in dashboard.TEMPLATES.env.loader.searchpath]
    read = {
        path.relative_to(ROOT).as_posix()
        for folder in [*searched, demo.FIXTURES]
        for path in folder.iterdir()
        if path.is_file()
    }
    names = {name for files in demo.FILES.values() for name in files.values()}
    payloads = {f"bot/demo_webhooks/{name}" for name in names}

    assert {"bot/templates/base.html", "bot/templates/detail.html"} <= read
    assert payloads <= read
    assert sorted(read - wheel) == []


def test_only_known_modules_find_files_through_their_own_location() -> None:
    """A new module reading files beside its code (`Path(__file__)`, importlib.resources)
    must have them checked here too: add it to KNOWN_READERS once its files are covered
    (inside bot/ they are, by the first test; outside the packages they never ship)."""
    readers = {
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if READS_BESIDE_ITSELF.search(path.read_text())
    }

    assert readers == KNOWN_READERS
