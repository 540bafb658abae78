"""The reconcile job converges a staging and reports it (real Redis, recording fakes)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
from arq import Retry

from bot.errors import PermanentError, TemporaryError
from bot.hosts.github_sansio import parse_delivery
from bot.model import CheckState, DeployState, Phase, RepoRef, Rollout, StagingKey
from bot.services import Services
from bot.web import update_for
from handlers.reconcile import DESTROY_REPORT_AFTER, FAILED_RECHECK, PUSH_QUIET, reconcile
from tests.fakes.recording import host_of, prov_of
from tests.helpers import REPO, REPO_ID, pr_payload

REPO_REF = RepoRef("github", REPO_ID, REPO)
KEY = StagingKey("github", REPO_ID, 2)
SHA1 = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
SHA2 = "2" * 40
SHA3 = "3" * 40
SHA4 = "4" * 40


async def deliver(svc: Services, action: str, sha: str | None = None) -> None:
    (event,) = parse_delivery("pull_request", pr_payload(action, sha)).events
    await svc.store.record_delivery(f"d-{time.monotonic_ns()}", 60, [update_for(event, 0)])


async def deliver_at(svc: Services, action: str, sha: str, now: float) -> None:
    """A delivery stamped `now` (`deliver` stamps 0: long ago)."""
    (event,) = parse_delivery("pull_request", pr_payload(action, sha)).events
    await svc.store.record_delivery(f"d-{time.monotonic_ns()}", 60, [update_for(event, now)])


async def run(svc: Services) -> float | None:
    """One job run; the defer it asked for, or None when it finished."""
    try:
        await reconcile({"services": svc}, str(KEY))
    except Retry as retry:
        return (retry.defer_score or 0) / 1000
    return None


async def phase(svc: Services) -> str:
    record = await svc.store.load(KEY)
    assert record is not None
    return record.get("phase")


async def test_opened_pull_request_reports_progress_applies_then_reports_success(
    svc: Services,
) -> None:
    host, prov = host_of(svc), prov_of(svc)
    await deliver(svc, "opened")
    assert await run(svc) == pytest.approx(0.05)  # applied; rollout checked later, slot freed
    assert [t.sha for t in prov.applied] == [SHA1]
    assert host.check_on(SHA1).state is CheckState.IN_PROGRESS
    (comment,) = host.comments.values()
    assert "being created" in comment and "ec26c3e" in comment
    assert host.deployment_statuses == []  # created with the outcome, not before
    assert await phase(svc) == Phase.DEPLOYING

    assert await run(svc) is None
    assert await phase(svc) == Phase.RUNNING
    check = host.check_on(SHA1)
    assert check.state is CheckState.SUCCESS
    assert check.url == "https://hello-world-pr-2-0085.staging.example.com/"
    (comment,) = host.comments.values()  # the same comment, edited
    assert "running" in comment and "https://hello-world-pr-2-0085.staging.example.com/" in comment
    deployment_id, state, url = host.deployment_statuses[-1]
    assert (
        state is DeployState.SUCCESS and url == "https://hello-world-pr-2-0085.staging.example.com/"
    )
    assert host.deployments[deployment_id] == ("pr-2", SHA1)


async def test_a_push_updates_the_same_staging_and_edits_the_same_comment(svc: Services) -> None:
    host, prov = host_of(svc), prov_of(svc)
    await deliver(svc, "opened")
    await run(svc), await run(svc)
    comment_ids = set(host.comments)
    host.push(2, SHA2)
    await deliver(svc, "synchronize", SHA2)
    await run(svc), await run(svc)
    assert [t.sha for t in prov.applied] == [SHA1, SHA2]
    assert prov.applied[-1].image == f"registry.example.com/hello:{SHA2}"
    assert host.check_on(SHA2).state is CheckState.SUCCESS
    assert host.check_on(SHA1).state is CheckState.SUCCESS
    assert set(host.comments) == comment_ids
    assert "2222222" in host.comments[next(iter(comment_ids))]
    # The deployment of each commit, created with its outcome: one status each, no
    # "in progress" one before it.
    assert [(host.deployments[d][1], state) for d, state, _ in host.deployment_statuses] == [
        (SHA1, DeployState.SUCCESS),
        (SHA2, DeployState.SUCCESS),
    ]


async def test_while_a_push_deploys_the_comment_keeps_showing_what_runs(svc: Services) -> None:
    host, prov = host_of(svc), prov_of(svc)
    await deliver(svc, "opened")
    await run(svc), await run(svc)
    (running,) = host.comments.values()
    host.push(2, SHA2)
    await deliver(svc, "synchronize", SHA2)
    prov.rollout = Rollout(ready=False, reason="waiting for deployment web: 0/1 available")

    await run(svc)  # applied, now followed

    assert await phase(svc) == Phase.DEPLOYING
    assert host.check_on(SHA2).state is CheckState.IN_PROGRESS  # the new commit: in progress
    assert list(host.comments.values()) == [running]  # still true: the URL serves ec26c3e
    assert "running" in running and "ec26c3e" in running

    prov.rollout = Rollout(ready=True)
    await run(svc)
    (comment,) = host.comments.values()
    assert "running" in comment and "2222222" in comment


async def test_a_push_to_a_failed_staging_says_at_once_that_it_deploys_again(
    svc: Services,
) -> None:
    host, prov = host_of(svc), prov_of(svc)
    prov.rollout = Rollout(ready=False, failed=True, reason="container web is crash-looping")
    await deliver(svc, "opened")
    await run(svc), await run(svc)
    assert "crash-looping" in next(iter(host.comments.values()))
    host.push(2, SHA2)
    await deliver(svc, "synchronize", SHA2)
    prov.rollout = Rollout(ready=False, reason="waiting for deployment web: 0/1 available")

    await run(svc)

    (comment,) = host.comments.values()
    assert "being deployed" in comment and "crash-looping" not in comment


async def test_a_burst_of_pushes_is_deployed_once_at_its_last_commit(svc: Services) -> None:
    host, prov = host_of(svc), prov_of(svc)
    now = 1_000_000.0
    svc.clock = lambda: now
    await deliver(svc, "opened")
    await run(svc), await run(svc)
    assert [t.sha for t in prov.applied] == [SHA1]

    for i, sha in enumerate((SHA2, SHA3, SHA4)):  # 100 ms apart
        host.push(2, sha)
        await deliver_at(svc, "synchronize", sha, now)
        wait = await run(svc)  # the job comes back once no push came for PUSH_QUIET
        assert wait == pytest.approx(PUSH_QUIET, abs=0.002), i
        assert [t.sha for t in prov.applied] == [SHA1]
        assert host.calls.count("get_pull") == 1  # not even the request was read
        now += 0.1

    now += PUSH_QUIET
    await run(svc), await run(svc)
    assert [t.sha for t in prov.applied] == [SHA1, SHA4]
    assert await phase(svc) == Phase.RUNNING
    assert SHA2 not in [sha for sha, _ in host.checks.values()]  # no check on skipped ones


async def test_a_first_staging_is_never_held_for_pushes(svc: Services) -> None:
    prov = prov_of(svc)
    svc.clock = lambda: 1_000_000.0
    host_of(svc).push(2, SHA2)
    await deliver_at(svc, "synchronize", SHA2, 1_000_000.0)  # before `opened` arrived
    await run(svc)
    assert [t.sha for t in prov.applied] == [SHA2]


async def test_a_namespace_slow_to_terminate_is_said_on_the_request_without_its_link(
    svc: Services,
) -> None:
    host, prov = host_of(svc), prov_of(svc)
    now = 1_000_000.0
    svc.clock = lambda: now
    await deliver(svc, "opened")
    await run(svc), await run(svc)
    host.close(2)
    await deliver(svc, "closed")
    prov.destroy_rounds = 1_000  # a finalizer holds the namespace

    assert await run(svc) is not None
    (comment,) = host.comments.values()
    assert "running" in comment  # a namespace usually goes within seconds: not said yet

    now += DESTROY_REPORT_AFTER
    assert await run(svc) is not None
    (comment,) = host.comments.values()
    assert "being removed" in comment and "staging.example.com" not in comment
    assert host.check_on(SHA1).state is CheckState.SUCCESS  # what ran keeps its green check
    said = len(host.calls)
    now += 30
    assert await run(svc) is not None
    assert [c for c in host.calls[said:] if c != "get_pull"] == []  # said once

    prov.destroy_rounds = 0
    assert await run(svc) is None
    (comment,) = host.comments.values()
    assert "gone" in comment
    assert host.check_on(SHA1).state is CheckState.SUCCESS


async def test_a_late_event_for_an_older_sha_cannot_roll_the_staging_back(svc: Services) -> None:
    host, prov = host_of(svc), prov_of(svc)
    host.push(2, SHA2)
    await deliver(svc, "synchronize", SHA2)
    await run(svc), await run(svc)
    await deliver(svc, "synchronize", SHA1)  # arrives late
    assert await run(svc) is None
    assert [t.sha for t in prov.applied] == [SHA2]
    record = await svc.store.load(KEY)
    assert record is not None and record.get("sha") == SHA2


async def test_closing_deletes_the_namespace_and_says_the_staging_is_gone(svc: Services) -> None:
    host, prov = host_of(svc), prov_of(svc)
    await deliver(svc, "opened")
    await run(svc), await run(svc)
    host.close(2)
    prov.destroy_rounds = 1  # namespace deletion takes a moment
    await deliver(svc, "closed")
    assert await run(svc) is not None
    assert await phase(svc) == Phase.DESTROYING
    assert await run(svc) is None
    assert await phase(svc) == Phase.GONE
    assert prov.namespaces == set()
    (comment,) = host.comments.values()
    assert "gone" in comment and "https://" not in comment.split("Managed by")[0]
    assert host.deployment_statuses[-1][1] is DeployState.INACTIVE
    assert host.check_on(SHA1).state is CheckState.SUCCESS  # a green check stays green


async def test_a_failed_rollout_is_reported_with_the_reason_in_words(svc: Services) -> None:
    host, prov = host_of(svc), prov_of(svc)
    prov.rollout = Rollout(ready=False, failed=True, reason="image cannot be pulled: shop:abc")
    await deliver(svc, "opened")
    await run(svc)
    assert await run(svc) == FAILED_RECHECK
    assert await phase(svc) == Phase.FAILED
    check = host.check_on(SHA1)
    assert check.state is CheckState.FAILURE and "image cannot be pulled" in check.title
    assert "image cannot be pulled" in next(iter(host.comments.values()))
    assert host.deployment_statuses[-1][1] is DeployState.FAILURE
    assert len(prov.applied) == 1  # a failed rollout is not re-applied


async def test_a_failed_rollout_is_watched_until_its_deadline_and_turns_green_if_it_recovers(
    svc: Services,
) -> None:
    host, prov = host_of(svc), prov_of(svc)
    clock = [1000.0]
    svc.clock = lambda: clock[0]
    prov.rollout = Rollout(ready=False, failed=True, reason="image cannot be pulled: shop:abc")
    await deliver(svc, "opened")
    await run(svc)
    assert await run(svc) == FAILED_RECHECK  # failed, but the kubelet keeps pulling
    assert host.check_on(SHA1).state is CheckState.FAILURE
    prov.rollout = Rollout(ready=True)  # CI pushed the image after all
    clock[0] += 20
    assert await run(svc) is None
    assert await phase(svc) == Phase.RUNNING
    assert host.check_on(SHA1).state is CheckState.SUCCESS


async def test_a_failed_rollout_past_its_deadline_is_left_alone(svc: Services) -> None:
    prov = prov_of(svc)
    clock = [1000.0]
    svc.clock = lambda: clock[0]
    prov.rollout = Rollout(ready=False, failed=True, reason="container web is crash-looping")
    await deliver(svc, "opened")
    await run(svc)
    await run(svc)
    clock[0] += 31
    assert await run(svc) is None
    assert await phase(svc) == Phase.FAILED


async def test_a_rollout_past_its_deadline_fails(svc: Services) -> None:
    prov = prov_of(svc)
    prov.rollout = Rollout(ready=False, reason="waiting for deployment web: 0/1 available")
    clock = [1000.0]
    svc.clock = lambda: clock[0]
    await deliver(svc, "opened")
    await run(svc)
    assert await run(svc) is not None  # still rolling out
    clock[0] += 31
    assert await run(svc) is None
    check = host_of(svc).check_on(SHA1)
    assert check.state is CheckState.FAILURE
    assert "deadline exceeded" in check.summary and "0/1 available" in check.summary


async def test_an_invalid_manifest_fails_the_staging_without_retrying(svc: Services) -> None:
    prov = prov_of(svc)
    prov.apply_error = PermanentError(
        "invalid manifest: Deployment/web: spec.replicas: must be >= 0"
    )
    await deliver(svc, "opened")
    assert await run(svc) is None
    assert await phase(svc) == Phase.FAILED
    assert "invalid manifest" in host_of(svc).check_on(SHA1).title


async def test_a_temporary_error_is_retried_no_sooner_than_retry_after(svc: Services) -> None:
    host = host_of(svc)
    host.fail_next.append(TemporaryError("GitHub: HTTP 403: secondary rate limit", delay=42.0))
    await deliver(svc, "opened")
    defer = await run(svc)
    assert defer is not None and defer >= 42.0
    assert prov_of(svc).applied == []
    await run(svc)  # the retry converges
    assert [t.sha for t in prov_of(svc).applied] == [SHA1]


async def test_an_event_during_a_job_makes_it_go_round_again(svc: Services) -> None:
    host = host_of(svc)
    original = host.get_pull
    bumped: list[Any] = []

    async def get_pull_then_push(repo: RepoRef, number: int):  # type: ignore[no-untyped-def]
        pull = await original(repo, number)
        if not bumped:
            bumped.append(True)
            host.push(2, SHA2)
            await deliver(svc, "synchronize", SHA2)
        return pull

    host.get_pull = get_pull_then_push  # type: ignore[method-assign]
    await deliver(svc, "opened")
    await run(svc)
    assert [t.sha for t in prov_of(svc).applied] == [SHA1, SHA2]


async def test_redeploying_after_a_reopen_creates_the_staging_again(svc: Services) -> None:
    host, prov = host_of(svc), prov_of(svc)
    await deliver(svc, "opened")
    await run(svc), await run(svc)
    host.close(2)
    await deliver(svc, "closed")
    await run(svc)
    host.open_pull(REPO_REF, 2, SHA1)
    await deliver(svc, "reopened")
    await run(svc), await run(svc)
    assert await phase(svc) == Phase.RUNNING
    assert len(prov.applied) == 2 and len(host.comments) == 1


async def test_retries_while_the_cluster_is_down_do_not_rewrite_the_same_report(
    svc: Services,
) -> None:
    host, prov = host_of(svc), prov_of(svc)
    prov.apply_error = TemporaryError("Kubernetes API unreachable")
    await deliver(svc, "opened")
    for _ in range(3):
        assert await run(svc) is not None
    writes = [c for c in host.calls if c != "get_pull"]
    assert writes == ["report_check", "upsert_comment"]
    prov.apply_error = None
    await run(svc), await run(svc)
    assert await phase(svc) == Phase.RUNNING


async def test_reopened_while_the_namespace_terminates_waits_and_deploys_again(
    svc: Services,
) -> None:
    host, prov = host_of(svc), prov_of(svc)
    await deliver(svc, "opened")
    await run(svc), await run(svc)
    host.close(2)
    prov.destroy_rounds = 5
    await deliver(svc, "closed")
    assert await run(svc) is not None
    assert await phase(svc) == Phase.DESTROYING
    host.open_pull(REPO_REF, 2, SHA1)
    prov.apply_error = TemporaryError("namespace staging-hello-world-pr-2 is still terminating", 2)
    await deliver(svc, "reopened")
    assert await run(svc) is not None  # waits for the namespace, does not call it gone
    assert "gone" not in next(iter(host.comments.values()))
    prov.apply_error = None
    await run(svc), await run(svc)
    assert await phase(svc) == Phase.RUNNING


async def test_a_push_while_deploying_closes_the_old_commits_check(svc: Services) -> None:
    host = host_of(svc)
    prov_of(svc).rollout = Rollout(ready=False, reason="waiting for deployment web: 0/1 available")
    await deliver(svc, "opened")
    await run(svc)
    host.push(2, SHA2)
    await deliver(svc, "synchronize", SHA2)
    await run(svc)
    old = host.check_on(SHA1)
    assert old.state is CheckState.CANCELLED and "Superseded by 2222222" in old.title
    assert host.check_on(SHA2).state is CheckState.IN_PROGRESS


async def test_a_request_closed_before_it_was_deployed_gets_no_comment(svc: Services) -> None:
    host = host_of(svc)
    host.close(2)
    await deliver(svc, "closed")
    assert await run(svc) is None
    assert host.comments == {} and host.checks == {}
    assert await phase(svc) == Phase.GONE


async def test_a_job_killed_after_its_first_report_still_ends_the_comment_on_close(
    svc: Services,
) -> None:
    host = host_of(svc)
    await deliver(svc, "opened")
    await run(svc)
    # What a worker killed between posting the comment and storing the commit leaves.
    await svc.store.update(KEY, {"phase": Phase.PENDING.value, "sha": ""})
    host.close(2)
    await deliver(svc, "closed")
    while await run(svc) is not None:
        pass
    assert await phase(svc) == Phase.GONE
    (comment,) = host.comments.values()
    assert "gone" in comment
    assert host.check_on(SHA1).state is not CheckState.IN_PROGRESS


async def test_a_job_killed_after_storing_gone_still_says_so_on_the_next_round(
    svc: Services,
) -> None:
    host = host_of(svc)
    await deliver(svc, "opened")
    while await run(svc) is not None:
        pass
    host.close(2)
    # What a worker killed between storing `gone` and editing the comment leaves.
    await svc.store.update(KEY, {"phase": Phase.GONE.value})
    await deliver(svc, "closed")
    while await run(svc) is not None:
        pass
    (comment,) = host.comments.values()
    assert "gone" in comment
    upserts = host.calls.count("upsert_comment")
    await deliver(svc, "closed")  # a redelivery: said once, not again
    while await run(svc) is not None:
        pass
    assert host.calls.count("upsert_comment") == upserts


async def test_a_staging_that_cannot_be_built_says_why_on_the_request(svc: Services) -> None:
    svc.config = replace(svc.config, staging=replace(svc.config.staging, image=""))
    host = host_of(svc)
    await deliver(svc, "opened")
    assert await run(svc) is None
    assert host.check_on(SHA1).state is CheckState.FAILURE
    assert "no image configured" in next(iter(host.comments.values()))
    assert prov_of(svc).applied == []
    await deliver(svc, "opened")
    await run(svc)
    assert host.calls.count("upsert_comment") == 1  # said once, not on every event


async def test_a_renamed_repository_keeps_its_stagings_namespace(svc: Services) -> None:
    host, prov = host_of(svc), prov_of(svc)
    await deliver(svc, "opened")
    await run(svc), await run(svc)
    renamed = RepoRef("github", REPO_ID, "Codertocat/Hello-Universe")
    host.pulls[2] = replace(host.pulls[2], repo=renamed, head_sha=SHA2)
    await deliver(svc, "synchronize", SHA2)
    await run(svc)
    assert [t.namespace for t in prov.applied] == ["staging-hello-world-pr-2-0085"] * 2
