"""The hosts' side of QA sign-off, through the real PyGithub and python-gitlab against the
local fakes: the `staging/qa` check or status, and team / group membership."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import GitHubConfig, GitLabConfig, Secret
from bot.errors import PermanentError
from bot.hosts.github import GitHubHost
from bot.hosts.gitlab import GitLabHost
from bot.model import CheckReport, CheckState, RepoRef
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab

REPO, REPO_ID = "acme/shop", 186853002
GH = RepoRef("github", REPO_ID, REPO)
PROJECT, PROJECT_ID = "acme/web/shop", 278964
GL = RepoRef("gitlab", PROJECT_ID, PROJECT)
SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
PASSED = CheckReport(CheckState.SUCCESS, "QA passed by tess", "QA passed commit `ec26c3e`")
FAILED = CheckReport(CheckState.FAILURE, "QA failed by tess: cart", "QA failed commit `ec26c3e`")
PENDING = CheckReport(CheckState.IN_PROGRESS, "New commits since QA passed at 1234567", "again")


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        server.add_repo(REPO, REPO_ID, installation_id=7)
        server.add_repo("other/thing", 99, installation_id=8)
        server.add_pull(REPO, 2, SHA, branch="changes")
        server.add_team("acme", "qa", members=("tess",), pending=("newbie",))
        server.add_team("other", "qa", members=("tess",))
        yield server


@pytest.fixture
def app(github: FakeGitHub, tmp_path: Path) -> Iterator[GitHubHost]:
    key = tmp_path / "app.pem"
    key.write_text(github.private_key_pem)
    host = GitHubHost(
        GitHubConfig(api_url=github.url, app_id=github.app_id, private_key_file=str(key))
    )
    yield host
    host.close()


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    with FakeGitLab() as server:
        server.add_project(PROJECT, PROJECT_ID)
        server.add_mr(PROJECT, 12, SHA, branch="cart", title="Cart", author="alice")
        server.add_group("acme", 10)
        server.add_group("acme/qa", 11)
        server.add_group("acme/qa/mobile", 12)
        server.add_user("tess", 501)
        server.add_user("lead", 502)
        server.add_user("dev", 503)
        server.add_member("acme/qa", "tess", 30)
        server.add_member("acme", "lead", 50)
        server.add_member(PROJECT, "dev", 30)
        yield server


@pytest.fixture
def lab(gitlab: FakeGitLab) -> Iterator[GitLabHost]:
    host = GitLabHost(GitLabConfig(url=gitlab.url, token=Secret(gitlab.token)))
    yield host
    host.close()


async def test_github_app_writes_a_second_check_run_named_staging_qa(
    app: GitHubHost, github: FakeGitHub
) -> None:
    first = await app.report_check(GH, SHA, PASSED, None, gate="qa")
    same = await app.report_check(GH, SHA, PASSED, first, gate="qa")  # said again: edited
    # QA changes its mind: GitHub keeps a completed run's conclusion, so the caller gives
    # no id and the adapter, finding the completed run, starts a new one.
    again = await app.report_check(GH, SHA, FAILED, None, gate="qa")
    await app.report_check(GH, SHA, PENDING, None)  # the staging check is another run

    assert same == first != again
    runs = {run["name"]: run for run in github.check_runs(REPO, SHA)}  # the newest of each
    assert set(runs) == {"staging", "staging/qa"}
    assert runs["staging/qa"]["id"] == again
    assert runs["staging/qa"]["conclusion"] == "failure"
    assert runs["staging/qa"]["output"]["title"] == "QA failed by tess: cart"
    assert github.calls("PATCH", rf"/check-runs/{again}$") == []  # created as it is


async def test_github_with_a_token_writes_a_commit_status_with_context_staging_qa(
    github: FakeGitHub,
) -> None:
    host = GitHubHost(GitHubConfig(api_url=github.url, token=Secret(github.personal_token)))
    try:
        await host.report_check(GH, SHA, PENDING, None, gate="qa")
        await host.report_check(GH, SHA, PASSED, None, gate="qa")
    finally:
        host.close()
    statuses = [(s["context"], s["state"]) for s in github.statuses(REPO, SHA)]
    assert statuses == [("staging/qa", "pending"), ("staging/qa", "success")]


@pytest.mark.parametrize(
    ("team", "user", "member"),
    [
        ("acme/qa", "tess", True),
        ("ACME/QA", "Tess", True),  # GitHub names are case-insensitive
        ("acme/qa", "newbie", False),  # invited, not yet accepted
        ("acme/qa", "stranger", False),
        ("acme/nope", "tess", False),  # no such team: GitHub's 404 too
        ("qa", "tess", False),  # not `org/team`: nothing asked
    ],
)
async def test_github_team_membership_through_the_apps_installation(
    app: GitHubHost, github: FakeGitHub, team: str, user: str, member: bool
) -> None:
    assert await app.member_of(GH, team, user) is member
    asked = github.calls("GET", r"^/orgs/")
    assert [call.auth for call in asked] == ([] if team == "qa" else ["installation"])


async def test_github_team_of_another_organization_is_not_visible(
    app: GitHubHost, github: FakeGitHub
) -> None:
    assert await app.member_of(GH, "other/qa", "tess") is False


async def test_github_without_members_read_the_lookup_fails_with_the_hosts_words(
    app: GitHubHost, github: FakeGitHub
) -> None:
    github.revoke_members_read(7)
    with pytest.raises(PermanentError, match="Resource not accessible by integration"):
        await app.member_of(GH, "acme/qa", "tess")


async def test_gitlab_writes_a_commit_status_named_staging_qa(
    lab: GitLabHost, gitlab: FakeGitLab
) -> None:
    await lab.report_check(GL, SHA, PENDING, None)
    await lab.report_check(GL, SHA, PASSED, None, gate="qa")
    statuses = [(s["name"], s["status"]) for s in gitlab.statuses(PROJECT, SHA)]
    assert statuses == [("staging", "running"), ("staging/qa", "success")]


@pytest.mark.parametrize(
    ("group", "user", "member"),
    [
        ("acme/qa", "tess", True),
        ("acme/qa/mobile", "tess", True),  # inherited from the parent group
        ("acme/qa", "lead", True),  # an owner of the top-level group
        ("acme", "tess", False),  # membership is not inherited upwards
        ("acme/qa", "dev", False),  # a project member only
        ("acme/nope", "tess", False),
        ("tess", "tess", False),  # a username is no group
        ("acme/qa", "nobody", False),  # no such user: not even asked
    ],
)
async def test_gitlab_group_membership_includes_parent_groups(
    lab: GitLabHost, gitlab: FakeGitLab, group: str, user: str, member: bool
) -> None:
    assert await lab.member_of(GL, group, user) is member
    if user != "nobody":
        (call,) = gitlab.calls("GET", r"^/api/v4/groups/")
        assert call.path.endswith(
            "/members/all/" + str({"tess": 501, "lead": 502, "dev": 503}[user])
        )
