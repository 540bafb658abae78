"""GitLabHost drives the real python-gitlab over HTTP against the local fake GitLab."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import gitlab
import pytest

from bot.config import ConfigError, GitLabConfig, Secret
from bot.errors import PermanentError, TemporaryError
from bot.hosts.base import CONFUSED, EYES, STICKY_MARKER, THUMBS_UP, Access, GitHost
from bot.hosts.gitlab import GitLabHost
from bot.model import CheckReport, CheckState, DeployState, RepoRef
from tests.fakes.gitlab import FakeGitLab

PROJECT = "acme/shop"
PROJECT_ID = 278964
REF = RepoRef("gitlab", PROJECT_ID, PROJECT)
SHA1 = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
SHA2 = "2" * 40
ENV = "review/mr-12"
URL = "https://shop-mr-12.staging.example.com"
RUNNING = CheckReport(CheckState.IN_PROGRESS, "Deploying", "Rolling out mr-12")
READY = CheckReport(CheckState.SUCCESS, "Ready", "mr-12 is up", URL)


@pytest.fixture(autouse=True)
def no_sleeping(monkeypatch: pytest.MonkeyPatch) -> None:
    """python-gitlab must never sleep in the thread (429 Retry-After, transient retries)."""

    def refuse(seconds: float) -> None:
        raise AssertionError(f"something slept {seconds}s")

    monkeypatch.setattr("time.sleep", refuse)


@pytest.fixture
def fake() -> Iterator[FakeGitLab]:
    with FakeGitLab() as server:
        server.add_project(PROJECT, PROJECT_ID)
        server.add_mr(PROJECT, 12, SHA1, branch="feature/cart", title="Cart", author="alice")
        yield server


def make_host(fake: FakeGitLab, **settings: object) -> GitLabHost:
    config = GitLabConfig(url=fake.url, token=Secret(fake.token), **settings)  # type: ignore[arg-type]
    return GitLabHost.from_config(config)


@pytest.fixture
def host(fake: FakeGitLab) -> Iterator[GitLabHost]:
    gitlab_host = make_host(fake)
    yield gitlab_host
    gitlab_host.close()


def test_it_is_a_git_host(host: GitLabHost) -> None:
    as_protocol: GitHost = host  # mypy checks the Protocol structurally
    assert as_protocol is host


def test_a_missing_token_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"gitlab\.token"):
        GitLabHost(GitLabConfig())


# -- reading the merge request ---------------------------------------------------------


async def test_get_pull_reads_the_current_head_by_project_id(
    fake: FakeGitLab, host: GitLabHost
) -> None:
    fake.set_head(PROJECT, 12, SHA2)

    pull = await host.get_pull(REF, 12)

    assert (pull.head_sha, pull.branch, pull.author, pull.title, pull.number) == (
        SHA2,
        "feature/cart",
        "alice",
        "Cart",
        12,
    )
    assert pull.repo == REF
    assert pull.open and not pull.merged and not pull.draft
    assert pull.url == f"{fake.url}/{PROJECT}/-/merge_requests/12"
    assert [(r.method, r.path) for r in fake.requests] == [
        ("GET", f"/api/v4/projects/{PROJECT_ID}/merge_requests/12")  # lazy project: one GET
    ]
    assert all(r.auth_ok for r in fake.requests)


async def test_a_draft_merge_request(fake: FakeGitLab, host: GitLabHost) -> None:
    fake.add_mr(PROJECT, 13, SHA2, title="WIP cart", draft=True)

    pull = await host.get_pull(REF, 13)

    assert pull.draft and pull.title == "Draft: WIP cart"


async def test_get_pull_reads_the_label_names_from_the_same_response(
    fake: FakeGitLab, host: GitLabHost
) -> None:
    fake.add_mr(PROJECT, 13, SHA2, labels=("staging", "Backend::API"))

    plain, labelled = await host.get_pull(REF, 12), await host.get_pull(REF, 13)
    fake.set_labels(PROJECT, 13, ())
    relabelled = await host.get_pull(REF, 13)

    assert plain.labels == relabelled.labels == ()
    assert labelled.labels == ("Backend::API", "staging")  # GitLab sorts the names
    assert [r.path for r in fake.requests] == [
        f"/api/v4/projects/{PROJECT_ID}/merge_requests/{n}" for n in (12, 13, 13)
    ]


async def test_merged_and_closed_merge_requests(fake: FakeGitLab, host: GitLabHost) -> None:
    fake.add_mr(PROJECT, 13, SHA2)
    fake.close_mr(PROJECT, 12, merged=True)
    fake.close_mr(PROJECT, 13)

    merged, closed = await host.get_pull(REF, 12), await host.get_pull(REF, 13)

    assert not merged.open and merged.merged
    assert not closed.open and not closed.merged


async def test_a_renamed_project_still_works_by_id(fake: FakeGitLab, host: GitLabHost) -> None:
    fake.rename_project(PROJECT_ID, "acme/store")

    pull = await host.get_pull(REF, 12)

    assert pull.repo == RepoRef("gitlab", PROJECT_ID, "acme/store")


# -- the commit status -----------------------------------------------------------------


async def test_status_goes_from_running_to_success(fake: FakeGitLab, host: GitLabHost) -> None:
    assert await host.report_check(REF, SHA1, RUNNING, None) is None
    assert await host.report_check(REF, SHA1, READY, None) is None

    (status,) = fake.statuses(PROJECT, SHA1)  # one status, transitioned in place
    assert (status["name"], status["status"], status["description"]) == (
        "staging",
        "success",
        "Ready",
    )
    assert status["target_url"] == URL
    (post, *_) = fake.calls("POST", "/statuses/")
    assert post.path == f"/api/v4/projects/{PROJECT_ID}/statuses/{SHA1}"
    assert post.body == {"state": "running", "name": "staging", "description": "Deploying"}


async def test_a_repeated_state_is_not_an_error(fake: FakeGitLab, host: GitLabHost) -> None:
    await host.report_check(REF, SHA1, RUNNING, None)

    await host.report_check(REF, SHA1, RUNNING, None)  # GitLab answers 400 "Cannot transition"

    assert [s["status"] for s in fake.statuses(PROJECT, SHA1)] == ["running"]
    assert [r.status for r in fake.calls("POST", "/statuses/")] == [201, 400]


async def test_status_states_and_description_limit(fake: FakeGitLab, host: GitLabHost) -> None:
    await host.report_check(REF, SHA1, CheckReport(CheckState.FAILURE, "x" * 300, "s"), None)
    await host.report_check(REF, SHA2, CheckReport(CheckState.CANCELLED, "", "Superseded"), None)

    (failed,) = fake.statuses(PROJECT, SHA1)
    (canceled,) = fake.statuses(PROJECT, SHA2)
    assert failed["status"] == "failed" and len(failed["description"]) == 255
    assert (canceled["status"], canceled["description"]) == ("canceled", "Superseded")


async def test_the_status_name_is_configurable(fake: FakeGitLab) -> None:
    named = make_host(fake, status_name="review-app")
    await named.report_check(REF, SHA1, READY, None)
    named.close()

    assert [s["name"] for s in fake.statuses(PROJECT, SHA1)] == ["review-app"]


# -- the sticky note -------------------------------------------------------------------


async def test_sticky_note_is_created_once_then_edited_in_place(
    fake: FakeGitLab, host: GitLabHost
) -> None:
    first = await host.upsert_comment(REF, 12, "Deploying mr-12", None)
    again = await host.upsert_comment(REF, 12, "mr-12 is ready", first)

    assert again == first
    (note,) = fake.notes(PROJECT, 12)
    assert note["body"] == f"{STICKY_MARKER}\nmr-12 is ready"
    assert note["author"]["username"] == "stagingbot"
    assert len(fake.calls("POST", "/notes$")) == 1
    # Only the first attempt (no id yet) lists notes; the known id is edited directly.
    assert len(fake.calls("GET", "/notes")) == 1
    assert [r.path for r in fake.calls("PUT")] == [
        f"/api/v4/projects/{PROJECT_ID}/merge_requests/12/notes/{first}"
    ]


async def test_sticky_note_is_found_by_marker_and_author_and_others_are_untouched(
    fake: FakeGitLab, host: GitLabHost
) -> None:
    human = fake.add_note(PROJECT, 12, f"quoting the bot {STICKY_MARKER}", "alice")
    other_bot = fake.add_note(PROJECT, 12, f"{STICKY_MARKER} mine too", "otherbot")
    first = await host.upsert_comment(REF, 12, f"{STICKY_MARKER}\nDeploying", None)

    found = await host.upsert_comment(REF, 12, f"{STICKY_MARKER}\nReady", None)

    assert found == first not in (human, other_bot)
    bodies = {n["id"]: n["body"] for n in fake.notes(PROJECT, 12)}
    assert bodies == {
        human: f"quoting the bot {STICKY_MARKER}",
        other_bot: f"{STICKY_MARKER} mine too",
        first: f"{STICKY_MARKER}\nReady",
    }
    assert len(fake.calls("GET", "^/api/v4/user$")) == 1  # the bot's username, learnt once


async def test_sticky_note_found_on_a_later_page(fake: FakeGitLab, host: GitLabHost) -> None:
    for i in range(120):
        fake.add_note(PROJECT, 12, f"note {i}", "alice")
    first = await host.upsert_comment(REF, 12, "Deploying", None)

    assert await host.upsert_comment(REF, 12, "Ready", None) == first

    assert len(fake.notes(PROJECT, 12)) == 121
    pages = [r.query.get("page", "1") for r in fake.calls("GET", "/notes$")]
    assert pages == ["1", "2", "1", "2"]  # followed GitLab's Link header


async def test_a_deleted_note_id_falls_back_to_lookup_then_create(
    fake: FakeGitLab, host: GitLabHost
) -> None:
    created = await host.upsert_comment(REF, 12, "Ready", 424242)

    assert created != 424242
    assert [n["id"] for n in fake.notes(PROJECT, 12)] == [created]


async def test_concurrent_first_reports_make_one_note(fake: FakeGitLab, host: GitLabHost) -> None:
    ids = await asyncio.gather(*(host.upsert_comment(REF, 12, "Ready", None) for _ in range(5)))

    assert len(set(ids)) == 1
    assert len(fake.notes(PROJECT, 12)) == 1


async def test_nothing_posted_carries_the_token(fake: FakeGitLab, host: GitLabHost) -> None:
    leaky = f"debug: token={fake.token} other=glpat-{'a' * 20}"

    await host.upsert_comment(REF, 12, leaky, None)
    await host.report_check(REF, SHA1, CheckReport(CheckState.FAILURE, leaky, leaky), None)

    (note,) = fake.notes(PROJECT, 12)
    assert "[redacted]" in note["body"] and "glpat-" not in note["body"]
    sent = json.dumps([r.body for r in fake.requests])
    assert fake.token not in sent and "glpat-" not in sent


# -- replies ---------------------------------------------------------------------------

REPLY = "<!-- stagingbot:reply -->\n@alice, there is no staging to archive."


async def test_a_reply_is_a_new_note_and_the_sticky_one_is_left_alone(
    fake: FakeGitLab, host: GitLabHost
) -> None:
    sticky = await host.upsert_comment(REF, 12, "mr-12 is ready", None)

    reply = await host.reply(REF, 12, REPLY)

    (post,) = fake.calls("POST", "/notes$")[1:]
    assert post.path == f"/api/v4/projects/{PROJECT_ID}/merge_requests/12/notes"
    assert post.body == {"body": REPLY}  # exactly the caller's body
    notes = {n["id"]: n for n in fake.notes(PROJECT, 12)}
    assert set(notes) == {sticky, reply}  # the id the server assigned
    assert (notes[reply]["body"], notes[reply]["author"]["username"]) == (REPLY, "stagingbot")
    assert notes[sticky]["body"] == f"{STICKY_MARKER}\nmr-12 is ready"
    assert await host.upsert_comment(REF, 12, "mr-12 is gone", None) == sticky
    assert {n["id"]: n for n in fake.notes(PROJECT, 12)}[reply] == notes[reply]


async def test_each_reply_is_a_note_of_its_own(fake: FakeGitLab, host: GitLabHost) -> None:
    first = await host.reply(REF, 12, REPLY)
    second = await host.reply(REF, 12, REPLY)

    assert first != second
    assert [n["id"] for n in fake.notes(PROJECT, 12)] == [first, second]
    assert [r.method for r in fake.requests] == ["POST", "POST"]  # lazily: nothing read first


async def test_a_reply_quoting_the_sticky_marker_is_never_taken_for_the_sticky_note(
    fake: FakeGitLab, host: GitLabHost
) -> None:
    reply = await host.reply(REF, 12, f"@mallory, `/staging set X={STICKY_MARKER}` is refused.")

    sticky = await host.upsert_comment(REF, 12, "Deploying", None)

    assert sticky != reply
    bodies = {n["id"]: n["body"] for n in fake.notes(PROJECT, 12)}
    assert bodies[reply] == "@mallory, `/staging set X=` is refused."


async def test_a_reply_carries_no_token(fake: FakeGitLab, host: GitLabHost) -> None:
    await host.reply(REF, 12, f"token={fake.token} other=glpat-{'a' * 20}")

    (note,) = fake.notes(PROJECT, 12)
    assert note["body"] == "token=[redacted] other=[redacted]"


async def test_a_reply_to_a_missing_merge_request_is_permanent(
    fake: FakeGitLab, host: GitLabHost
) -> None:
    with pytest.raises(PermanentError, match="404"):
        await host.reply(REF, 999, REPLY)


# -- who the bot is --------------------------------------------------------------------


async def test_identity_is_the_tokens_username_read_once(
    fake: FakeGitLab, host: GitLabHost
) -> None:
    assert await host.identity() == "stagingbot"
    assert await host.identity() == "stagingbot"
    await host.upsert_comment(REF, 12, "Ready", None)  # the sticky lookup shares the username

    assert len(fake.calls("GET", "^/api/v4/user$")) == 1


async def test_identity_is_whoever_the_token_belongs_to() -> None:
    with FakeGitLab(username="project_278964_bot_1f2e") as fake:
        host = make_host(fake)

        assert await host.identity() == "project_278964_bot_1f2e"  # a project access token
        host.close()


async def test_a_failed_identity_lookup_is_temporary_and_not_cached(
    fake: FakeGitLab, host: GitLabHost
) -> None:
    fake.fail_next(503, path="^/api/v4/user$")

    with pytest.raises(TemporaryError, match="503"):
        await host.identity()
    assert await host.identity() == "stagingbot"
    assert len(fake.calls("GET", "^/api/v4/user$")) == 2


# -- the environment -------------------------------------------------------------------


async def test_environment_is_created_with_its_url_then_reused(
    fake: FakeGitLab, host: GitLabHost
) -> None:
    first = await host.report_deployment(
        REF, ENV, SHA1, DeployState.IN_PROGRESS, "", "Deploying", None
    )
    again = await host.report_deployment(REF, ENV, SHA1, DeployState.SUCCESS, URL, "Ready", first)
    by_name = await host.report_deployment(REF, ENV, SHA2, DeployState.SUCCESS, URL, "Ready", None)

    assert first == again == by_name
    (env,) = fake.environments(PROJECT)
    assert (env["name"], env["external_url"], env["state"], env["tier"]) == (
        ENV,
        URL,
        "available",
        "development",
    )
    lookups = fake.calls("GET", "/environments$")
    assert lookups and all(r.query["name"] == ENV for r in lookups)
    assert len(fake.calls("POST", "/environments$")) == 1


async def test_environment_is_stopped_on_inactive_and_kept(
    fake: FakeGitLab, host: GitLabHost
) -> None:
    env_id = await host.report_deployment(REF, ENV, SHA1, DeployState.SUCCESS, URL, "Ready", None)

    stopped = await host.report_deployment(
        REF, ENV, SHA1, DeployState.INACTIVE, "", "Closed", env_id
    )

    assert stopped == env_id
    (env,) = fake.environments(PROJECT)
    assert env["state"] == "stopped" and env["external_url"] == URL
    assert not fake.calls("DELETE")


async def test_environment_is_deleted_only_when_configured(fake: FakeGitLab) -> None:
    deleting = make_host(fake, delete_environments=True)
    await deleting.report_deployment(REF, ENV, SHA1, DeployState.SUCCESS, URL, "Ready", None)

    await deleting.report_deployment(REF, ENV, SHA1, DeployState.INACTIVE, "", "Closed", None)
    deleting.close()

    assert fake.environments(PROJECT) == []
    stop, delete = fake.calls("POST", "/stop$")[0], fake.calls("DELETE")[0]
    assert fake.requests.index(stop) < fake.requests.index(delete)  # GitLab: stop first


async def test_a_stopped_environment_comes_back_when_the_mr_reopens(
    fake: FakeGitLab, host: GitLabHost
) -> None:
    old = await host.report_deployment(REF, ENV, SHA1, DeployState.SUCCESS, URL, "Ready", None)
    await host.report_deployment(REF, ENV, SHA1, DeployState.INACTIVE, "", "Closed", old)

    new = await host.report_deployment(REF, ENV, SHA2, DeployState.SUCCESS, URL, "Ready", old)

    (env,) = fake.environments(PROJECT)
    assert env["id"] == new != old and env["state"] == "available"


async def test_inactive_without_an_environment_changes_nothing(
    fake: FakeGitLab, host: GitLabHost
) -> None:
    assert await host.report_deployment(REF, ENV, SHA1, DeployState.INACTIVE, "", "x", None) == 0
    assert fake.environments(PROJECT) == []


# -- reacting to a command note --------------------------------------------------------


async def test_reacting_twice_leaves_one_reaction(fake: FakeGitLab, host: GitLabHost) -> None:
    note_id = fake.add_note(PROJECT, 12, "/staging redeploy", "alice")

    await host.react(REF, 12, note_id, EYES)
    await host.react(REF, 12, note_id, EYES)  # a retried job: "has already been taken"

    assert [(a["name"], a["user"]["username"]) for a in fake.awards(note_id)] == [
        ("eyes", "stagingbot")
    ]
    path = f"/api/v4/projects/{PROJECT_ID}/merge_requests/12/notes/{note_id}/award_emoji"
    assert [(r.method, r.path, r.status) for r in fake.requests] == [
        ("POST", path, 201),  # lazily: neither the project, the MR nor the note is read
        ("POST", path, 404),
    ]


@pytest.mark.parametrize(("reaction", "name"), [(THUMBS_UP, "thumbsup"), (CONFUSED, "confused")])
async def test_each_reaction_is_sent_under_gitlabs_name(
    fake: FakeGitLab, host: GitLabHost, reaction: str, name: str
) -> None:
    note_id = fake.add_note(PROJECT, 12, "/staging destroy", "alice")

    await host.react(REF, 12, note_id, reaction)

    assert [a["name"] for a in fake.awards(note_id)] == [name]


async def test_reacting_to_a_deleted_note_is_permanent(fake: FakeGitLab, host: GitLabHost) -> None:
    with pytest.raises(PermanentError, match="404"):
        await host.react(REF, 12, 999_999, EYES)


async def test_an_unknown_reaction_is_refused_before_any_request(
    fake: FakeGitLab, host: GitLabHost
) -> None:
    with pytest.raises(ValueError, match="heart"):
        await host.react(REF, 12, 1, "heart")
    assert not fake.requests


# -- who may run commands --------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "access"),
    [
        (50, Access.ADMIN),  # owner
        (40, Access.ADMIN),  # maintainer
        (30, Access.WRITE),  # developer
        (20, Access.READ),  # reporter
        (10, Access.READ),  # guest
        (5, Access.READ),  # minimal access
    ],
)
async def test_a_project_members_role_decides_their_access(
    fake: FakeGitLab, host: GitLabHost, level: int, access: Access
) -> None:
    fake.add_user("bob", 31)
    fake.add_member(PROJECT, "bob", level)

    assert await host.permission(REF, "bob") is access
    assert (await host.permission(REF, "bob")).may_run_commands is (level >= 30)


async def test_an_inherited_group_maintainer_may_run_commands(
    fake: FakeGitLab, host: GitLabHost
) -> None:
    fake.add_user("carol", 32)
    fake.add_member("acme", "carol", 40)  # a member of the group, not of the project

    access = await host.permission(REF, "carol")

    assert access is Access.ADMIN and access.may_run_commands
    assert [(r.method, r.path, r.query) for r in fake.requests] == [
        ("GET", "/api/v4/users", {"username": "carol"}),
        ("GET", f"/api/v4/projects/{PROJECT_ID}/members/all/32", {}),
    ]


async def test_the_higher_of_a_direct_and_an_inherited_role_counts(
    fake: FakeGitLab, host: GitLabHost
) -> None:
    fake.add_user("dave", 33)
    fake.add_member("acme", "dave", 30)
    fake.add_member(PROJECT, "dave", 20)

    assert await host.permission(REF, "dave") is Access.WRITE


async def test_a_stranger_has_no_access(fake: FakeGitLab, host: GitLabHost) -> None:
    fake.add_user("mallory", 66)

    assert await host.permission(REF, "mallory") is Access.NONE  # members/all: 404
    assert await host.permission(REF, "no-such-user") is Access.NONE  # /users: []
    assert not fake.calls(path="/members/all/0")


async def test_a_users_id_is_looked_up_once(fake: FakeGitLab, host: GitLabHost) -> None:
    fake.add_user("bob", 31)
    fake.add_member(PROJECT, "bob", 30)

    await host.permission(REF, "bob")
    await host.permission(REF, "Bob")

    assert len(fake.calls("GET", "/users$")) == 1
    assert len(fake.calls("GET", "/members/all/31$")) == 2  # access itself is never cached


async def test_a_failing_member_lookup_is_temporary(fake: FakeGitLab, host: GitLabHost) -> None:
    fake.add_user("bob", 31)
    fake.add_member(PROJECT, "bob", 30)
    fake.fail_next(503, path="/members/all/")

    with pytest.raises(TemporaryError, match="503"):
        await host.permission(REF, "bob")
    assert await host.permission(REF, "bob") is Access.WRITE


async def test_a_missing_project_is_not_mistaken_for_a_stranger(
    fake: FakeGitLab, host: GitLabHost
) -> None:
    fake.add_user("bob", 31)

    with pytest.raises(PermanentError, match="404"):
        await host.permission(RepoRef("gitlab", 5, "acme/gone"), "bob")


# -- errors ----------------------------------------------------------------------------


async def test_502_is_temporary_and_not_retried(fake: FakeGitLab, host: GitLabHost) -> None:
    fake.fail_next(502, path="/statuses/")

    with pytest.raises(TemporaryError, match="502"):
        await host.report_check(REF, SHA1, RUNNING, None)
    assert len(fake.calls("POST", "/statuses/")) == 1  # no retry inside python-gitlab


async def test_429_is_temporary_with_the_servers_delay_and_no_sleep(
    fake: FakeGitLab, host: GitLabHost
) -> None:
    fake.fail_next(429, headers={"Retry-After": "30"}, path="/notes")

    with pytest.raises(TemporaryError) as caught:
        await host.upsert_comment(REF, 12, "Ready", None)

    assert caught.value.delay == pytest.approx(30)
    assert len(fake.calls(path="/notes")) == 1
    assert await host.upsert_comment(REF, 12, "Ready", None)  # the job's retry goes through
    assert len(fake.notes(PROJECT, 12)) == 1


async def test_a_later_error_does_not_reuse_an_old_retry_after(
    fake: FakeGitLab, host: GitLabHost
) -> None:
    fake.fail_next(429, headers={"Retry-After": "30"})
    with pytest.raises(TemporaryError):
        await host.get_pull(REF, 12)
    fake.fail_next(503)

    with pytest.raises(TemporaryError) as caught:
        await host.get_pull(REF, 12)

    assert caught.value.delay is None


async def test_missing_merge_request_is_permanent(fake: FakeGitLab, host: GitLabHost) -> None:
    with pytest.raises(PermanentError, match="404"):
        await host.get_pull(REF, 999)


async def test_bad_token_is_permanent_and_not_shown(fake: FakeGitLab) -> None:
    token = "glpat-" + "0" * 20
    bad = GitLabHost(GitLabConfig(url=fake.url, token=Secret(token)))

    with pytest.raises(PermanentError, match="401") as caught:
        await bad.get_pull(REF, 12)

    assert token not in str(caught.value) and "glpat-" not in str(caught.value)
    assert [r.auth_ok for r in fake.requests] == [False]
    bad.close()


async def test_unreachable_gitlab_is_temporary(fake: FakeGitLab) -> None:
    url = fake.url
    fake.stop()
    host = GitLabHost(GitLabConfig(url=url, token=Secret(fake.token)))

    with pytest.raises(TemporaryError, match="cannot reach GitLab"):
        await host.get_pull(REF, 12)
    host.close()


# -- the fake speaks what python-gitlab reads ------------------------------------------


def test_the_fake_answers_by_url_encoded_path_and_lists_statuses(fake: FakeGitLab) -> None:
    client = gitlab.Gitlab(fake.url, private_token=fake.token, keep_base_url=True)
    project = client.projects.get(PROJECT)
    commit = project.commits.get(SHA1, lazy=True)
    commit.statuses.create({"state": "success", "name": "staging"})
    commit.statuses.create({"state": "running", "name": "staging"})  # a finished one stays

    assert project.path_with_namespace == PROJECT
    assert fake.calls("GET")[0].path == "/api/v4/projects/acme%2Fshop"
    assert [s.status for s in commit.statuses.list(get_all=True)] == ["success", "running"]
    assert client.http_get("/user") == {
        "id": fake.user_id,
        "username": "stagingbot",
        "name": "Staging Bot",
        "state": "active",
        "bot": True,
        "web_url": f"{fake.url}/stagingbot",
    }
    client.session.close()


async def test_a_merge_request_from_a_fork_is_recognized(
    fake: FakeGitLab, host: GitLabHost
) -> None:
    assert not (await host.get_pull(REF, 12)).fork
    fake.add_mr(PROJECT, 13, SHA2, branch="patch-1", source_project_id=4242)
    assert (await host.get_pull(REF, 13)).fork
