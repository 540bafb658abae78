"""The `command` provisioner's sweep duties: decisions in a state folder, `check` as health."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bot.errors import TemporaryError
from bot.model import StagingKey
from bot.provision.decisions import Decision
from tests.integration.test_command_provisioner import (
    KEY,
    TARGET,
    provisioner,
    python_step,
    recording,
    runs,
)

OTHER = StagingKey("gitlab", 7, 3)
# `check`: unhealthy when the staging's PR number is listed in sick.txt, saying why.
CHECK = """\
import os, sys
sick = open("sick.txt").read().split() if os.path.exists("sick.txt") else []
if os.environ["STAGING_PR"] in sick:
    print("web answers 502 on /healthz")
    sys.exit(1)
"""


async def test_decisions_are_kept_in_the_state_folder_across_restarts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    prov = recording(tmp_path, state_dir=str(state))
    decision = Decision(KEY, TARGET.sha, by="octocat", at=1700000000.0, reason="removed")

    await prov.remember_decision("default", decision)
    await prov.remember_decision("default", Decision(OTHER, "f" * 40))
    await prov.forget_decision("default", OTHER)

    again = recording(tmp_path, state_dir=str(state))  # a new process, the same folder
    assert await again.decisions("default") == {KEY: decision}
    assert [p.name for p in state.iterdir() if not p.name.startswith(".")] == ["decisions.json"]


async def test_an_unreadable_state_file_is_an_error_not_an_empty_list(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "decisions.json").write_text("{not json")
    prov = recording(tmp_path, state_dir=str(state))
    with pytest.raises(TemporaryError, match="not a decisions file"):
        await prov.decisions("default")
    with pytest.raises(TemporaryError):
        await prov.remember_decision("default", Decision(KEY, TARGET.sha))


async def test_without_a_state_folder_nothing_is_kept(tmp_path: Path) -> None:
    prov = recording(tmp_path)
    await prov.remember_decision("default", Decision(KEY, TARGET.sha))
    assert await prov.decisions("default") == {}


async def test_check_is_the_health_check_run_once_per_running_staging(tmp_path: Path) -> None:
    prov = provisioner(
        tmp_path,
        create=python_step(tmp_path, "noop.py", ""),
        destroy=python_step(tmp_path, "noop2.py", ""),
        check=python_step(tmp_path, "check.py", CHECK),
    )
    third = replace(TARGET, key=replace(KEY, number=3), number=3)
    assert await prov.health("default", [TARGET, third]) == {}

    (tmp_path / "sick.txt").write_text("3")
    assert await prov.health("default", [TARGET, third]) == {
        third.key: "web answers 502 on /healthz"
    }
    assert prov.take_output(third).text == ""  # the sweep's checks stay out of the history
    assert runs(tmp_path) == []


async def test_without_check_every_staging_is_healthy(tmp_path: Path) -> None:
    assert await recording(tmp_path).health("default", [TARGET]) == {}
