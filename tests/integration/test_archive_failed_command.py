"""The `command` provisioner's archive program failing for good (exit 1, not 75): said on the
request once, in the history with its output, not tried again by the sweep, and tried again
when a person asks (real scripts, real Redis, the recording host, an injected clock)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from arq import Retry
from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from bot.config import CommandConfig
from bot.hosts.base import Access
from bot.hosts.github_sansio import parse_delivery
from bot.model import Phase, RepoRef, StagingKey
from bot.provision.command import CommandProvisioner
from bot.services import Services
from bot.store import Store
from bot.sweep import sweep
from bot.web import update_for
from handlers.reconcile import PUSH_QUIET, reconcile
from tests.fakes.recording import RecordingHost, host_of
from tests.helpers import REPO, REPO_ID, comment_payload, make_config, pr_payload

REPO_REF = RepoRef("github", REPO_ID, REPO)
KEY = StagingKey("github", REPO_ID, 2)
SHA1 = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
DAY, MINUTE = 86400.0, 60.0
T0 = 1_800_000_000.0
TOKEN = "ghp-test-token"  # the configured GitHub token (tests.helpers.make_config)
# Every step: its name in steps.jsonl. `archive` fails while a file named "forbidden" exists,
# printing what kubectl would, a token included (a tool echoing its credentials).
STEP = f"""\
import json, os, sys
step = os.environ["STAGING_STEP"]
with open("steps.jsonl", "a") as log:
    log.write(json.dumps(step) + "\\n")
if step == "archive" and os.path.exists("forbidden"):
    print("deployment.apps/web scaled")
    sys.exit('Error from server (Forbidden): statefulsets.apps "db" is forbidden '
             '(token {TOKEN})')
print(step, "done")
"""


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def svc(redis_url: str, tmp_path: Path) -> AsyncIterator[Services]:
    (tmp_path / "step.py").write_text(STEP)
    step = (sys.executable, "step.py")
    base = make_config(redis_url)
    programs = dict(create=step, destroy=step, archive=step, restore=step)
    config = replace(
        base,
        staging=replace(base.staging, provisioner="command"),
        command=CommandConfig(**programs, workdir=str(tmp_path)),
    )
    redis = ArqRedis(ConnectionPool.from_url(redis_url))
    host = RecordingHost()
    host.open_pull(REPO_REF, 2, SHA1)
    host.access["octocat"] = Access.WRITE
    provisioner = CommandProvisioner.from_config(config, {"PATH": "/usr/bin:/bin"})
    store = Store(redis, config.redis.key_prefix)
    yield Services(config, store, redis, {"github": host}, provisioner, clock=Clock(T0))
    await redis.aclose(close_connection_pool=True)


def steps(svc: Services) -> list[str]:
    path = Path(svc.config.command.workdir) / "steps.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    path.unlink(missing_ok=True)
    return [json.loads(line) for line in lines]


def at(svc: Services, when: float) -> None:
    assert isinstance(svc.clock, Clock)
    svc.clock.now = when


async def deliver(svc: Services, event_name: str, payload: dict[str, Any]) -> None:
    events = parse_delivery(event_name, payload).events
    updates = [update_for(event, svc.clock()) for event in events]
    await svc.store.record_delivery(f"d-{time.monotonic_ns()}", 60, updates)


async def settle(svc: Services) -> None:
    """Run the staging's job until it neither loops nor asks to come back soon."""
    for _ in range(10):
        try:
            await reconcile({"services": svc}, str(KEY))
        except Retry as retry:
            wait = (retry.defer_score or 0) / 1000
            if wait <= PUSH_QUIET:
                at(svc, svc.clock() + wait)
            continue
        return
    pytest.fail("the staging's job never settled")


async def record(svc: Services) -> dict[str, str]:
    loaded = await svc.store.load(KEY)
    assert loaded is not None
    return dict(loaded.fields)


def replies(svc: Services) -> list[str]:
    return [body for _, body in host_of(svc).replies]


def sticky(svc: Services) -> str:
    (body,) = host_of(svc).comments.values()
    return body


async def failures(svc: Services) -> list[dict[str, Any]]:
    history = await svc.store.history(KEY)
    return [e for e in history if (e["action"], e["result"]) == ("archive", "failed")]


async def running(svc: Services) -> None:
    await deliver(svc, "pull_request", pr_payload("opened"))
    await settle(svc)
    assert (await record(svc))["phase"] == Phase.RUNNING
    steps(svc)


async def test_a_failing_archive_program_is_answered_once_and_not_run_again_by_the_sweep(
    svc: Services,
) -> None:
    await running(svc)
    (Path(svc.config.command.workdir) / "forbidden").touch()

    await deliver(svc, "issue_comment", comment_payload("/staging archive"))
    await settle(svc)

    assert steps(svc) == ["archive"]
    (reply,) = replies(svc)
    assert "@octocat, archiving the staging **failed**: archive exit 1 after" in reply
    assert 'statefulsets.apps "db" is forbidden' in reply
    assert "may have changed part of the staging before it failed" in reply
    assert "`/staging archive` tries again" in reply
    comment = sticky(svc)
    assert "**running**" in comment and "**Archive failed:** archive exit 1" in comment
    (failure,) = await failures(svc)
    assert failure["by"] == "octocat"
    assert failure["reason"].startswith("archive failed: archive exit 1 after")
    assert "deployment.apps/web scaled" in failure["output"]  # what the program printed
    for said in (reply, comment, failure["reason"], failure["output"]):
        assert TOKEN not in said  # masked wherever the program's output goes
    fields = await record(svc)
    assert fields["phase"] == Phase.RUNNING and fields["decision"] == ""

    # Two sweeps later (and past the idle deadline): the program is not run again.
    for later in (T0 + 5 * MINUTE, T0 + 3 * DAY + MINUTE):
        at(svc, later)
        await sweep(svc)
        await settle(svc)
    assert steps(svc) == []
    assert len(replies(svc)) == 1 and len(await failures(svc)) == 1
    assert (await record(svc))["phase"] == Phase.RUNNING

    # Fixed, and asked again: archived, the note gone.
    (Path(svc.config.command.workdir) / "forbidden").unlink()
    await deliver(svc, "issue_comment", comment_payload("/staging archive", comment_id=9002))
    await settle(svc)
    assert steps(svc) == ["archive"]
    assert (await record(svc))["phase"] == Phase.ARCHIVED
    assert "Archive failed" not in sticky(svc) and "**archived**" in sticky(svc)


async def test_exit_75_is_still_retried_later(svc: Services) -> None:
    await running(svc)
    script = Path(svc.config.command.workdir) / "step.py"
    script.write_text(script.read_text().replace("sys.exit('Error", "sys.exit(75); sys.exit('E"))
    (Path(svc.config.command.workdir) / "forbidden").touch()

    await deliver(svc, "issue_comment", comment_payload("/staging archive"))
    with pytest.raises(Retry):  # backs off, the decision kept
        await reconcile({"services": svc}, str(KEY))
    fields = await record(svc)
    assert fields["decision"] == "archive" and fields["phase"] == Phase.RUNNING
    assert replies(svc) == [] and await failures(svc) == []
