"""QA sign-off through the reconcile job: who may, the `staging/qa` check, resets on push."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from bot.config import QaConfig
from bot.errors import PermanentError
from bot.hosts.base import CONFUSED, THUMBS_UP, Access
from bot.model import CheckState
from bot.services import Services
from bot.steering import Steering
from bot.store import Store
from bot.tokens import Caller
from handlers import plan
from tests.fakes.recording import RecordingHost, RecordingProvisioner
from tests.helpers import make_config, pr_payload
from tests.integration.test_commands import (
    KEY,
    REPO_REF,
    SHA1,
    SHA2,
    comment,
    deliver,
    field,
    host_of,
    running,
    settle,
    sticky,
)


async def services(redis_url: str, qa: QaConfig) -> Services:
    config = make_config(redis_url, qa=qa)
    redis = ArqRedis(ConnectionPool.from_url(redis_url))
    host = RecordingHost(
        access={"maintainer": Access.WRITE, "reader": Access.READ, "tester": Access.READ},
        members={"acme/qa": {"tester"}},
    )
    host.open_pull(REPO_REF, 2, SHA1)
    store = Store(redis, config.redis.key_prefix)
    return Services(config, store, redis, {"github": host}, RecordingProvisioner())


@pytest.fixture
async def svc(redis_url: str) -> AsyncIterator[Services]:
    """The default rule: anyone with write access signs off."""
    svc = await services(redis_url, QaConfig())
    yield svc
    await svc.queue.aclose(close_connection_pool=True)


@pytest.fixture
async def listed(redis_url: str) -> AsyncIterator[Services]:
    """`qa.allowed` names a team and a user: only they sign off."""
    svc = await services(redis_url, QaConfig(allowed=("acme/qa", "Lead")))
    yield svc
    await svc.queue.aclose(close_connection_pool=True)


def replies_of(host: RecordingHost) -> list[str]:
    return [body for _, body in host.replies]


async def history(svc: Services) -> list[dict[str, str]]:
    return [dict(entry) for entry in await svc.store.history(KEY)]


async def test_a_pass_sets_staging_qa_to_success_on_the_head_with_who_and_the_note(
    svc: Services,
) -> None:
    host = host_of(svc)
    await running(svc)
    await comment(svc, "Tried checkout twice.\n/staging qa-pass checkout works on mobile")
    await settle(svc)

    check = host.gate_on("qa", SHA1)
    assert check is not None and check.state is CheckState.SUCCESS
    assert check.title == "QA passed by maintainer"
    assert "checkout works on mobile" in check.summary
    assert "**QA:** ✅ passed by **maintainer** on `ec26c3e`: checkout works on mobile" in sticky(
        host
    )
    assert host.reactions[-1] == (1, THUMBS_UP) and replies_of(host) == []
    (entry,) = [e for e in await history(svc) if e["action"] == "command qa-pass"]
    assert entry["result"] == "QA passed: checkout works on mobile"
    assert (entry["by"], entry["sha"]) == ("maintainer", SHA1)


async def test_a_fail_sets_staging_qa_to_failure_with_the_reason(svc: Services) -> None:
    host = host_of(svc)
    await running(svc)
    await comment(svc, "/staging qa-fail the cart empties after login")
    await settle(svc)
    check = host.gate_on("qa", SHA1)
    assert check is not None and check.state is CheckState.FAILURE
    assert check.title == "QA failed by maintainer: the cart empties after login"
    assert "❌ failed by **maintainer**" in sticky(host)


async def test_a_push_puts_staging_qa_back_to_pending_on_the_new_head(svc: Services) -> None:
    host = host_of(svc)
    await running(svc)
    await comment(svc, "/staging qa-pass")
    await settle(svc)
    host.push(2, SHA2)
    await deliver(svc, "pull_request", pr_payload("synchronize", SHA2))
    await settle(svc)

    pending = host.gate_on("qa", SHA2)
    assert pending is not None and pending.state is CheckState.IN_PROGRESS
    assert pending.title == "New commits since QA passed at ec26c3e"
    old = host.gate_on("qa", SHA1)
    assert old is not None and old.state is CheckState.SUCCESS  # true of that commit still
    assert "new commits since QA passed at `ec26c3e`" in sticky(host)
    (reset,) = [e for e in await history(svc) if e["action"] == "qa reset"]
    assert (reset["sha"], reset["result"]) == (SHA2, "pending")

    await comment(svc, "/staging qa-pass again", comment_id=2)
    await settle(svc)
    again = host.gate_on("qa", SHA2)
    assert again is not None and again.state is CheckState.SUCCESS


async def test_a_pass_without_write_access_is_refused_and_sets_no_check(svc: Services) -> None:
    host = host_of(svc)
    await running(svc)
    await comment(svc, "/staging qa-pass", login="reader")
    await settle(svc)
    assert host.gate_on("qa", SHA1) is None
    (reply,) = replies_of(host)
    assert "@reader" in reply and "needs write access" in reply
    assert host.reactions[-1] == (1, CONFUSED)
    assert await field(svc, plan.QA) == ""


async def test_qa_allowed_lets_a_team_member_sign_off_and_refuses_other_writers(
    listed: Services,
) -> None:
    host = host_of(listed)
    await running(listed)
    await comment(listed, "/staging qa-pass", login="maintainer")
    await settle(listed)
    assert host.gate_on("qa", SHA1) is None
    (reply,) = replies_of(host)
    assert (
        "@maintainer" in reply
        and "`acme/qa`, `Lead`" in reply
        and "Nothing was signed off" in reply
    )

    await comment(listed, "/staging qa-pass from the QA team", login="tester", comment_id=2)
    await settle(listed)
    check = host.gate_on("qa", SHA1)
    assert check is not None and check.state is CheckState.SUCCESS
    assert check.title == "QA passed by tester"


async def test_a_user_named_in_qa_allowed_needs_no_host_lookup(listed: Services) -> None:
    host = host_of(listed)
    await running(listed)
    await comment(listed, "/staging qa-fail broken", login="lead")  # logins: any case
    await settle(listed)
    check = host.gate_on("qa", SHA1)
    assert check is not None and check.state is CheckState.FAILURE
    assert "member_of" not in host.calls


async def test_a_team_lookup_the_host_refuses_is_said_in_the_refusal(listed: Services) -> None:
    host = host_of(listed)
    host.failing["member_of"] = PermanentError("Resource not accessible by integration")
    await running(listed)
    await comment(listed, "/staging qa-pass", login="tester")
    await settle(listed)
    assert host.gate_on("qa", SHA1) is None
    (reply,) = replies_of(host)
    assert "could not check `acme/qa`: Resource not accessible by integration" in reply


async def test_qa_signs_off_only_a_staging_running_the_head(svc: Services) -> None:
    host = host_of(svc)
    await running(svc)
    host.push(2, SHA2)
    await deliver(svc, "pull_request", pr_payload("synchronize", SHA2))
    # Written against the new head, handled before that head is deployed: QA cannot have
    # tested it yet.
    await comment(svc, "/staging qa-pass", comment_id=3)
    await settle(svc)
    assert host.gate_on("qa", SHA2) is None and host.gate_on("qa", SHA1) is None
    assert any("does not run the head commit yet" in reply for reply in replies_of(host))


async def test_a_sign_off_written_before_a_push_signs_off_nothing(svc: Services) -> None:
    host = host_of(svc)
    await running(svc)
    await comment(svc, "/staging qa-pass", comment_id=3)  # saw SHA1
    host.push(2, SHA2)  # the push's webhook is still on its way
    await settle(svc)
    assert host.gate_on("qa", SHA2) is None and host.gate_on("qa", SHA1) is None
    assert any("new commits arrived after your comment" in reply for reply in replies_of(host))


async def test_a_sign_off_through_the_api_path_reaches_the_host_on_the_next_round(
    svc: Services,
) -> None:
    host = host_of(svc)
    await running(svc)
    steering = Steering(svc.store, svc.queue, svc.config)
    await steering.sign_off(KEY, "qa-pass", "tested on staging", Caller("qa-team", "qa"))
    await settle(svc)
    check = host.gate_on("qa", SHA1)
    assert check is not None and check.state is CheckState.SUCCESS
    assert check.title == "QA passed by qa-team"
    assert "**QA:** ✅ passed by **qa-team** on `ec26c3e`: tested on staging" in sticky(host)


async def test_report_waiting_puts_staging_qa_pending_from_the_start(redis_url: str) -> None:
    svc = await services(redis_url, QaConfig(report_waiting=True))
    try:
        host = host_of(svc)
        await running(svc)
        waiting = host.gate_on("qa", SHA1)
        assert waiting is not None and waiting.state is CheckState.IN_PROGRESS
        assert waiting.title == "Waiting for QA"
        assert "**QA:** ⏳ waiting for a sign-off" in sticky(host)
        await comment(svc, "/staging qa-pass")
        await settle(svc)
        passed = host.gate_on("qa", SHA1)
        assert passed is not None and passed.state is CheckState.SUCCESS
        assert [e for e in await history(svc) if e["action"] == "qa reset"] == []
    finally:
        await svc.queue.aclose(close_connection_pool=True)


async def test_status_says_what_qa_last_said(svc: Services) -> None:
    host = host_of(svc)
    await running(svc)
    await comment(svc, "/staging qa-fail login loops\n/staging status")
    await settle(svc)
    (reply,) = replies_of(host)
    assert "**QA:** ❌ failed by **maintainer** on `ec26c3e`: login loops" in reply
