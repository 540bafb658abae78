"""End to end: an archive the cluster would lose data for is refused, said on the pull
request once, and not tried again on every sweep.

The templates are the shipped ones with the database's StatefulSet set to
`persistentVolumeClaimRetentionPolicy.whenScaled: Delete`: scaling it to zero would delete
its volume claims. Archives come from a slash-command (GitHub's example issue_comment,
moved onto the pull request), from the API, and from the idle timer (the worker's clock
moved forward, the sweep run as its cron job runs it); the real web app and arq worker talk
to the local fake GitHub and Kubernetes API servers.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from bot.config import ApiConfig, ApiToken, Config, Secret
from bot.model import StagingKey, Target
from bot.provision.base import Provisioner
from bot.services import Services
from bot.store import Store
from bot.sweep import SweepReport, sweep
from tests.conftest import ROOT
from tests.fakes.github import FakeGitHub
from tests.fakes.kube import FakeKube
from tests.helpers import REPO, REPO_ID, pr_payload
from tests.integration.test_end_to_end import (
    NAMESPACE,
    SHA1,
    SHA2,
    bot_config,
    completed,
    deliver,
    eventually,
    running_bot,
)
from tests.integration.test_end_to_end_commands import reactions, replies, say, sticky

KEY = StagingKey("github", REPO_ID, 2)
DAY, MINUTE = 86400.0, 60.0
SERVICE_NAME = "  serviceName: db\n"
DELETE_ON_SCALE = SERVICE_NAME + "  persistentVolumeClaimRetentionPolicy: {whenScaled: Delete}\n"
TOKEN = "operator-token-0123456789"
PATH = "/api/stagings/" + quote(f"github:{REPO}#2", safe="")


class Clock:
    """The worker's clock: real time until a test moves it on."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Counting:
    """The bot's own provisioner, counting the archives it is asked for."""

    def __init__(self, inner: Provisioner) -> None:
        self.inner = inner
        self.archives = 0

    async def archive(self, target: Target) -> None:
        self.archives += 1
        await self.inner.archive(target)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Bot:
    """What a test reaches of the running bot: its clock, store and provisioner."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.services: Services | None = None
        self.provisioner: Counting | None = None

    def prepare(self, services: Services) -> None:
        self.provisioner = Counting(services.provisioner)
        services.provisioner = self.provisioner  # type: ignore[assignment]
        services.clock = self.clock
        self.services = services

    @property
    def svc(self) -> Services:
        assert self.services is not None
        return self.services

    @property
    def store(self) -> Store:
        return self.svc.store

    @property
    def archives(self) -> int:
        assert self.provisioner is not None
        return self.provisioner.archives

    async def refusals(self) -> list[dict[str, Any]]:
        history = await self.store.history(KEY)
        return [e for e in history if (e["action"], e["result"]) == ("archive", "refused")]

    async def quiet(self) -> None:
        """Until the staging's job handled everything it was given."""

        async def handled() -> bool:
            record = await self.store.load(KEY)
            return record is not None and record.generation <= (record.number("handled") or 0)

        deadline = time.monotonic() + 20
        while not await handled():
            assert time.monotonic() < deadline, "the staging's job never caught up"
            await asyncio.sleep(0.02)


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    """The shipped templates, the database's StatefulSet deleting its claims when scaled."""
    folder = tmp_path / "manifests"
    shutil.copytree(ROOT / "manifests" / "staging", folder)
    db = folder / "database.yaml"
    text = db.read_text()
    assert SERVICE_NAME in text
    db.write_text(text.replace(SERVICE_NAME, DELETE_ON_SCALE))
    return folder


@pytest.fixture
def config(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path, manifests: Path
) -> Config:
    config = bot_config(redis_url, github, kube, tmp_path, app=True)
    kubernetes = replace(config.kubernetes, manifests=str(manifests))
    api = ApiConfig((ApiToken("ci", Secret(TOKEN), "operator"),))
    return replace(config, kubernetes=kubernetes, api=api)


@pytest.fixture
def bot() -> Bot:
    return Bot()


def scaled(kube: FakeKube) -> tuple[int, int]:
    """The replicas of the web Deployment and the database StatefulSet."""
    web = kube.get("Deployment", NAMESPACE, "web") or {}
    db = kube.get("StatefulSet", NAMESPACE, "db") or {}
    return web["spec"]["replicas"], db["spec"]["replicas"]


def claims(kube: FakeKube) -> dict[str, str]:
    """The namespace's volume claims, name -> uid: the database's data."""
    found = kube.objects("PersistentVolumeClaim", NAMESPACE)
    return {c["metadata"]["name"]: c["metadata"]["uid"] for c in found}


def check(github: FakeGitHub, sha: str = SHA1) -> list[tuple[Any, ...]]:
    """What the checks on `sha` say (not when they said it)."""
    return [
        (run["name"], run["status"], run["conclusion"], run["output"]["title"])
        for run in github.check_runs(REPO, sha)
    ]


async def up(
    client: httpx.AsyncClient, github: FakeGitHub, kube: FakeKube
) -> tuple[list[Any], dict[str, str]]:
    """Open the pull request and wait until its staging runs with the database's claim;
    what its check said, and its claims."""
    await deliver(client, pr_payload("opened"))
    await eventually(lambda: completed(github.check_runs(REPO, SHA1)), "staging running")
    await eventually(lambda: "**running**" in sticky(github), "the comment says running")
    await eventually(lambda: claims(kube), "the database's volume claim")
    return check(github), claims(kube)


def sleeps(report: SweepReport) -> list[str]:
    return [line for line in report.lines() if line.startswith(f"sleep {KEY}")]


def touched(report: SweepReport) -> bool:
    """The sweep queued the staging's job or fired one of its timers."""
    return any(action.key == KEY for action in report.actions) or any(
        str(KEY) in line for line in report.timers
    )


async def test_a_refused_archive_command_is_answered_and_the_staging_keeps_running(
    config: Config, bot: Bot, github: FakeGitHub, kube: FakeKube
) -> None:
    github.set_role(REPO, "maintainer", "write")
    async with running_bot(config, bot.prepare) as client:
        checks, data = await up(client, github, kube)
        assert checks == [("staging", "completed", "success", "Staging is running")]
        workloads = scaled(kube)

        comment_id = await say(client, github, "/staging archive", "maintainer")

        (reply,) = await eventually(lambda: replies(github), "the refusal answered")
        assert reply.splitlines()[1].startswith("@maintainer, the staging was **not archived**")
        assert "StatefulSet db deletes its volume claims when scaled down" in reply
        assert "persistentVolumeClaimRetentionPolicy.whenScaled: Delete" in reply
        assert "set whenScaled: Retain (the default) in its template" in reply
        assert "then `/staging archive` again" in reply and "`/staging destroy`" in reply
        await eventually(lambda: "Not archived" in sticky(github), "the comment's note")
        comment = sticky(github)
        assert "**running**" in comment and "keeps running, its data untouched" in comment
        assert "`/staging destroy`" in comment
        await bot.quiet()
        # Nothing changed: the check, the workloads and the data.
        assert check(github) == checks
        assert scaled(kube) == workloads and workloads[1] == 1
        assert claims(kube) == data
        archived = (kube.namespace(NAMESPACE) or {})["metadata"].get("annotations") or {}
        assert "stagingbot.dev/archived" not in archived
        assert reactions(github, comment_id) == ["eyes", "+1"]  # the command was read
        (refusal,) = await bot.refusals()
        assert refusal["by"] == "maintainer"
        assert refusal["reason"].startswith("not archived: StatefulSet db deletes")
        assert bot.archives == 1

        # The sweep does not try again: twice, five minutes apart.
        for _ in range(2):
            bot.clock.now += 5 * MINUTE
            assert not touched(await sweep(bot.svc))
        await bot.quiet()
        assert bot.archives == 1 and len(await bot.refusals()) == 1
        assert len(replies(github)) == 1
        record = await bot.store.load(KEY)
        assert record is not None and record.get("phase") == "running"
        assert record.get("decision") == ""  # the archive asked for is dropped, not pending
        assert scaled(kube) == workloads and claims(kube) == data

        # Asking again tries again (and says so again).
        await say(client, github, "/staging archive", "maintainer")
        await eventually(lambda: len(replies(github)) == 2, "the second refusal answered")
        assert bot.archives == 2 and scaled(kube) == workloads


async def test_a_refused_archive_through_the_api_is_shown_on_the_pull_request(
    config: Config, bot: Bot, github: FakeGitHub, kube: FakeKube
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with running_bot(config, bot.prepare) as client:
        checks, data = await up(client, github, kube)
        workloads = scaled(kube)

        answer = await client.post(f"{PATH}/archive", headers=headers)
        assert answer.status_code == 202

        await eventually(lambda: "Not archived" in sticky(github), "the comment's note")
        await bot.quiet()
        assert "StatefulSet db deletes its volume claims" in sticky(github)
        assert replies(github) == []  # no comment asked: nothing to answer
        detail = (await client.get(PATH, headers=headers)).json()
        assert detail["state"] == "running" and detail["archived"] is False
        assert detail["reason"].startswith("not archived: StatefulSet db deletes")
        assert detail["idle_until"] is None  # the idle timer will not try again either
        (refusal,) = await bot.refusals()
        assert refusal["by"] == "ci"
        assert check(github) == checks
        assert scaled(kube) == workloads and claims(kube) == data
        bot.clock.now += 5 * MINUTE
        assert not touched(await sweep(bot.svc))
        assert bot.archives == 1


async def test_the_idle_timer_records_a_refusal_once_and_tries_again_after_a_push(
    config: Config, bot: Bot, github: FakeGitHub, kube: FakeKube, manifests: Path
) -> None:
    async with running_bot(config, bot.prepare) as client:
        checks, data = await up(client, github, kube)
        workloads = scaled(kube)
        await bot.quiet()

        bot.clock.now += 3 * DAY + MINUTE  # staging.idle_ttl (3 days) ran out
        assert sleeps(await sweep(bot.svc))

        await eventually(lambda: "Not archived" in sticky(github), "the comment's note")
        await bot.quiet()
        (refusal,) = await bot.refusals()
        assert refusal["by"] == "automatic"
        assert "StatefulSet db deletes its volume claims" in sticky(github)
        assert "this staging is archived at" not in sticky(github)  # no stale idle promise
        assert replies(github) == []  # the timer's refusal is in the comment only
        assert check(github) == checks
        assert scaled(kube) == workloads and claims(kube) == data
        assert bot.archives == 1

        # Two more sweeps, five minutes apart: no second attempt, nothing said again.
        comment = sticky(github)
        for _ in range(2):
            bot.clock.now += 5 * MINUTE
            report = await sweep(bot.svc)
            assert not touched(report), report.lines()
        await bot.quiet()
        assert bot.archives == 1 and len(await bot.refusals()) == 1
        assert sticky(github) == comment

        # Something changes: the template keeps its claims now, and a push deploys it.
        db = manifests / "database.yaml"
        db.write_text(db.read_text().replace(DELETE_ON_SCALE, SERVICE_NAME))
        github.set_head(REPO, 2, SHA2)
        await deliver(client, pr_payload("synchronize", sha=SHA2))
        await eventually(lambda: completed(github.check_runs(REPO, SHA2)), "the push running")
        await eventually(lambda: "Not archived" not in sticky(github), "the note gone")
        await bot.quiet()

        bot.clock.now += 3 * DAY + MINUTE  # idle again
        assert sleeps(await sweep(bot.svc))
        await eventually(lambda: "**archived**" in sticky(github), "archived this time")
        assert bot.archives == 2 and len(await bot.refusals()) == 1
        assert scaled(kube) == (0, 0)
        assert claims(kube) == data  # the same claim: the data kept
