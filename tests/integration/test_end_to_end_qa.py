"""End to end: QA signs off in a comment, `staging/qa` lands on the head commit through the
real PyGithub / python-gitlab, and a push puts it back to pending on the new head."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from bot.config import QaConfig
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.kube import FakeKube
from tests.helpers import REPO, pr_payload
from tests.integration import test_end_to_end_gitlab_commands as lab
from tests.integration.test_end_to_end import (
    SHA1,
    SHA2,
    bot_config,
    deliver,
    eventually,
    running_bot,
)
from tests.integration.test_end_to_end_commands import replies, running, say, sticky

gitlab = lab.gitlab  # the GitLab project with a Developer, a Reporter and an outsider


def qa_run(github: FakeGitHub, sha: str) -> dict[str, Any] | None:
    runs = [run for run in github.check_runs(REPO, sha) if run["name"] == "staging/qa"]
    assert len(runs) <= 1, runs  # one check run per commit, edited in place
    return runs[0] if runs else None


def concluded(github: FakeGitHub, sha: str, conclusion: str) -> dict[str, Any] | None:
    run = qa_run(github, sha)
    return run if run and run["conclusion"] == conclusion else None


async def test_github_qa_pass_then_a_push_puts_staging_qa_back_to_pending(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    github.set_role(REPO, "tess", "write")
    async with running_bot(bot_config(redis_url, github, kube, tmp_path, app=True)) as bot:
        await running(bot, github)
        await say(bot, github, "/staging qa-pass checkout and refunds work", "tess")
        run = await eventually(lambda: concluded(github, SHA1, "success"), "QA passed")
        assert run["output"]["title"] == "QA passed by tess"
        assert "checkout and refunds work" in run["output"]["summary"]
        await eventually(lambda: "✅ passed by **tess**" in sticky(github), "QA in the comment")

        github.set_head(REPO, 2, SHA2)
        await deliver(bot, pr_payload("synchronize", SHA2))
        pending = await eventually(lambda: qa_run(github, SHA2), "staging/qa on the new head")
        assert pending["status"] == "in_progress" and pending["conclusion"] is None
        assert pending["output"]["title"] == "New commits since QA passed at ec26c3e"
        assert concluded(github, SHA1, "success")  # still true of the commit QA tested


async def test_github_a_team_in_qa_allowed_signs_off_and_others_are_refused(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    owner = REPO.split("/")[0]
    github.add_team(owner, "qa", members=("tess",))
    github.set_role(REPO, "maintainer", "write")
    config = bot_config(redis_url, github, kube, tmp_path, app=True)
    config = replace(config, qa=QaConfig(allowed=(f"{owner}/qa",)))
    async with running_bot(config) as bot:
        await running(bot, github)
        await say(bot, github, "/staging qa-pass", "maintainer")
        (reply,) = await eventually(lambda: replies(github), "a refusal")
        assert "@maintainer" in reply and "Nothing was signed off" in reply
        assert qa_run(github, SHA1) is None

        await say(bot, github, "/staging qa-fail the cart is empty after login", "tess")
        run = await eventually(lambda: concluded(github, SHA1, "failure"), "QA failed")
        assert run["output"]["title"] == "QA failed by tess: the cart is empty after login"


async def test_gitlab_qa_pass_sets_a_staging_qa_status_and_a_push_resets_it(
    redis_url: str, gitlab: FakeGitLab, kube: FakeKube, tmp_path: Path
) -> None:
    def qa_status(sha: str, state: str) -> dict[str, Any] | None:
        found = [s for s in gitlab.statuses(lab.PROJECT, sha) if s["name"] == "staging/qa"]
        return found[-1] if found and found[-1]["status"] == state else None

    async with lab.bot_for(lab.config_for(redis_url, gitlab, kube, tmp_path)) as bot:
        await lab.running(bot, gitlab)
        await lab.say(bot, gitlab, "/staging qa-pass", lab.REPORTER)  # below Developer
        (reply,) = await eventually(lambda: lab.replies(gitlab), "a refusal", lab.WITHIN)
        assert "@reporter" in reply and "Developer role" in reply

        await lab.say(bot, gitlab, "/staging qa-pass looks right", lab.DEVELOPER)
        status = await eventually(lambda: qa_status(lab.SHA1, "success"), "QA passed", lab.WITHIN)
        assert status["description"] == "QA passed by dev"

        gitlab.set_head(lab.PROJECT, lab.IID, lab.SHA2)
        await lab.deliver(bot, lab.mr_hook("update", lab.SHA2), "push-2")
        pending = await eventually(lambda: qa_status(lab.SHA2, "running"), "reset", lab.WITHIN)
        assert pending["description"] == "New commits since QA passed at " + lab.SHA1[:7]
        await eventually(
            lambda: lab.final_status(gitlab, lab.SHA2, "success"), "new head deployed", lab.WITHIN
        )
