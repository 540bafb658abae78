"""The sweep looks again at stagings waiting for their build: a lost build event's backstop."""

from __future__ import annotations

from bot.model import StagingKey
from bot.store import StagingRecord
from bot.sweep_plan import differs
from handlers import plan
from handlers.plan import Plan, Want

KEY = StagingKey("github", 186853002, 2)
OLD, NEW = "a" * 40, "b" * 40


def record(phase: str) -> StagingRecord:
    fields = {"phase": phase, "sha": OLD, "generation": "3", "handled": "3"}
    fields[plan.APPLIED] = f"{OLD}||"
    return StagingRecord(KEY, fields)


def test_a_staging_waiting_for_its_build_is_checked_again() -> None:
    wanted = Plan(Want.RUNNING, NEW)

    assert differs(record("waiting for build"), wanted) == (
        "waiting for build of bbbbbbb: the build is checked again"
    )
    assert "checked again" in differs(record("build failed"), wanted)


def test_a_running_staging_at_its_head_is_left_alone() -> None:
    assert differs(record("running"), Plan(Want.RUNNING, OLD)) == ""
