"""Slash-commands through the reconcile job: permissions, effects, forks, rules (real Redis)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from arq import Retry
from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from bot.config import CommandsConfig
from bot.errors import PermanentError
from bot.hosts.base import CONFUSED, EYES, THUMBS_UP, Access
from bot.hosts.github_sansio import parse_delivery
from bot.model import Phase, RepoRef, StagingKey
from bot.services import Services
from bot.store import Store
from bot.web import update_for
from handlers.reconcile import reconcile
from tests.fakes.recording import RecordingHost, RecordingProvisioner, host_of, prov_of
from tests.helpers import REPO, REPO_ID, comment_payload, make_config, pr_payload

REPO_REF = RepoRef("github", REPO_ID, REPO)
KEY = StagingKey("github", REPO_ID, 2)
SHA1 = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
SHA2 = "2" * 40
SECRET_VALUE = "sk_live_do-not-leak-1234"


@pytest.fixture
async def svc(redis_url: str) -> AsyncIterator[Services]:
    config = make_config(redis_url, commands=CommandsConfig(secret_keys=("STRIPE_KEY",)))
    redis = ArqRedis(ConnectionPool.from_url(redis_url))
    host = RecordingHost(access={"maintainer": Access.WRITE, "reader": Access.READ})
    host.open_pull(REPO_REF, 2, SHA1)
    yield Services(
        config,
        Store(redis, config.redis.key_prefix),
        redis,
        {"github": host},
        RecordingProvisioner(),
    )
    await redis.aclose(close_connection_pool=True)


async def deliver(svc: Services, event: str, payload: dict[str, Any]) -> None:
    (parsed,) = parse_delivery(event, payload).events
    await svc.store.record_delivery(f"d-{time.monotonic_ns()}", 60, [update_for(parsed, 0)])


async def comment(svc: Services, body: str, login: str = "maintainer", comment_id: int = 1) -> None:
    await deliver(svc, "issue_comment", comment_payload(body, login, comment_id))


async def settle(svc: Services) -> None:
    """Run the job until it stops asking to come back (rollouts are instant here)."""
    for _ in range(10):
        try:
            await reconcile({"services": svc}, str(KEY))
            return
        except Retry:
            continue
    pytest.fail("the job never settled")


async def field(svc: Services, name: str) -> str:
    record = await svc.store.load(KEY)
    assert record is not None
    return record.get(name)


async def running(svc: Services) -> None:
    await deliver(svc, "pull_request", pr_payload("opened"))
    await settle(svc)
    assert await field(svc, "phase") == Phase.RUNNING


def sticky(host: RecordingHost) -> str:
    (body,) = host.comments.values()
    return body


async def test_set_by_a_maintainer_redeploys_with_the_variable_and_shows_it(svc: Services) -> None:
    host, prov = host_of(svc), prov_of(svc)
    await running(svc)
    await comment(svc, "Please try this:\n/staging set FEATURE_X=on GREETING='hi there'")
    await settle(svc)
    assert [t.sha for t in prov.applied] == [SHA1, SHA1]
    assert prov.applied[-1].overrides == (("FEATURE_X", "on"), ("GREETING", "hi there"))
    assert host.reactions == [(1, EYES), (1, THUMBS_UP)]
    assert "`FEATURE_X` = `on`" in sticky(host)
    assert host.replies == []  # the outcome shows in the sticky comment


async def test_unset_removes_the_variable_and_redeploys(svc: Services) -> None:
    prov = prov_of(svc)
    await running(svc)
    await comment(svc, "/staging set A=1 B=2")
    await settle(svc)
    await comment(svc, "/staging unset A", comment_id=2)
    await settle(svc)
    assert prov.applied[-1].overrides == (("B", "2"),)


async def test_a_person_without_write_access_is_refused_and_nothing_changes(
    svc: Services,
) -> None:
    host, prov = host_of(svc), prov_of(svc)
    await running(svc)
    await comment(svc, "/staging destroy", login="reader")
    await settle(svc)
    assert prov.destroyed == [] and await field(svc, "phase") == Phase.RUNNING
    ((_, reply),) = host.replies
    assert "`/staging destroy` needs write access" in reply and "@reader" in reply
    assert host.reactions == [(1, EYES), (1, CONFUSED)]


async def test_status_and_help_are_open_to_anyone_who_can_comment(svc: Services) -> None:
    host = host_of(svc)
    await running(svc)
    await comment(svc, "/staging status\n/staging help", login="stranger")
    await settle(svc)
    status, help_text = (body for _, body in host.replies)
    assert "**Staging:** running" in status and "ec26c3e" in status
    assert "https://hello-world-pr-2-0085.staging.example.com/" in status
    assert "redeploy" in help_text and "archive" in help_text
    assert host.reactions[-1] == (1, THUMBS_UP)


async def test_the_bots_own_comment_is_never_taken_for_a_command(svc: Services) -> None:
    host, prov = host_of(svc), prov_of(svc)
    await running(svc)
    await comment(svc, "/staging destroy", login="stagingbot[bot]")
    await settle(svc)
    assert prov.destroyed == [] and host.reactions == [] and host.replies == []


async def test_the_same_comment_delivered_twice_acts_once(svc: Services) -> None:
    prov = prov_of(svc)
    await running(svc)
    await comment(svc, "/staging redeploy", comment_id=5)
    await comment(svc, "/staging redeploy", comment_id=5)  # a new delivery id, the same note
    await settle(svc)
    assert len(prov.applied) == 2


async def test_a_malformed_command_gets_a_reply_saying_what_is_wrong(svc: Services) -> None:
    host, prov = host_of(svc), prov_of(svc)
    await running(svc)
    await comment(svc, "/staging redeplyo\n/staging set lower=1")
    await settle(svc)
    ((_, reply),) = host.replies
    assert "did you mean `/staging redeploy`" in reply
    assert "FEATURE" not in reply and "upper case" in reply
    assert len(prov.applied) == 1 and host.reactions[-1] == (1, CONFUSED)


async def test_a_secret_key_is_refused_from_a_comment_without_repeating_its_value(
    svc: Services,
) -> None:
    host, prov = host_of(svc), prov_of(svc)
    await running(svc)
    await comment(svc, f"/staging set STRIPE_KEY={SECRET_VALUE}")
    await settle(svc)
    ((_, reply),) = host.replies
    assert "`STRIPE_KEY` is secret" in reply and "rotate" in reply
    assert SECRET_VALUE not in reply and SECRET_VALUE not in sticky(host)
    assert SECRET_VALUE not in await field(svc, "overrides")
    assert len(prov.applied) == 1


async def test_redeploy_applies_again_at_the_same_commit(svc: Services) -> None:
    prov = prov_of(svc)
    await running(svc)
    await comment(svc, "/staging redeploy")
    await settle(svc)
    first, second = prov.applied
    assert first.sha == second.sha == SHA1
    assert first.redeploy_token != second.redeploy_token


async def test_destroy_removes_the_staging_until_the_next_push(svc: Services) -> None:
    host, prov = host_of(svc), prov_of(svc)
    await running(svc)
    await comment(svc, "/staging destroy")
    await settle(svc)
    assert prov.destroyed and await field(svc, "phase") == Phase.GONE
    assert "removed by @maintainer" in sticky(host)
    await deliver(svc, "pull_request", pr_payload("opened"))  # any event: still destroyed
    await settle(svc)
    assert len(prov.applied) == 1
    host.push(2, SHA2)
    await deliver(svc, "pull_request", pr_payload("synchronize", SHA2))
    await settle(svc)
    assert prov.applied[-1].sha == SHA2 and await field(svc, "phase") == Phase.RUNNING


async def test_archive_scales_down_and_restore_brings_it_back(svc: Services) -> None:
    host, prov = host_of(svc), prov_of(svc)
    await running(svc)
    await comment(svc, "/staging archive")
    await settle(svc)
    assert prov.calls == ["archive staging-hello-world-pr-2-0085"]
    assert await field(svc, "phase") == Phase.ARCHIVED and "archived" in sticky(host)
    await comment(svc, "/staging restore", comment_id=2)
    await settle(svc)
    assert prov.calls[-1] == "restore staging-hello-world-pr-2-0085"
    assert len(prov.applied) == 2 and await field(svc, "phase") == Phase.RUNNING


async def test_a_push_to_an_archived_staging_restores_it_at_the_new_head(svc: Services) -> None:
    host, prov = host_of(svc), prov_of(svc)
    await running(svc)
    await comment(svc, "/staging archive")
    await settle(svc)
    host.push(2, SHA2)
    await deliver(svc, "pull_request", pr_payload("synchronize", SHA2))
    await settle(svc)
    assert prov.calls[-1].startswith("restore") and prov.applied[-1].sha == SHA2


async def test_restore_of_a_staging_that_is_not_archived_says_so(svc: Services) -> None:
    host = host_of(svc)
    await running(svc)
    await comment(svc, "/staging restore")
    await settle(svc)
    ((_, reply),) = host.replies
    assert "not archived" in reply


# --- forks ----------------------------------------------------------------------------


@pytest.fixture
async def fork(svc: Services) -> Services:
    host = host_of(svc)
    host.pulls[2] = replace(host.pulls[2], fork=True)
    return svc


async def test_a_fork_is_not_deployed_until_a_maintainer_approves(fork: Services) -> None:
    host, prov = host_of(fork), prov_of(fork)
    await deliver(fork, "pull_request", pr_payload("opened"))
    await settle(fork)
    assert prov.applied == [] and await field(fork, "phase") == Phase.AWAITING_APPROVAL
    assert "a maintainer (write access) approves" in sticky(host).lower()
    assert host.checks == {}  # nothing is built, so no check claims anything
    await comment(fork, "/staging deploy")
    await settle(fork)
    assert [t.sha for t in prov.applied] == [SHA1]
    ((_, reply),) = host.replies
    assert f"approved commit `{SHA1}`" in reply
    history = await fork.store.history(KEY)
    assert any(entry["result"] == "approved ec26c3e" for entry in history)


async def test_a_fork_push_after_approval_is_not_deployed_until_approved_again(
    fork: Services,
) -> None:
    host, prov = host_of(fork), prov_of(fork)
    await deliver(fork, "pull_request", pr_payload("opened"))
    await comment(fork, "/staging deploy")
    await settle(fork)
    host.push(2, SHA2)
    await deliver(fork, "pull_request", pr_payload("synchronize", SHA2))
    await settle(fork)
    assert [t.sha for t in prov.applied] == [SHA1]
    assert "`2222222` from the fork is not deployed" in sticky(host)
    await comment(fork, f"/staging deploy {SHA2}", comment_id=2)
    await settle(fork)
    assert [t.sha for t in prov.applied] == [SHA1, SHA2]
    assert "not deployed" not in sticky(host)


async def test_an_approval_written_before_the_fork_pushed_again_is_refused(
    fork: Services,
) -> None:
    host, prov = host_of(fork), prov_of(fork)
    await deliver(fork, "pull_request", pr_payload("opened"))
    await settle(fork)
    await comment(fork, "/staging deploy")  # the bot last saw SHA1 when this arrived...
    host.push(2, SHA2)  # ...but the fork pushed before the job ran
    await settle(fork)
    assert prov.applied == []
    ((_, reply),) = host.replies
    assert f"pushed `{SHA2}` after your comment" in reply


async def test_approving_a_sha_that_is_not_the_head_is_refused(fork: Services) -> None:
    host, prov = host_of(fork), prov_of(fork)
    await deliver(fork, "pull_request", pr_payload("opened"))
    await comment(fork, "/staging deploy abcdef1")
    await settle(fork)
    assert prov.applied == []
    ((_, reply),) = host.replies
    assert "`abcdef1` is not the head" in reply


async def test_a_reader_cannot_approve_a_fork(fork: Services) -> None:
    host, prov = host_of(fork), prov_of(fork)
    await deliver(fork, "pull_request", pr_payload("opened"))
    await comment(fork, "/staging deploy", login="reader")
    await settle(fork)
    assert prov.applied == [] and "needs write access" in host.replies[0][1]


# --- rules ----------------------------------------------------------------------------


def with_rules(svc: Services, **rules: Any) -> Services:
    return replace(svc, config=replace(svc.config, staging=replace(svc.config.staging, **rules)))


async def test_a_draft_gets_no_staging_until_ready_and_loses_it_when_drafted(
    svc: Services,
) -> None:
    svc = with_rules(svc, drafts=False)
    host, prov = host_of(svc), prov_of(svc)
    host.pulls[2] = replace(host.pulls[2], draft=True)
    await deliver(svc, "pull_request", pr_payload("opened"))
    await settle(svc)
    assert prov.applied == [] and host.comments == {}  # nothing built, nothing said
    host.pulls[2] = replace(host.pulls[2], draft=False)
    await deliver(
        svc,
        "pull_request",
        pr_payload("ready_for_review", fixture="pull_request.ready_for_review.json"),
    )
    await settle(svc)
    assert len(prov.applied) == 1 and await field(svc, "phase") == Phase.RUNNING
    host.pulls[2] = replace(host.pulls[2], draft=True)
    payload = pr_payload("converted_to_draft", fixture="pull_request.converted_to_draft.json")
    await deliver(svc, "pull_request", payload)
    await settle(svc)
    assert prov.destroyed and "draft pull requests get no staging" in sticky(host)


async def test_removing_the_opt_in_label_removes_the_staging(svc: Services) -> None:
    svc = with_rules(svc, require_label="staging")
    host, prov = host_of(svc), prov_of(svc)
    host.set_labels(2, ("staging",))
    await deliver(svc, "pull_request", pr_payload("labeled", fixture="pull_request.labeled.json"))
    await settle(svc)
    assert len(prov.applied) == 1
    host.set_labels(2, ())
    await deliver(
        svc, "pull_request", pr_payload("unlabeled", fixture="pull_request.unlabeled.json")
    )
    await settle(svc)
    assert prov.destroyed and "labelled `staging`" in sticky(host)


async def test_deploy_by_a_maintainer_overrides_the_rules(svc: Services) -> None:
    svc = with_rules(svc, require_label="staging")
    prov = prov_of(svc)
    await deliver(svc, "pull_request", pr_payload("opened"))
    await settle(svc)
    assert prov.applied == []
    await comment(svc, "/staging deploy")
    await settle(svc)
    assert len(prov.applied) == 1


async def test_a_short_sha_never_approves_a_fork_commit(fork: Services) -> None:
    # Another commit could be crafted to share a 7-character prefix with the reviewed one.
    host, prov = host_of(fork), prov_of(fork)
    await deliver(fork, "pull_request", pr_payload("opened"))
    await comment(fork, f"/staging deploy {SHA1[:7]}")
    await settle(fork)
    assert prov.applied == []
    ((_, reply),) = host.replies
    assert f"/staging deploy {SHA1}" in reply and "Nothing was approved" in reply


async def test_a_fork_approval_is_refused_when_the_bot_never_saw_the_head(
    fork: Services,
) -> None:
    # No pull_request event ever arrived (installed later, or a webhook lost): the bot
    # cannot tell which commit the comment saw, so only the full SHA approves.
    host, prov = host_of(fork), prov_of(fork)
    await comment(fork, "/staging deploy")
    await settle(fork)
    assert prov.applied == [] and "cannot tell which commit" in host.replies[0][1]
    await comment(fork, f"/staging deploy {SHA1}", comment_id=2)
    await settle(fork)
    assert [t.sha for t in prov.applied] == [SHA1]


async def test_a_destroyed_fork_staging_stays_gone_when_the_fork_pushes(fork: Services) -> None:
    host, prov = host_of(fork), prov_of(fork)
    await deliver(fork, "pull_request", pr_payload("opened"))
    await comment(fork, "/staging deploy")
    await settle(fork)
    await comment(fork, "/staging destroy", comment_id=2)
    await settle(fork)
    host.push(2, SHA2)
    await deliver(fork, "pull_request", pr_payload("synchronize", SHA2))
    await settle(fork)
    assert [t.sha for t in prov.applied] == [SHA1]
    assert await field(fork, "phase") == Phase.AWAITING_APPROVAL


async def test_a_refused_command_never_repeats_a_value_and_warns_about_secrets(
    svc: Services,
) -> None:
    host = host_of(svc)
    await running(svc)
    await comment(svc, f"/staging set STRIPE_KEY={SECRET_VALUE} OTHER=x", login="reader")
    await settle(svc)
    bodies = " ".join(body for _, body in host.replies)
    assert SECRET_VALUE not in bodies and "needs write access" in bodies
    assert "rotate" in bodies


async def test_a_comment_that_cannot_be_reacted_to_does_not_block_the_staging(
    svc: Services,
) -> None:
    # Deleted right after it was written: GitHub answers 404 to the reaction, for good.
    host, prov = host_of(svc), prov_of(svc)
    await running(svc)
    await comment(svc, "/staging status", login="stranger")
    host.failing["react"] = PermanentError("comment not found")
    host.close(2)
    await deliver(svc, "pull_request", pr_payload("closed"))
    await settle(svc)
    assert prov.destroyed and await field(svc, "phase") == Phase.GONE
    assert "**Staging:**" in host.replies[0][1]  # the command still ran


async def test_redeploy_does_not_override_the_rules(svc: Services) -> None:
    svc = with_rules(svc, require_label="staging")
    host, prov = host_of(svc), prov_of(svc)
    host.set_labels(2, ("staging",))
    await running(svc)
    await comment(svc, "/staging redeploy")
    await settle(svc)
    host.set_labels(2, ())
    await deliver(
        svc, "pull_request", pr_payload("unlabeled", fixture="pull_request.unlabeled.json")
    )
    await settle(svc)
    assert prov.destroyed
