"""The reconcile job with the `command` provisioner: real scripts, real Redis, a recording host."""

from __future__ import annotations

import contextlib
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

from bot.config import CommandConfig, StagingConfig
from bot.hosts.github_sansio import parse_delivery
from bot.model import CheckState, Phase, RepoRef, StagingKey
from bot.provision.command import CommandProvisioner
from bot.services import Services
from bot.store import Store
from bot.sweep import ENQUEUE, sweep
from bot.web import update_for
from handlers.reconcile import reconcile
from tests.fakes.recording import RecordingHost
from tests.helpers import REPO, REPO_ID, make_config, pr_payload

REPO_REF = RepoRef("github", REPO_ID, REPO)
KEY = StagingKey("github", REPO_ID, 2)
SHA1 = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
SHA2 = "2" * 40
# Every step: one JSON line (step, SHA, state) in steps.jsonl; `check` is ready once a file
# named "ready" exists; `create` fails while a file named "broken" exists.
STEP = """\
import json, os, sys
step = os.environ["STAGING_STEP"]
with open("steps.jsonl", "a") as log:
    log.write(json.dumps([step, os.environ["STAGING_SHA"], os.environ.get("STAGING_STATE")]))
    log.write("\\n")
if step == "create" and os.path.exists("broken"):
    sys.exit("helm: chart not found")
if step == "check" and not os.path.exists("ready"):
    print("0/1 replicas available")
    sys.exit(1)
if step == "info":
    print("logs,https://logs.example.com/" + os.environ["STAGING_NAME"])
print(step, "done")
"""


@pytest.fixture
async def svc(redis_url: str, tmp_path: Path) -> AsyncIterator[Services]:
    (tmp_path / "step.py").write_text(STEP)
    step = (sys.executable, "step.py")
    base = make_config(redis_url)
    config = replace(
        base,
        staging=replace(base.staging, provisioner="command"),
        command=CommandConfig(
            create=step, destroy=step, check=step, info=step, notify=step, workdir=str(tmp_path)
        ),
    )
    assert isinstance(config.staging, StagingConfig)
    redis = ArqRedis(ConnectionPool.from_url(redis_url))
    host = RecordingHost()
    host.open_pull(REPO_REF, 2, SHA1)
    provisioner = CommandProvisioner.from_config(config, {"PATH": "/usr/bin:/bin"})
    yield Services(
        config, Store(redis, config.redis.key_prefix), redis, {"github": host}, provisioner
    )
    await redis.aclose(close_connection_pool=True)


def host_of(svc: Services) -> RecordingHost:
    return svc.hosts["github"]  # type: ignore[return-value]


def steps(svc: Services) -> list[list[Any]]:
    path = Path(svc.config.command.workdir) / "steps.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    path.unlink(missing_ok=True)
    return [json.loads(line) for line in lines]


def touch(svc: Services, name: str) -> None:
    (Path(svc.config.command.workdir) / name).touch()


async def deliver(svc: Services, action: str, sha: str | None = None) -> None:
    (event,) = parse_delivery("pull_request", pr_payload(action, sha)).events
    await svc.store.record_delivery(f"d-{time.monotonic_ns()}", 60, [update_for(event, 0)])


async def run(svc: Services) -> None:
    with contextlib.suppress(Retry):
        await reconcile({"services": svc}, str(KEY))


async def record(svc: Services) -> dict[str, str]:
    loaded = await svc.store.load(KEY)
    assert loaded is not None
    return dict(loaded.fields)


async def test_a_request_is_created_checked_updated_and_destroyed_by_the_programs(
    svc: Services,
) -> None:
    await deliver(svc, "opened")
    await run(svc)
    assert steps(svc) == [
        ["create", SHA1, None],
        ["info", SHA1, None],
        ["notify", SHA1, "deploying"],
    ]
    await run(svc)
    assert steps(svc) == [["check", SHA1, None]]
    assert (await record(svc))["phase"] == Phase.DEPLOYING

    touch(svc, "ready")
    await run(svc)
    assert steps(svc) == [["check", SHA1, None], ["notify", SHA1, "running"]]
    assert host_of(svc).check_on(SHA1).state is CheckState.SUCCESS
    fields = await record(svc)
    assert json.loads(fields["links"]) == [
        {"name": "logs", "url": "https://logs.example.com/hello-world-pr-2-0085"}
    ]
    running, deployed = (await svc.store.history(KEY))[:2]
    assert running["action"] == "running" and "check:\n$ " in running["output"]
    assert "notify:\n$ " in running["output"]
    assert deployed["action"] == "deploy" and "create done" in deployed["output"]

    host_of(svc).push(2, SHA2)
    await deliver(svc, "synchronize", SHA2)
    await run(svc)
    assert steps(svc) == [
        ["update", SHA2, None],
        ["info", SHA2, None],
        ["notify", SHA2, "deploying"],
    ]

    host_of(svc).close(2)
    await deliver(svc, "closed")
    await run(svc)
    assert steps(svc) == [["destroy", SHA2, None], ["notify", SHA2, "gone"]]
    assert (await record(svc))["phase"] == Phase.GONE


async def test_a_failing_create_fails_the_staging_with_its_output_on_record(
    svc: Services,
) -> None:
    touch(svc, "broken")
    await deliver(svc, "opened")
    await run(svc)

    fields = await record(svc)
    assert fields["phase"] == Phase.FAILED
    assert fields["reason"].startswith("create exit 1 after ")
    assert fields["reason"].endswith(": helm: chart not found")
    check = host_of(svc).check_on(SHA1)
    assert check.state is CheckState.FAILURE and "helm: chart not found" in check.summary
    failed = (await svc.store.history(KEY))[0]
    assert failed["action"] == "failed" and "[exit 1 after " in failed["output"]
    assert [s[0] for s in steps(svc)] == ["create", "notify"]


async def test_the_sweep_never_takes_command_built_stagings_for_orphans_or_deletes_them(
    svc: Services,
) -> None:
    touch(svc, "ready")
    await deliver(svc, "opened")
    await run(svc), await run(svc)
    assert (await record(svc))["phase"] == Phase.RUNNING
    steps(svc)

    quiet = await sweep(svc)
    assert (quiet.stagings, quiet.actions, quiet.orphans, quiet.error) == ((), (), (), "")
    assert [s[0] for s in steps(svc)] == ["check"]  # its health check, nothing else

    host_of(svc).close(2)  # and the webhook is lost
    report = await sweep(svc)
    assert [(action.kind, action.key) for action in report.actions] == [(ENQUEUE, KEY)]
    assert steps(svc) == []  # the sweep itself ran nothing (a closed request is not checked)
    await run(svc)  # the reconcile job asks the host, which says closed
    assert [step[0] for step in steps(svc)] == ["destroy", "notify"]
