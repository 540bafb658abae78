"""Idle sleep, retention and extend with an injected clock: the sweep's timers, then the
reconcile jobs they queue (real Redis, recording host and provisioner)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from arq import Retry
from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from bot import lifecycle
from bot.config import RepoConfig
from bot.hosts.base import Access
from bot.hosts.github_sansio import parse_delivery
from bot.model import Phase, RepoRef, StagingKey
from bot.services import Services
from bot.store import Store
from bot.sweep import sweep
from bot.web import update_for
from handlers import actions
from handlers.reconcile import PUSH_QUIET, reconcile
from tests.fakes.recording import RecordingHost, RecordingProvisioner, host_of, prov_of
from tests.helpers import REPO, REPO_ID, comment_payload, make_config, pr_payload

REPO_REF = RepoRef("github", REPO_ID, REPO)
KEY = StagingKey("github", REPO_ID, 2)
SHA1 = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
SHA2 = "2" * 40
DAY, HOUR = 86400.0, 3600.0
T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def svc(redis_url: str) -> AsyncIterator[Services]:
    config = make_config(redis_url)
    redis = ArqRedis(ConnectionPool.from_url(redis_url))
    host, provisioner = RecordingHost(), RecordingProvisioner()
    host.open_pull(REPO_REF, 2, SHA1)
    host.access["octocat"] = Access.WRITE
    store = Store(redis, config.redis.key_prefix)
    yield Services(config, store, redis, {"github": host}, provisioner, clock=Clock(T0))
    await redis.aclose(close_connection_pool=True)


def at(svc: Services, when: float) -> None:
    clock = svc.clock
    assert isinstance(clock, Clock)
    clock.now = when


async def deliver(svc: Services, event_name: str, payload: dict[str, Any]) -> None:
    events = parse_delivery(event_name, payload).events
    updates = [update_for(event, svc.clock()) for event in events]
    await svc.store.record_delivery(f"d-{time.monotonic_ns()}", 60, updates)


async def settle(svc: Services, key: StagingKey = KEY) -> None:
    """Run the staging's reconcile job until it neither loops nor asks to come back soon.
    A push's quiet time (`PUSH_QUIET`) passes on the injected clock, as it would."""
    for _ in range(10):
        try:
            await reconcile({"services": svc}, str(key))
        except Retry as retry:
            wait = (retry.defer_score or 0) / 1000
            if wait <= PUSH_QUIET:
                at(svc, svc.clock() + wait)
            continue
        return
    pytest.fail(f"the job of {key} never settled: it still asks to come back")


async def field(svc: Services, name: str) -> str:
    record = await svc.store.load(KEY)
    assert record is not None
    return record.get(name)


async def deployed(svc: Services) -> None:
    await deliver(svc, "pull_request", pr_payload("opened"))
    await settle(svc)
    assert await field(svc, "phase") == Phase.RUNNING


async def sweep_and_settle(svc: Services) -> list[str]:
    report = await sweep(svc)
    await settle(svc)
    return report.lines()


def replies(svc: Services) -> list[str]:
    return [body for _, body in host_of(svc).replies]


def sticky(svc: Services) -> str:
    (body,) = host_of(svc).comments.values()
    return body


async def test_an_idle_staging_is_warned_once_then_archived_automatically(svc: Services) -> None:
    await deployed(svc)
    at(svc, T0 + DAY)
    assert not any("warn" in line for line in await sweep_and_settle(svc))
    assert replies(svc) == []

    at(svc, T0 + 2 * DAY + 60)
    lines = await sweep_and_settle(svc)
    assert any(line.startswith(f"warn {KEY}: idle for 2 days") for line in lines)
    (warning,) = replies(svc)
    assert "2027-01-18 08:00:00 UTC" in warning and "`/staging extend`" in warning
    assert "this staging is archived at **2027-01-18 08:00:00 UTC**" in sticky(svc)

    for later in (T0 + 2 * DAY + HOUR, T0 + 2 * DAY + 12 * HOUR):  # sweeps go on: no second word
        at(svc, later)
        await sweep_and_settle(svc)
    assert len(replies(svc)) == 1
    assert prov_of(svc).archived == set()

    at(svc, T0 + 3 * DAY + 60)
    lines = await sweep_and_settle(svc)
    assert any(line.startswith(f"sleep {KEY}: idle for 3 days") for line in lines)
    assert await field(svc, "phase") == Phase.ARCHIVED
    assert prov_of(svc).archived == {prov_of(svc).applied[0].namespace}
    entry = (await svc.store.history(KEY))[0]
    assert (entry["action"], entry["by"], entry["reason"]) == (
        "archived",
        "automatic",
        "idle for 3 days",
    )
    assert "archived" in sticky(svc) and "idle for 3 days" in sticky(svc)
    assert "removed after 14 days" in sticky(svc)  # and when retention will remove it
    assert len(replies(svc)) == 1  # archiving says it in the sticky comment only


async def test_a_push_after_the_warning_keeps_it_running_and_warns_again_next_time(
    svc: Services,
) -> None:
    await deployed(svc)
    at(svc, T0 + 2 * DAY + 60)
    await sweep_and_settle(svc)
    host_of(svc).push(2, SHA2)
    await deliver(svc, "pull_request", pr_payload("synchronize", SHA2))
    await settle(svc)
    assert "Idle:" not in sticky(svc)  # the warning is gone from the comment

    at(svc, T0 + 3 * DAY + 60)
    await sweep_and_settle(svc)
    assert await field(svc, "phase") == Phase.RUNNING
    at(svc, T0 + 4 * DAY + 120)  # a day before the new deadline: a new idle period
    await sweep_and_settle(svc)
    assert len(replies(svc)) == 2


async def test_extend_by_command_pushes_the_deadline_and_answers_until_when(
    svc: Services,
) -> None:
    await deployed(svc)
    at(svc, T0 + 2 * DAY + 60)
    await sweep_and_settle(svc)
    await deliver(svc, "issue_comment", comment_payload("/staging extend 3d"))
    await settle(svc)
    assert "kept until at least **2027-01-20 08:01:00 UTC**" in replies(svc)[-1]
    assert "Idle:" not in sticky(svc)

    at(svc, T0 + 3 * DAY + 60)  # the old deadline passed
    await sweep_and_settle(svc)
    assert await field(svc, "phase") == Phase.RUNNING
    at(svc, T0 + 5 * DAY + 120)
    await sweep_and_settle(svc)
    assert await field(svc, "phase") == Phase.ARCHIVED


async def test_extend_longer_than_allowed_is_refused_and_changes_nothing(svc: Services) -> None:
    await deployed(svc)
    await deliver(svc, "issue_comment", comment_payload("/staging extend 30d"))
    await settle(svc)
    assert "at most 14 days (staging.max_extend), not 30 days" in replies(svc)[-1]
    assert await field(svc, lifecycle.EXTENDED_UNTIL) == ""


async def test_a_command_is_activity_that_starts_the_idle_period_again(svc: Services) -> None:
    await deployed(svc)
    at(svc, T0 + 2.5 * DAY)
    await deliver(svc, "issue_comment", comment_payload("/staging set GREETING=hi"))
    await settle(svc)
    at(svc, T0 + 3 * DAY + 60)
    await sweep_and_settle(svc)
    assert await field(svc, "phase") == Phase.RUNNING
    assert replies(svc) == []


async def test_retention_removes_an_archived_staging_with_a_comment_and_it_stays_gone(
    svc: Services,
) -> None:
    await deployed(svc)
    await svc.store.change(KEY, lambda r: actions.archive(r.fields, SHA1, "octocat").changes)
    await settle(svc)
    assert await field(svc, "phase") == Phase.ARCHIVED

    at(svc, T0 + 14 * DAY - 60)
    await sweep_and_settle(svc)
    assert prov_of(svc).destroyed == [] and replies(svc) == []

    at(svc, T0 + 14 * DAY + 60)
    lines = await sweep_and_settle(svc)
    assert any(line.startswith(f"retire {KEY}: archived for 14 days") for line in lines)
    assert await field(svc, "phase") == Phase.GONE
    assert prov_of(svc).destroyed
    (notice,) = replies(svc)
    assert "archived for 14 days and has been removed" in notice
    assert "gone" in sticky(svc) and "archived for 14 days" in sticky(svc)
    entry = (await svc.store.history(KEY))[0]
    assert entry["by"] == "automatic" and "archived for 14 days" in entry["reason"]

    at(svc, T0 + 15 * DAY)
    applies = len(prov_of(svc).applied)
    await sweep_and_settle(svc)  # the request is still open: the staging stays gone
    assert await field(svc, "phase") == Phase.GONE
    assert len(prov_of(svc).applied) == applies and len(replies(svc)) == 1

    host_of(svc).push(2, SHA2)  # until a push asks for it again
    await deliver(svc, "pull_request", pr_payload("synchronize", SHA2))
    await settle(svc)
    assert await field(svc, "phase") == Phase.RUNNING


async def test_two_workers_claiming_at_once_never_get_more_slots_than_the_quota(
    svc: Services,
) -> None:
    keys = [StagingKey("github", REPO_ID, number) for number in range(10, 20)]
    claims = await asyncio.gather(
        *(svc.store.claim(key, runs=False, most=3, most_per_repo=0, now=T0) for key in keys)
    )
    assert sorted(claims) == [0, 0, 0, 1, 2, 3, 4, 5, 6, 7]
    holders, waiting = await svc.store.slots()
    assert len(holders) == 3 and len(waiting) == 7

    first = next(key for key, claim in zip(keys, claims, strict=True) if claim == 1)
    freed = [key for key, claim in zip(keys, claims, strict=True) if claim == 0]
    woken = await asyncio.gather(*(svc.store.release(key) for key in freed[:2]))
    assert all(first in keys_woken for keys_woken in woken if keys_woken)
    again = await asyncio.gather(
        *(svc.store.claim(key, runs=False, most=3, most_per_repo=0, now=T0) for key in waiting)
    )
    assert sorted(again)[:3] == [0, 0, 1]  # two slots freed: the two oldest waiting got them
    holders, _ = await svc.store.slots()
    assert len(holders) == 3 and first in holders


async def test_a_repository_s_own_cap_holds_in_the_claims_of_other_repositories(
    svc: Services,
) -> None:
    a1, a2 = StagingKey("github", REPO_ID, 1), StagingKey("github", REPO_ID, 2)
    b1, b2 = StagingKey("github", 99, 1), StagingKey("github", 99, 2)
    claim = svc.store.claim
    assert await claim(a1, runs=False, most=3, most_per_repo=0, now=T0, own=1) == 0
    assert await claim(a2, runs=False, most=3, most_per_repo=0, now=T0 + 1, own=1) == 1
    # #2 of the first repository does not fit its own cap: no slot is kept for it.
    assert await claim(b1, runs=False, most=3, most_per_repo=0, now=T0 + 2) == 0
    assert await claim(b2, runs=False, most=3, most_per_repo=0, now=T0 + 3) == 0
    holders, waiting = await svc.store.slots()
    assert set(holders) == {a1, b1, b2} and list(waiting) == [a2]

    assert await svc.store.release(a1) == [a2]
    assert await claim(a2, runs=False, most=3, most_per_repo=0, now=T0 + 4, own=1) == 0


async def test_an_own_cap_of_zero_lifts_the_per_repository_one_for_that_repository(
    svc: Services,
) -> None:
    a1, a2 = StagingKey("github", REPO_ID, 1), StagingKey("github", REPO_ID, 2)
    b1, b2 = StagingKey("github", 99, 1), StagingKey("github", 99, 2)
    claim = svc.store.claim
    assert await claim(a1, runs=False, most=0, most_per_repo=1, now=T0, own=0) == 0
    assert await claim(a2, runs=False, most=0, most_per_repo=1, now=T0 + 1, own=0) == 0
    assert await claim(b1, runs=False, most=0, most_per_repo=1, now=T0 + 2) == 0
    assert await claim(b2, runs=False, most=0, most_per_repo=1, now=T0 + 3) == 1


async def test_the_sweep_wakes_a_waiting_staging_by_its_repository_s_own_cap(
    svc: Services,
) -> None:
    shop = RepoConfig(host="github", repo=REPO, max_active=1)
    staging = replace(svc.config.staging, max_active_per_repo=5)
    svc.config = replace(svc.config, staging=staging, repos=(shop,))
    await deployed(svc)
    other = StagingKey("github", REPO_ID, 3)
    host_of(svc).open_pull(REPO_REF, 3, SHA2, branch="three")
    payload = pr_payload("opened", SHA2)
    payload["number"] = payload["pull_request"]["number"] = 3
    await deliver(svc, "pull_request", payload)
    await settle(svc, other)
    record = await svc.store.load(other)
    assert record is not None and record.get("phase") == Phase.QUEUED
    assert f"wake {other}: a slot is free" not in (await sweep(svc)).lines()

    svc.config = replace(svc.config, repos=(replace(shop, max_active=2),))  # raised, restarted
    assert f"wake {other}: a slot is free" in (await sweep(svc)).lines()
    await settle(svc, other)
    record = await svc.store.load(other)
    assert record is not None and record.get("phase") == Phase.RUNNING


async def test_a_staging_running_before_the_quota_is_counted_by_the_sweep(
    svc: Services,
) -> None:
    await deployed(svc)
    await svc.queue.delete(f"{svc.config.redis.key_prefix}:slots")  # as after a Redis wipe
    await sweep(svc)
    holders, _ = await svc.store.slots()
    assert set(holders) == {KEY}
    svc.config = replace(svc.config, staging=replace(svc.config.staging, max_active=1))
    other = StagingKey("github", REPO_ID, 7)
    assert await svc.store.claim(other, runs=False, most=1, most_per_repo=0, now=T0) == 1


async def test_a_warning_overtaken_by_a_push_is_never_posted(svc: Services) -> None:
    await deployed(svc)
    at(svc, T0 + 2 * DAY + 60)
    await sweep(svc)  # the warning is written; its job has not run yet
    host_of(svc).push(2, SHA2)
    await deliver(svc, "pull_request", pr_payload("synchronize", SHA2))
    await settle(svc)
    assert replies(svc) == [] and "Idle:" not in sticky(svc)
    assert await field(svc, lifecycle.NOTICE) == ""


async def test_a_restore_beyond_the_quota_waits_then_restores_the_archived_staging(
    svc: Services,
) -> None:
    svc.config = replace(svc.config, staging=replace(svc.config.staging, max_active=1))
    await deployed(svc)
    await svc.store.change(KEY, lambda r: actions.archive(r.fields, SHA1, "octocat").changes)
    await settle(svc)
    other = StagingKey("github", REPO_ID, 3)
    host_of(svc).open_pull(REPO_REF, 3, SHA2, branch="three")
    payload = pr_payload("opened", SHA2)
    payload["number"] = payload["pull_request"]["number"] = 3
    await deliver(svc, "pull_request", payload)
    await settle(svc, other)  # #3 takes the slot #2 freed by archiving

    await svc.store.change(KEY, lambda r: actions.restore(r.fields, "api-1").changes)
    await settle(svc)
    assert await field(svc, "phase") == Phase.QUEUED
    assert await field(svc, lifecycle.QUEUE_POSITION) == "1"
    namespace = prov_of(svc).applied[0].namespace
    assert f"restore {namespace}" not in prov_of(svc).calls

    host_of(svc).close(3)
    await deliver(svc, "pull_request", {**payload, "action": "closed"})
    await settle(svc, other)
    await settle(svc)
    assert await field(svc, "phase") == Phase.RUNNING
    assert f"restore {namespace}" in prov_of(svc).calls  # scaled back up, data kept


async def test_a_closed_requests_staging_is_forgotten_after_the_history_retention(
    svc: Services,
) -> None:
    await deployed(svc)
    host_of(svc).close(2)
    await deliver(svc, "pull_request", pr_payload("closed"))
    await settle(svc)
    assert await field(svc, "phase") == Phase.GONE
    await sweep_and_settle(svc)  # first seen gone now: the 30 days count from here

    at(svc, T0 + 29 * DAY)
    await sweep_and_settle(svc)
    assert await svc.store.load(KEY) is not None  # still on the dashboard, with its history
    assert await svc.store.history(KEY) != []

    at(svc, T0 + 30 * DAY + 60)
    lines = await sweep_and_settle(svc)
    assert f"forget {KEY}: closed and gone for 30 days" in lines
    assert await svc.store.load(KEY) is None
    assert await svc.store.history(KEY) == []
    assert KEY not in await svc.store.keys()


async def test_a_request_reopened_and_closed_again_counts_its_retention_afresh(
    svc: Services,
) -> None:
    await deployed(svc)
    host_of(svc).close(2)
    await deliver(svc, "pull_request", pr_payload("closed"))
    await settle(svc)
    await sweep_and_settle(svc)  # gone, stamped at T0
    at(svc, T0 + 29 * DAY)
    host_of(svc).open_pull(REPO_REF, 2, SHA1)
    await deliver(svc, "pull_request", pr_payload("reopened"))
    host_of(svc).close(2)
    await deliver(svc, "pull_request", pr_payload("closed"))
    await settle(svc)  # between two sweeps: the record went round and is gone again

    at(svc, T0 + 31 * DAY)
    await sweep_and_settle(svc)
    assert await svc.store.load(KEY) is not None  # 2 days gone this time, not 31


async def test_a_staging_a_person_removed_from_an_open_request_is_never_forgotten(
    svc: Services,
) -> None:
    await deployed(svc)
    await svc.store.change(KEY, lambda r: actions.destroy(SHA1, "octocat").changes)
    await settle(svc)
    assert await field(svc, "phase") == Phase.GONE
    await sweep_and_settle(svc)
    at(svc, T0 + 90 * DAY)
    await sweep_and_settle(svc)
    assert await field(svc, "phase") == Phase.GONE  # its record is what keeps it gone
