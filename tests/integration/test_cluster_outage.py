"""The cluster out of reach: after a few attempts the request says the staging failed and
why, once; the retries go on; when the cluster answers again the staging converges and the
request says so (real Redis, recording fakes; handlers/outage.py)."""

from __future__ import annotations

import time

from arq import Retry

from bot.errors import ClusterError, TemporaryError
from bot.hosts.github_sansio import parse_delivery
from bot.model import CheckState, DeployState, Phase, RepoRef, Rollout, StagingKey
from bot.services import Services
from bot.web import update_for
from handlers.outage import REPORT_AFTER
from handlers.reconcile import reconcile
from tests.fakes.recording import RecordingHost, host_of, prov_of
from tests.helpers import REPO, REPO_ID, pr_payload

REPO_REF = RepoRef("github", REPO_ID, REPO)
KEY = StagingKey("github", REPO_ID, 2)
SHA1 = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
SHA2 = "2" * 40
# What the Kubernetes provisioner raises for a 503 (bot/provision/kubernetes.py): the body's
# message is for the log and the record, only the status and its phrase for the request.
DOWN = ClusterError(
    "apply Deployment/web: HTTP 503: etcdserver: leader changed at 10.0.0.7:2379",
    shown="HTTP 503 Service Unavailable",
)
SHOWN = "the cluster cannot be reached: HTTP 503 Service Unavailable; retrying"


async def deliver(svc: Services, action: str, sha: str | None = None) -> None:
    (event,) = parse_delivery("pull_request", pr_payload(action, sha)).events
    await svc.store.record_delivery(f"d-{time.monotonic_ns()}", 60, [update_for(event, 0)])


async def run(svc: Services) -> float | None:
    """One job run; the defer it asked for, or None when it finished."""
    try:
        await reconcile({"services": svc}, str(KEY))
    except Retry as retry:
        return (retry.defer_score or 0) / 1000
    return None


def writes(host: RecordingHost) -> list[str]:
    return [call for call in host.calls if call != "get_pull"]


async def failures(svc: Services) -> list[dict[str, str]]:
    return [e for e in await svc.store.history(KEY) if e["result"] == "failure"]


async def test_the_request_says_failed_with_the_reason_once_the_cluster_stays_down_then_green(
    svc: Services,
) -> None:
    host, prov = host_of(svc), prov_of(svc)
    prov.apply_error = DOWN
    await deliver(svc, "opened")
    for _ in range(REPORT_AFTER - 1):  # a blip: the request says in progress, nothing more
        assert await run(svc) is not None
        assert host.check_on(SHA1).state is CheckState.IN_PROGRESS
        assert "being created" in next(iter(host.comments.values()))
    assert await failures(svc) == []

    assert await run(svc) is not None  # the REPORT_AFTER-th attempt: the request is told
    check = host.check_on(SHA1)
    assert check.state is CheckState.FAILURE and SHOWN in check.title + check.summary
    (comment,) = host.comments.values()
    assert SHOWN in comment and "being created" not in comment
    assert host.deployment_statuses[-1][1] is DeployState.FAILURE
    (entry,) = await failures(svc)
    assert entry["reason"] == SHOWN and entry["sha"] == SHA1
    for text in (check.title, check.summary, comment, entry["reason"]):
        assert "10.0.0.7" not in text and "etcdserver" not in text  # the body stays out

    said = writes(host)
    for _ in range(4):  # the retries go on without writing anything again
        assert await run(svc) is not None
    assert writes(host) == said
    assert len(await failures(svc)) == 1
    record = await svc.store.load(KEY)
    assert record is not None and "HTTP 503" in record.get("reason")  # API and dashboard

    prov.apply_error = None  # back: applied, the same check and comment say so
    assert await run(svc) is not None
    assert [t.sha for t in prov.applied] == [SHA1]
    assert host.check_on(SHA1).state is CheckState.IN_PROGRESS
    assert "being deployed" in next(iter(host.comments.values()))
    assert await run(svc) is None
    record = await svc.store.load(KEY)
    assert record is not None and record.get("phase") == Phase.RUNNING
    assert host.check_on(SHA1).state is CheckState.SUCCESS  # one check run on the commit
    (comment,) = host.comments.values()
    assert "running" in comment and "cannot be reached" not in comment
    assert host.deployment_statuses[-1][1] is DeployState.SUCCESS
    assert len(await failures(svc)) == 1


async def test_a_rollout_followed_while_the_cluster_is_down_says_deploying_again_when_back(
    svc: Services,
) -> None:
    host, prov = host_of(svc), prov_of(svc)
    prov.rollout = Rollout(ready=False, reason="waiting for deployment web: 0/1 available")
    await deliver(svc, "opened")
    await run(svc)  # applied: the rollout is followed
    prov.status_error = DOWN
    for _ in range(REPORT_AFTER):
        assert await run(svc) is not None
    assert host.check_on(SHA1).state is CheckState.FAILURE
    assert SHOWN in next(iter(host.comments.values()))
    prov.status_error = None  # back, still rolling out: the request says so again
    assert await run(svc) is not None
    assert host.check_on(SHA1).state is CheckState.IN_PROGRESS
    assert "being deployed" in next(iter(host.comments.values()))
    prov.rollout = Rollout(ready=True)
    assert await run(svc) is None
    assert host.check_on(SHA1).state is CheckState.SUCCESS
    assert len(prov.applied) == 1 and len(await failures(svc)) == 1


async def test_a_push_during_the_outage_is_told_on_its_own_commit(svc: Services) -> None:
    host, prov = host_of(svc), prov_of(svc)
    await deliver(svc, "opened")
    await run(svc), await run(svc)
    prov.apply_error = DOWN
    host.push(2, SHA2)
    await deliver(svc, "synchronize", SHA2)
    for _ in range(REPORT_AFTER):
        assert await run(svc) is not None
    assert host.check_on(SHA2).state is CheckState.FAILURE
    assert host.check_on(SHA1).state is CheckState.SUCCESS  # what ran before still runs
    sha3 = "3" * 40
    host.push(2, sha3)
    await deliver(svc, "synchronize", sha3)
    assert await run(svc) is not None  # still down, the attempts still counting
    assert host.check_on(sha3).state is CheckState.FAILURE
    assert SHOWN in host.check_on(sha3).title + host.check_on(sha3).summary
    prov.apply_error = None
    await run(svc), await run(svc)
    assert host.check_on(sha3).state is CheckState.SUCCESS
    assert [t.sha for t in prov.applied] == [SHA1, sha3]


async def test_a_git_hosts_outage_or_another_temporary_error_is_not_reported_as_failed(
    svc: Services,
) -> None:
    host, prov = host_of(svc), prov_of(svc)
    prov.apply_error = TemporaryError("namespace pr-2 is still terminating")
    await deliver(svc, "opened")
    for _ in range(REPORT_AFTER + 2):
        assert await run(svc) is not None
    assert host.check_on(SHA1).state is CheckState.IN_PROGRESS
    assert await failures(svc) == []


async def test_a_green_check_is_not_turned_red_by_the_cluster_going_down(svc: Services) -> None:
    host, prov = host_of(svc), prov_of(svc)
    await deliver(svc, "opened")
    await run(svc), await run(svc)
    host.close(2)
    await deliver(svc, "closed")  # not wanted running: the teardown just waits
    prov.destroy_error = DOWN
    for _ in range(REPORT_AFTER + 1):
        assert await run(svc) is not None
    assert host.check_on(SHA1).state is CheckState.SUCCESS
    assert await failures(svc) == []


async def test_a_request_closed_during_the_outage_does_not_leave_its_head_red(
    svc: Services,
) -> None:
    """The push never reached the cluster and the request was closed (say, merged): its
    commit must not carry "the cluster cannot be reached" for good."""
    host, prov = host_of(svc), prov_of(svc)
    await deliver(svc, "opened")
    await run(svc), await run(svc)
    prov.apply_error = DOWN
    host.push(2, SHA2)
    await deliver(svc, "synchronize", SHA2)
    for _ in range(REPORT_AFTER):
        assert await run(svc) is not None
    assert host.check_on(SHA2).state is CheckState.FAILURE  # red: the cluster is out of reach

    prov.apply_error = None  # the cluster answers again; the request is closed meanwhile
    host.close(2)
    await deliver(svc, "closed", SHA2)
    assert await run(svc) is None

    head = host.check_on(SHA2)
    assert head.state is CheckState.CANCELLED and head.title == "Staging removed"
    assert "closed before `2222222` was deployed" in head.summary
    assert host.check_on(SHA1).state is CheckState.SUCCESS  # what ran keeps its green check
    (comment,) = host.comments.values()
    assert "gone" in comment and "cannot be reached" not in comment
