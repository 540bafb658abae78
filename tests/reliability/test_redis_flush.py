"""Redis wiped (FLUSHALL) while a rollout is in flight: one sweep restores every record from
the cluster and GitHub, and nothing is destroyed or deployed again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from bot.provision import overrides
from tests.fakes.github import FakeGitHub
from tests.fakes.kube import FakeKube
from tests.helpers import REPO
from tests.reliability import secrets_for_scan as secrets
from tests.reliability.conftest import LeakScan
from tests.reliability.harness import (
    IMAGE,
    PREFIX,
    SECRET_KEY,
    Bot,
    applies_to,
    eventually,
    namespace_of,
    opened,
    pushed,
    record,
    running_bot,
    settled,
    sha_for,
    staging_key,
    sweep_once,
    web_image,
)

pytestmark = pytest.mark.reliability
RUNNING = [2, 3, 4, 5]
LOST = 6  # opened while Redis was empty: its webhook found no record to add to


async def test_after_flushall_one_sweep_restores_every_record_without_redeploying(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path, leaks: LeakScan
) -> None:
    for number in RUNNING:
        github.add_pull(REPO, number, sha_for(number, 0), branch=f"feature-{number}")
    async with running_bot(redis_url, github, kube, tmp_path) as bot:
        async with httpx.AsyncClient(base_url=bot.url, timeout=20) as client:
            for number in RUNNING:
                await bot.deliver(client, opened(number, sha_for(number, 0)))
            for number in RUNNING:
                await eventually(
                    lambda n=number: web_image(kube, n) == f"{IMAGE}:{sha_for(n, 0)}",
                    f"#{number} deployed",
                )
            await eventually(lambda: settled(bot), "all running")
            # An override marked secret on #3 (the leak scan looks for its value everywhere).
            put = await client.put(
                f"/api/stagings/{quote(f'github:{REPO}#3', safe='')}/overrides/{SECRET_KEY}",
                headers={"Authorization": f"Bearer {secrets.API_TOKEN}"},
                json={"value": secrets.OVERRIDE_SECRET},
            )
            assert put.status_code == 200 and put.json()["secret"] is True, put.text
            await eventually(lambda: _secret_in_cluster(kube, 3), "#3 got its secret")
            await eventually(lambda: settled(bot), "#3 running with it")
            # A push to #2 whose rollout is still going on when Redis is wiped (between two
            # of its rollout checks: see docs/reliability.md for a wipe *during* a job).
            kube.never_ready(sha_for(2, 1))
            github.set_head(REPO, 2, sha_for(2, 1))
            await bot.deliver(client, pushed(2, sha_for(2, 1)))
            await eventually(lambda: _wiped_between_checks(bot, 2), "#2 rolling out, wiped")
        applied = {number: applies_to(kube, number) for number in RUNNING}
        github.add_pull(REPO, LOST, sha_for(LOST, 0), branch=f"feature-{LOST}")

        report = await asyncio.to_thread(sweep_once, bot)
        kube.clear_faults()  # #2's rollout completes

        for number in RUNNING:
            assert f"rebuild {staging_key(number)}" in report, report
        assert f"create {staging_key(LOST)}" in report, report
        await eventually(
            lambda: web_image(kube, LOST) == f"{IMAGE}:{sha_for(LOST, 0)}", "#6 deployed"
        )
        await eventually(lambda: settled(bot), "all settled again")
        members = {m.decode() for m in await bot.redis.smembers(f"{PREFIX}:stagings")}
        assert members == {staging_key(n) for n in [*RUNNING, LOST]}
        for number in [*RUNNING, LOST]:
            fields = await eventually(
                lambda n=number: _running(bot, n), f"#{number} recorded running"
            )
            assert fields["sha"] == (sha_for(2, 1) if number == 2 else sha_for(number, 0))
            assert len(github.comments(REPO, number)) == 1
        shown = await _shown(bot, 3)
        assert shown["secret_overrides"] == [SECRET_KEY], shown  # restored, sealed again
        assert kube.count("DELETE") == 0  # nothing destroyed
        assert {n: applies_to(kube, n) for n in RUNNING} == applied  # nothing redeployed
        assert applies_to(kube, LOST) == 1
        assert "done: 0 to reconcile" in await asyncio.to_thread(
            sweep_once, bot
        )  # and nothing is left to repair
        leaks.add("stagingbot sweep output", report)
        await leaks.add_bot(bot, github, [*RUNNING, LOST])


async def _running(bot: Bot, number: int) -> dict[str, str] | None:
    fields = await record(bot, number)
    return fields if fields.get("phase") == "running" else None


async def _wiped_between_checks(bot: Bot, number: int) -> bool:
    """FLUSHALL once the staging is between two rollout checks. The workers are paused
    meanwhile: else its next check could start between the look and the wipe, and write
    into the emptied Redis (a wipe *during* a job, which this test is not about)."""
    async with bot.workers_paused():
        if not await _deploying_between_checks(bot, number):
            return False
        await bot.redis.flushall()
        return True


async def _deploying_between_checks(bot: Bot, number: int) -> bool:
    """Applied and waiting for its next rollout check: no job of it is running right now."""
    fields = await record(bot, number)
    running = await bot.redis.exists(f"arq:in-progress:reconcile:{staging_key(number)}")
    return fields.get("phase") == "deploying" and not running


def _secret_in_cluster(kube: FakeKube, number: int) -> bool:
    space = namespace_of(kube, number)
    name = space["metadata"]["name"] if space else ""
    return kube.get("Secret", name, overrides.SECRET) is not None


async def _shown(bot: Bot, number: int) -> dict[str, Any]:
    """The staging as the API shows it to an operator."""
    ref = quote(f"github:{REPO}#{number}", safe="")
    async with httpx.AsyncClient(base_url=bot.url, timeout=20) as client:
        response = await client.get(
            f"/api/stagings/{ref}", headers={"Authorization": f"Bearer {secrets.API_TOKEN}"}
        )
    assert response.status_code == 200, response.text
    shown: dict[str, Any] = response.json()
    return shown
