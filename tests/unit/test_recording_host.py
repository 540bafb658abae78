"""RecordingHost behaves like the real hosts where handler tests rely on it."""

from __future__ import annotations

import pytest

from bot.errors import TemporaryError
from bot.hosts.base import GitHost
from bot.model import RepoRef
from tests.fakes.recording import RecordingHost

REF = RepoRef("github", 1, "acme/shop")


def test_it_is_a_git_host() -> None:
    host: GitHost = RecordingHost()  # mypy checks the Protocol structurally
    assert host


async def test_labels_are_set_when_opened_and_changed_later() -> None:
    host = RecordingHost()
    host.open_pull(REF, 2, "a" * 40)
    host.open_pull(REF, 3, "b" * 40, labels=["no-staging"])

    assert (await host.get_pull(REF, 2)).labels == ()
    assert (await host.get_pull(REF, 3)).labels == ("no-staging",)
    host.set_labels(3, ["staging", "backend"])
    assert (await host.get_pull(REF, 3)).labels == ("staging", "backend")


async def test_every_reply_is_recorded_with_a_new_id() -> None:
    host = RecordingHost()
    sticky = await host.upsert_comment(REF, 2, "Ready", None)

    first = await host.reply(REF, 2, "<!-- r -->\nDone")
    second = await host.reply(REF, 2, "<!-- r -->\nDone")

    assert len({sticky, first, second}) == 3
    assert host.replies == [(2, "<!-- r -->\nDone"), (2, "<!-- r -->\nDone")]
    assert host.comments == {sticky: "Ready"}  # the sticky comment is another thing


async def test_identity_is_the_configured_login() -> None:
    assert await RecordingHost().identity() == "stagingbot[bot]"
    assert await RecordingHost(login="stagingbot").identity() == "stagingbot"


async def test_reply_and_identity_can_fail_like_any_call() -> None:
    host = RecordingHost(fail_next=[TemporaryError("502"), TemporaryError("503")])

    with pytest.raises(TemporaryError, match="502"):
        await host.identity()
    with pytest.raises(TemporaryError, match="503"):
        await host.reply(REF, 2, "Done")
    assert host.replies == []
    assert host.calls == ["identity", "reply"]


async def test_each_request_has_its_own_sticky_comment_as_on_a_real_host() -> None:
    host = RecordingHost()
    on_two = await host.upsert_comment(REF, 2, "Two: pending", None)
    on_three = await host.upsert_comment(REF, 3, "Three: pending", None)

    assert on_three != on_two
    assert await host.upsert_comment(REF, 2, "Two: running", None) == on_two  # found again
    assert await host.upsert_comment(REF, 3, "Three: running", on_three) == on_three
    assert host.comments_on(2) == ["Two: running"]
    assert host.comments_on(3) == ["Three: running"]
    assert host.comments == {on_two: "Two: running", on_three: "Three: running"}
