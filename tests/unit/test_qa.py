"""What `staging/qa` and the sticky comment say about QA's sign-off, and who is asked (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_config
from bot.model import CheckState
from handlers import actions, plan, qa
from tests.unit.test_config import REQUIRED, write

HEAD, OLD = "a" * 40, "b" * 40
RUNNING = {"phase": "running", "sha": HEAD, "desired_sha": HEAD}


def signed(verdict: str, sha: str = HEAD, note: str = "") -> dict[str, str]:
    return {
        plan.QA: verdict,
        plan.QA_SHA: sha,
        plan.QA_BY: "tess",
        plan.QA_NOTE: note,
        plan.QA_AT: "1750000000.000",
    }


def test_nothing_is_reported_before_anyone_signs_off_unless_asked_to_wait() -> None:
    assert qa.check_for({}, HEAD, "/staging") is None
    assert qa.comment_note({}, HEAD, "/staging") == ""
    waiting = qa.check_for({}, HEAD, "/staging", waiting=True)
    assert waiting is not None and waiting.state is CheckState.IN_PROGRESS
    assert "`/staging qa-pass [note]`" in waiting.summary


@pytest.mark.parametrize(
    ("verdict", "state", "title"),
    [
        (actions.PASSED, CheckState.SUCCESS, "QA passed by tess"),
        (actions.FAILED, CheckState.FAILURE, "QA failed by tess: no <!-- marker"),
    ],
)
def test_a_sign_off_on_the_head_is_its_verdict_with_who_and_the_note(
    verdict: str, state: CheckState, title: str
) -> None:
    check = qa.check_for(signed(verdict, note="no <!-- marker"), HEAD, "/staging")
    assert check is not None and check.state is state
    assert check.title == title  # plain text: nothing is markup there
    assert "> no &lt;!-- marker" in check.summary and "2025-06-15" in check.summary


def test_a_sign_off_on_an_older_commit_is_pending_on_the_head() -> None:
    check = qa.check_for(signed(actions.FAILED, sha=OLD), HEAD, "!st")
    assert check is not None and check.state is CheckState.IN_PROGRESS
    assert check.title == "New commits since QA failed at bbbbbbb"
    assert "`!st qa-pass [note]`" in check.summary
    note = qa.comment_note(signed(actions.FAILED, sha=OLD), HEAD, "!st")
    assert note == (
        "**QA:** ⏳ new commits since QA failed at `bbbbbbb`: waiting for a new sign-off "
        "(`!st qa-pass`)."
    )


def test_sign_off_needs_the_head_deployed_and_a_pass_needs_it_running() -> None:
    ok = actions.sign_off(RUNNING, HEAD, "tess", actions.PASSED, "fine", 1.0)
    assert ok.refusal is None and ok.changes[plan.QA_SHA] == HEAD
    moved = actions.sign_off(RUNNING, OLD, "tess", actions.PASSED, "", 1.0)
    assert moved.refusal is actions.Refusal.QA_NOT_AT_HEAD
    broken = {**RUNNING, "phase": "failed"}
    assert actions.sign_off(broken, HEAD, "t", actions.PASSED, "", 1.0).refusal is (
        actions.Refusal.QA_NOT_RUNNING
    )
    assert actions.sign_off(broken, HEAD, "t", actions.FAILED, "x", 1.0).refusal is None
    gone = {**RUNNING, "phase": "gone"}
    assert actions.sign_off(gone, HEAD, "t", actions.FAILED, "x", 1.0).refusal is (
        actions.Refusal.QA_NOT_AT_HEAD
    )


@pytest.mark.parametrize(
    ("host", "asked"),
    [("github", ["acme/qa"]), ("gitlab", ["acme/qa", "tess", "qa-team"])],
)
def test_which_allowed_entries_are_asked_about_as_teams_or_groups(
    host: str, asked: list[str]
) -> None:
    assert qa.groups_in(("acme/qa", "tess", "qa-team"), host) == asked


def test_qa_allowed_comes_from_the_file_or_the_environment_and_blank_is_an_error(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, '[qa]\nallowed = ["tess", "acme/qa"]\nreport_waiting = true\n')
    config = load_config(path, REQUIRED)
    assert config.qa.allowed == ("tess", "acme/qa") and config.qa.report_waiting is True
    from_env = load_config(None, {**REQUIRED, "STAGINGBOT_QA_ALLOWED": "lead, acme/web/qa"})
    assert from_env.qa.allowed == ("lead", "acme/web/qa")
    assert load_config(None, REQUIRED).qa.allowed == ()
    with pytest.raises(ConfigError, match=r'qa\.allowed\[1\]: expected a name, got " "'):
        load_config(write(tmp_path, '[qa]\nallowed = ["tess", " "]\n'), REQUIRED)
