"""GitHubHost drives the real PyGithub over HTTP against the local fake GitHub."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import ConfigError, GitHubConfig, Secret
from bot.errors import PermanentError, TemporaryError
from bot.hosts.base import CONFUSED, EYES, STICKY_MARKER, THUMBS_UP, Access, GitHost
from bot.hosts.github import GitHubHost
from bot.model import CheckReport, CheckState, DeployState, RepoRef
from tests.fakes.github import FakeGitHub, iter_tokens

REPO = "Codertocat/Hello-World"
REPO_ID = 186853002
INSTALLATION = 77
REF = RepoRef("github", REPO_ID, REPO)
SHA1 = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
SHA2 = "2" * 40
RUNNING = CheckReport(CheckState.IN_PROGRESS, "Deploying", "Rolling out pr-2")
READY = CheckReport(CheckState.SUCCESS, "Ready", "pr-2 is up", "https://pr-2.staging.example.com")


@pytest.fixture(autouse=True)
def no_sleeping(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyGithub must never sleep in the thread (pacing, GithubRetry, urllib3 backoff)."""

    def refuse(seconds: float) -> None:
        raise AssertionError(f"something slept {seconds}s")

    monkeypatch.setattr("time.sleep", refuse)


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        server.add_repo(REPO, REPO_ID, INSTALLATION)
        server.add_repo("acme/other", 99, 78)
        server.add_pull(REPO, 2, SHA1, branch="changes", author="Codertocat")
        yield server


def app_host(fake: FakeGitHub, tmp_path: Path) -> GitHubHost:
    key = tmp_path / "app.pem"
    key.write_text(fake.private_key_pem)
    config = GitHubConfig(api_url=fake.url, app_id=fake.app_id, private_key_file=str(key))
    return GitHubHost(config)


@pytest.fixture
def app(fake: FakeGitHub, tmp_path: Path) -> Iterator[GitHubHost]:
    host = app_host(fake, tmp_path)
    yield host
    host.close()


@pytest.fixture
def personal(fake: FakeGitHub) -> Iterator[GitHubHost]:
    host = GitHubHost.from_config(GitHubConfig(api_url=fake.url, token=Secret(fake.personal_token)))
    yield host
    host.close()


def assert_no_token_posted(fake: FakeGitHub) -> None:
    sent = json.dumps([r.body for r in fake.requests])
    for token in iter_tokens(fake):
        assert token not in sent


def test_it_is_a_git_host(app: GitHubHost) -> None:
    host: GitHost = app  # mypy checks the Protocol structurally
    assert host is app


# -- reading the request ---------------------------------------------------------------


async def test_get_pull_reads_the_current_head_by_repository_id(
    fake: FakeGitHub, app: GitHubHost
) -> None:
    fake.set_head(REPO, 2, SHA2)

    pull = await app.get_pull(REF, 2)

    assert (pull.head_sha, pull.branch, pull.author, pull.title) == (
        SHA2,
        "changes",
        "Codertocat",
        "Update the README",
    )
    assert pull.open and not pull.merged and not pull.draft
    assert pull.url == f"https://github.com/{REPO}/pull/2"
    assert [r.path for r in fake.calls(path="/pulls/")] == [f"/repositories/{REPO_ID}/pulls/2"]


async def test_a_renamed_repository_still_works(fake: FakeGitHub, app: GitHubHost) -> None:
    fake.rename_repo(REPO_ID, "Codertocat/Renamed")

    pull = await app.get_pull(REF, 2)

    assert pull.repo == RepoRef("github", REPO_ID, "Codertocat/Renamed")


async def test_get_pull_reads_the_labels_and_the_draft_flag_from_the_same_response(
    fake: FakeGitHub, app: GitHubHost
) -> None:
    fake.add_pull(REPO, 3, SHA2, draft=True, labels=("no-staging", "needs review"))

    plain, labelled = await app.get_pull(REF, 2), await app.get_pull(REF, 3)
    fake.set_labels(REPO, 3, ())
    relabelled = await app.get_pull(REF, 3)

    assert (plain.labels, plain.draft) == ((), False)
    assert (labelled.labels, labelled.draft) == (("no-staging", "needs review"), True)
    assert relabelled.labels == ()
    assert [r.path for r in fake.calls(path="/(pulls|issues|labels)")] == [
        f"/repositories/{REPO_ID}/pulls/{n}" for n in (2, 3, 3)
    ]


async def test_closed_and_merged_pull(fake: FakeGitHub, app: GitHubHost) -> None:
    fake.close_pull(REPO, 2, merged=True)

    pull = await app.get_pull(REF, 2)

    assert not pull.open and pull.merged


# -- GitHub App authentication ---------------------------------------------------------


async def test_installation_is_found_with_the_jwt_once_and_cached(
    fake: FakeGitHub, app: GitHubHost
) -> None:
    await app.get_pull(REF, 2)
    await app.report_check(REF, SHA1, RUNNING, None)
    await app.upsert_comment(REF, 2, "Deploying", None)
    await app.get_pull(REF, 2)

    lookups = fake.calls("GET", r"/installation$")
    assert [(r.path, r.auth) for r in lookups] == [(f"/repos/{REPO}/installation", "jwt")]
    tokens = fake.calls("POST", r"^/app/installations/\d+/access_tokens$")
    assert [(r.path, r.auth) for r in tokens] == [
        (f"/app/installations/{INSTALLATION}/access_tokens", "jwt")
    ]
    repo_calls = fake.calls(path=r"^/repositories/")
    assert repo_calls and {r.auth for r in repo_calls} == {"installation"}


async def test_an_installation_a_webhook_named_is_used_without_looking_it_up(
    fake: FakeGitHub, app: GitHubHost
) -> None:
    named = RepoRef("github", REPO_ID, REPO, installation=INSTALLATION)

    assert (await app.get_pull(named, 2)).head_sha == SHA1
    await app.report_check(named, SHA1, RUNNING, None)

    assert fake.calls("GET", r"/installation$") == []
    assert [r.path for r in fake.calls("POST", "access_tokens")] == [
        f"/app/installations/{INSTALLATION}/access_tokens"
    ]


async def test_an_installation_gone_since_the_webhook_is_looked_up_and_the_call_made_again(
    fake: FakeGitHub, app: GitHubHost
) -> None:
    stale = RepoRef("github", REPO_ID, REPO, installation=4242)  # the App was reinstalled

    assert (await app.get_pull(stale, 2)).head_sha == SHA1
    await app.get_pull(stale, 2)  # the stale id is not tried again

    assert [r.path for r in fake.calls("GET", r"/installation$")] == [
        f"/repos/{REPO}/installation"
    ]
    assert [(r.path, r.status) for r in fake.calls("POST", "access_tokens")] == [
        ("/app/installations/4242/access_tokens", 404),
        (f"/app/installations/{INSTALLATION}/access_tokens", 201),
    ]


async def test_a_repository_known_only_by_its_configured_name_is_looked_up_once(
    fake: FakeGitHub, app: GitHubHost
) -> None:
    by_name = RepoRef("github", 0, REPO.lower())  # the sweep: a name from the config

    for _ in range(3):
        assert [pull.number for pull in await app.open_pulls(by_name)] == [2]

    assert len(fake.calls("GET", r"/installation$")) == 1


async def test_installation_token_is_renewed_before_it_expires(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    fake.token_ttl = 10  # inside PyGithub's 20 s renewal margin: every call renews
    host = app_host(fake, tmp_path)

    await host.get_pull(REF, 2)
    await host.get_pull(REF, 2)

    assert len(fake.calls("POST", "access_tokens")) == 2
    assert len(fake.calls("GET", r"/installation$")) == 1
    host.close()


async def test_each_repository_uses_its_own_installation(fake: FakeGitHub, app: GitHubHost) -> None:
    fake.add_pull("acme/other", 5, SHA2)

    await app.get_pull(REF, 2)
    await app.get_pull(RepoRef("github", 99, "acme/other"), 5)

    assert {r.path for r in fake.calls("POST", "access_tokens")} == {
        f"/app/installations/{INSTALLATION}/access_tokens",
        "/app/installations/78/access_tokens",
    }


async def test_repository_without_the_app_installed_is_permanent(
    fake: FakeGitHub, app: GitHubHost
) -> None:
    fake.add_repo("acme/not-installed", 5, installation_id=None)

    with pytest.raises(PermanentError, match="404"):
        await app.get_pull(RepoRef("github", 5, "acme/not-installed"), 1)


def test_unreadable_private_key_is_a_config_error(fake: FakeGitHub, tmp_path: Path) -> None:
    missing = GitHubConfig(api_url=fake.url, app_id=1, private_key_file=str(tmp_path / "no"))
    with pytest.raises(ConfigError, match="github.private_key_file"):
        GitHubHost(missing)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(ConfigError, match="github.private_key_file"):
        GitHubHost(GitHubConfig(api_url=fake.url, app_id=1, private_key_file=str(garbage)))


# -- check runs (App) and commit statuses (personal token) -----------------------------


async def test_check_run_is_created_once_then_updated(fake: FakeGitHub, app: GitHubHost) -> None:
    first = await app.report_check(REF, SHA1, RUNNING, None)
    again = await app.report_check(REF, SHA1, READY, first)

    assert first is not None and again == first
    (run,) = fake.check_runs(REPO, SHA1)
    assert run["name"] == "staging"
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    assert run["output"]["title"] == "Ready"
    assert run["details_url"] == "https://pr-2.staging.example.com"
    assert len(fake.calls("POST", "/check-runs$")) == 1
    assert len(fake.calls("PATCH", r"/check-runs/\d+$")) == 1


async def test_a_retry_without_the_id_finds_the_run_by_name(
    fake: FakeGitHub, app: GitHubHost
) -> None:
    first = await app.report_check(REF, SHA1, RUNNING, None)

    retried = await app.report_check(REF, SHA1, READY, None)

    assert retried == first
    assert len(fake.check_runs(REPO, SHA1)) == 1
    lookups = fake.calls("GET", "/check-runs$")
    assert len(lookups) == 2  # each attempt without an id looks before it creates
    lookup = lookups[-1]
    assert lookup.path == f"/repositories/{REPO_ID}/commits/{SHA1}/check-runs"
    assert lookup.query["check_name"] == "staging"


async def test_a_deleted_check_run_id_falls_back_to_lookup(
    fake: FakeGitHub, app: GitHubHost
) -> None:
    created = await app.report_check(REF, SHA1, RUNNING, 123456)

    assert created is not None and created != 123456
    assert len(fake.check_runs(REPO, SHA1)) == 1


async def test_each_sha_gets_its_own_check_run(fake: FakeGitHub, app: GitHubHost) -> None:
    await app.report_check(REF, SHA1, READY, None)
    await app.report_check(REF, SHA2, RUNNING, None)

    assert len(fake.check_runs(REPO, SHA1)) == len(fake.check_runs(REPO, SHA2)) == 1


async def test_personal_token_reports_a_commit_status_never_a_check_run(
    fake: FakeGitHub, personal: GitHubHost
) -> None:
    assert await personal.report_check(REF, SHA1, RUNNING, None) is None
    long_title = CheckReport(CheckState.CANCELLED, "x" * 300, "summary")
    assert await personal.report_check(REF, SHA1, long_title, None) is None
    await personal.report_check(REF, SHA1, READY, None)

    statuses = fake.statuses(REPO, SHA1)
    assert [(s["context"], s["state"]) for s in statuses] == [
        ("staging", "pending"),
        ("staging", "error"),
        ("staging", "success"),
    ]
    assert len(statuses[1]["description"]) == 140
    assert statuses[2]["target_url"] == "https://pr-2.staging.example.com"
    # GitHub (and the fake: tests/unit/test_fake_github.py) refuses check runs for a
    # personal token with 403: the adapter never tries.
    assert not fake.calls(path="check-runs")
    assert {r.auth for r in fake.requests} == {"personal"}


# -- the sticky comment ----------------------------------------------------------------


async def test_sticky_comment_is_created_once_then_edited_in_place(
    fake: FakeGitHub, app: GitHubHost
) -> None:
    first = await app.upsert_comment(REF, 2, "Deploying pr-2", None)
    again = await app.upsert_comment(REF, 2, "pr-2 is ready", first)

    assert again == first
    (comment,) = fake.comments(REPO, 2)
    assert comment["body"] == f"{STICKY_MARKER}\npr-2 is ready"
    assert comment["user"]["login"] == "stagingbot[bot]"
    assert len(fake.calls("POST", "/comments$")) == 1
    # Only the first attempt (no id yet) lists comments; the known id is edited directly.
    assert len(fake.calls("GET", "/comments")) == 1


async def test_sticky_comment_is_found_by_marker_and_others_are_untouched(
    fake: FakeGitHub, app: GitHubHost
) -> None:
    human = fake.add_comment(REPO, 2, f"quoting the bot {STICKY_MARKER}", "Codertocat")
    other_bot = fake.add_comment(REPO, 2, f"{STICKY_MARKER} mine too", "otherbot[bot]")
    first = await app.upsert_comment(REF, 2, f"{STICKY_MARKER}\nDeploying", None)

    found = await app.upsert_comment(REF, 2, f"{STICKY_MARKER}\nReady", None)

    assert found == first not in (human, other_bot)
    bodies = {c["id"]: c["body"] for c in fake.comments(REPO, 2)}
    assert bodies == {
        human: f"quoting the bot {STICKY_MARKER}",
        other_bot: f"{STICKY_MARKER} mine too",
        first: f"{STICKY_MARKER}\nReady",
    }
    assert len(fake.calls("GET", "^/app$")) == 1  # the bot's login, learnt once


async def test_sticky_comment_found_on_a_later_page(fake: FakeGitHub, app: GitHubHost) -> None:
    for i in range(35):
        fake.add_comment(REPO, 2, f"comment {i}", "Codertocat")
    first = await app.upsert_comment(REF, 2, "Deploying", None)

    assert await app.upsert_comment(REF, 2, "Ready", None) == first

    assert len(fake.comments(REPO, 2)) == 36
    pages = [r.query.get("page", "1") for r in fake.calls("GET", "/issues/2/comments$")]
    assert pages == ["1", "2", "1", "2"]  # followed GitHub's Link header


async def test_concurrent_first_reports_make_one_comment_and_one_lookup(
    fake: FakeGitHub, app: GitHubHost
) -> None:
    ids = await asyncio.gather(*(app.upsert_comment(REF, 2, "Ready", None) for _ in range(5)))

    assert len(set(ids)) == 1
    assert len(fake.comments(REPO, 2)) == 1
    assert len(fake.calls("GET", r"/installation$")) == 1


async def test_deleted_comment_id_falls_back_to_lookup_then_create(
    fake: FakeGitHub, app: GitHubHost
) -> None:
    created = await app.upsert_comment(REF, 2, "Ready", 424242)

    assert created != 424242
    assert [c["id"] for c in fake.comments(REPO, 2)] == [created]


async def test_personal_token_comment_is_found_by_the_token_owner(
    fake: FakeGitHub, personal: GitHubHost
) -> None:
    first = await personal.upsert_comment(REF, 2, "Deploying", None)
    assert await personal.upsert_comment(REF, 2, "Ready", None) == first
    assert len(fake.comments(REPO, 2)) == 1
    assert len(fake.calls("GET", "^/user$")) == 1


async def test_nothing_posted_carries_a_token(fake: FakeGitHub, personal: GitHubHost) -> None:
    leaky = f"debug: token={fake.personal_token} other=ghs_{'a' * 36}"

    await personal.upsert_comment(REF, 2, leaky, None)
    await personal.report_check(REF, SHA1, CheckReport(CheckState.FAILURE, leaky, leaky), None)

    (comment,) = fake.comments(REPO, 2)
    assert "[redacted]" in comment["body"] and "ghs_" not in comment["body"]
    assert_no_token_posted(fake)


# -- replies ---------------------------------------------------------------------------

REPLY = "<!-- stagingbot:reply -->\n@Codertocat, there is no staging to archive."


async def test_a_reply_is_a_new_comment_and_the_sticky_one_is_left_alone(
    fake: FakeGitHub, app: GitHubHost
) -> None:
    sticky = await app.upsert_comment(REF, 2, "pr-2 is ready", None)

    reply = await app.reply(REF, 2, REPLY)

    (post,) = fake.calls("POST", "/comments$")[1:]
    assert post.path == f"/repositories/{REPO_ID}/issues/2/comments"
    assert post.body == {"body": REPLY}  # exactly the caller's body
    comments = {c["id"]: c for c in fake.comments(REPO, 2)}
    assert set(comments) == {sticky, reply}  # the id the server assigned
    assert comments[reply]["body"] == REPLY
    assert comments[reply]["user"]["login"] == "stagingbot[bot]"
    assert comments[sticky]["body"] == f"{STICKY_MARKER}\npr-2 is ready"
    assert await app.upsert_comment(REF, 2, "pr-2 is gone", None) == sticky
    assert comments[reply] == {c["id"]: c for c in fake.comments(REPO, 2)}[reply]


async def test_each_reply_is_a_comment_of_its_own(fake: FakeGitHub, personal: GitHubHost) -> None:
    first = await personal.reply(REF, 2, REPLY)
    second = await personal.reply(REF, 2, REPLY)

    assert first != second
    assert [c["id"] for c in fake.comments(REPO, 2)] == [first, second]
    assert not fake.calls("GET")  # nothing is looked up: a reply is never edited


@pytest.mark.parametrize(
    "quoted",
    [STICKY_MARKER, STICKY_MARKER.replace("sticky", f"{STICKY_MARKER}sticky")],
)
async def test_a_reply_quoting_the_sticky_marker_is_never_taken_for_the_sticky_comment(
    fake: FakeGitHub, app: GitHubHost, quoted: str
) -> None:
    reply = await app.reply(REF, 2, f"@mallory, `/staging set X={quoted}` needs write access.")

    sticky = await app.upsert_comment(REF, 2, "Deploying", None)

    assert sticky != reply
    bodies = {c["id"]: c["body"] for c in fake.comments(REPO, 2)}
    assert bodies[reply] == "@mallory, `/staging set X=` needs write access."


async def test_a_reply_carries_no_token(fake: FakeGitHub, personal: GitHubHost) -> None:
    await personal.reply(REF, 2, f"token={fake.personal_token} other=ghs_{'a' * 36}")

    (comment,) = fake.comments(REPO, 2)
    assert comment["body"] == "token=[redacted] other=[redacted]"
    assert_no_token_posted(fake)


async def test_a_rate_limited_reply_is_temporary_and_posts_nothing(
    fake: FakeGitHub, app: GitHubHost
) -> None:
    fake.fail_next(403, headers={"Retry-After": "60"}, method="POST", path="/comments$")

    with pytest.raises(TemporaryError, match="secondary rate limit") as caught:
        await app.reply(REF, 2, REPLY)

    assert caught.value.delay == pytest.approx(60)
    assert not fake.comments(REPO, 2)


async def test_a_reply_to_a_missing_pull_request_is_permanent(
    fake: FakeGitHub, app: GitHubHost
) -> None:
    with pytest.raises(PermanentError, match="404"):
        await app.reply(REF, 999, REPLY)


# -- who the bot is --------------------------------------------------------------------


async def test_an_apps_identity_is_its_slug_as_a_bot_read_once_with_the_jwt(
    fake: FakeGitHub, app: GitHubHost
) -> None:
    fake.app_slug = "acme-staging"

    assert await app.identity() == "acme-staging[bot]"
    assert await app.identity() == "acme-staging[bot]"
    await app.upsert_comment(REF, 2, "Ready", None)  # the sticky lookup shares the login

    assert [(r.path, r.auth) for r in fake.calls("GET", "^/app$")] == [("/app", "jwt")]
    assert not fake.calls(path="^/user$")  # an installation token may not read /user


async def test_a_personal_tokens_identity_is_its_user_read_once(
    fake: FakeGitHub, personal: GitHubHost
) -> None:
    assert await personal.identity() == "octo-operator"
    assert await personal.identity() == "octo-operator"

    assert [(r.path, r.auth) for r in fake.requests] == [("/user", "personal")]


async def test_a_failed_identity_lookup_is_temporary_and_not_cached(
    fake: FakeGitHub, app: GitHubHost
) -> None:
    fake.fail_next(502, path="^/app$")

    with pytest.raises(TemporaryError, match="502"):
        await app.identity()
    assert await app.identity() == "stagingbot[bot]"
    assert len(fake.calls("GET", "^/app$")) == 2


async def test_a_bad_tokens_identity_is_permanent_and_not_shown(fake: FakeGitHub) -> None:
    token = "ghp_" + "0" * 36
    host = GitHubHost(GitHubConfig(api_url=fake.url, token=Secret(token)))

    with pytest.raises(PermanentError, match="401") as caught:
        await host.identity()

    assert "ghp_" not in str(caught.value)
    host.close()


# -- deployments -----------------------------------------------------------------------


async def test_deployment_is_created_with_the_required_fields(
    fake: FakeGitHub, app: GitHubHost
) -> None:
    await app.report_check(REF, SHA1, RUNNING, None)  # a pending check must not block it

    first = await app.report_deployment(
        REF, "pr-2", SHA1, DeployState.IN_PROGRESS, "", "Deploying", None
    )
    again = await app.report_deployment(
        REF, "pr-2", SHA1, DeployState.SUCCESS, "https://pr-2.example.com", "Ready", first
    )

    assert again == first
    (deployment,) = fake.deployments(REPO)
    assert deployment["_request"] == {
        "ref": SHA1,
        "auto_merge": False,
        "required_contexts": [],
        "environment": "pr-2",
        "transient_environment": True,
        "production_environment": False,
    }
    statuses = fake.deployment_statuses(first)
    assert [(s["state"], s["environment_url"]) for s in statuses] == [
        ("in_progress", ""),
        ("success", "https://pr-2.example.com"),
    ]
    assert statuses[1]["description"] == "Ready"
    assert all(s["auto_inactive"] for s in statuses)


async def test_deployment_found_by_environment_and_sha_when_id_unknown(
    fake: FakeGitHub, app: GitHubHost
) -> None:
    first = await app.report_deployment(REF, "pr-2", SHA1, DeployState.SUCCESS, "u", "Ready", None)

    found = await app.report_deployment(
        REF, "pr-2", SHA1, DeployState.INACTIVE, "https://pr-2.example.com", "Closed", None
    )
    new_sha = await app.report_deployment(
        REF, "pr-2", SHA2, DeployState.IN_PROGRESS, "", "Deploying", None
    )

    assert found == first != new_sha
    assert len(fake.deployments(REPO)) == 2
    inactive = fake.deployment_statuses(first)[-1]
    assert (inactive["state"], inactive["environment_url"]) == ("inactive", "")
    (lookup, *_) = fake.calls("GET", "/deployments$")
    assert lookup.query == {"sha": SHA1, "environment": "pr-2"}


# -- reacting to a command comment -----------------------------------------------------


async def test_reacting_twice_leaves_one_reaction(fake: FakeGitHub, app: GitHubHost) -> None:
    comment_id = fake.add_comment(REPO, 2, "/staging redeploy", "Codertocat")

    await app.react(REF, 2, comment_id, EYES)
    await app.react(REF, 2, comment_id, EYES)  # a retried job

    assert [(r["content"], r["user"]["login"]) for r in fake.reactions(comment_id)] == [
        ("eyes", "stagingbot[bot]")
    ]
    posts = fake.calls("POST", "/reactions$")
    assert [r.path for r in posts] == [
        f"/repositories/{REPO_ID}/issues/comments/{comment_id}/reactions"  # by id, lazily
    ] * 2
    assert [r.status for r in posts] == [201, 200]
    # Lazily: the comment is not read before reacting to it.
    assert [r.method for r in fake.requests if r.auth == "installation"] == ["POST", "POST"]


@pytest.mark.parametrize(("reaction", "content"), [(THUMBS_UP, "+1"), (CONFUSED, "confused")])
async def test_each_reaction_is_sent_under_githubs_name(
    fake: FakeGitHub, personal: GitHubHost, reaction: str, content: str
) -> None:
    comment_id = fake.add_comment(REPO, 2, "/staging destroy", "Codertocat")

    await personal.react(REF, 2, comment_id, reaction)

    assert [r["content"] for r in fake.reactions(comment_id)] == [content]


async def test_reacting_to_a_deleted_comment_is_permanent(
    fake: FakeGitHub, app: GitHubHost
) -> None:
    with pytest.raises(PermanentError, match="404"):
        await app.react(REF, 2, 999_999, EYES)


async def test_an_unknown_reaction_is_refused_before_any_request(
    fake: FakeGitHub, app: GitHubHost
) -> None:
    with pytest.raises(ValueError, match="heart"):
        await app.react(REF, 2, 1, "heart")
    assert not fake.requests


# -- who may run commands --------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "access"),
    [
        ("admin", Access.ADMIN),
        ("maintain", Access.WRITE),  # GitHub's `permission` folds maintain into write
        ("write", Access.WRITE),
        ("triage", Access.READ),
        ("read", Access.READ),
        ("none", Access.NONE),
    ],
)
async def test_a_collaborators_role_decides_their_access(
    fake: FakeGitHub, app: GitHubHost, role: str, access: Access
) -> None:
    fake.set_role(REPO, "hubot", role)

    assert await app.permission(REF, "hubot") is access
    assert (await app.permission(REF, "hubot")).may_run_commands is (access >= Access.WRITE)
    assert {r.path for r in fake.calls("GET", "/permission$")} == {
        f"/repositories/{REPO_ID}/collaborators/hubot/permission"
    }


async def test_writers_may_run_commands_and_readers_may_not(
    fake: FakeGitHub, personal: GitHubHost
) -> None:
    fake.set_role(REPO, "writer", "write")
    fake.set_role(REPO, "reader", "read")

    assert (await personal.permission(REF, "writer")).may_run_commands
    assert not (await personal.permission(REF, "reader")).may_run_commands


async def test_a_stranger_has_no_access(fake: FakeGitHub, app: GitHubHost) -> None:
    fake.add_user("mallory")

    assert await app.permission(REF, "mallory") is Access.NONE  # 200 "none"
    assert await app.permission(REF, "no-such-user") is Access.NONE  # 404


async def test_a_missing_repository_is_not_mistaken_for_a_stranger(
    fake: FakeGitHub, personal: GitHubHost
) -> None:
    gone = RepoRef("github", 5, "acme/gone")

    with pytest.raises(PermanentError, match="404"):
        await personal.permission(gone, "Codertocat")


async def test_a_failing_permission_check_is_temporary(fake: FakeGitHub, app: GitHubHost) -> None:
    fake.set_role(REPO, "hubot", "write")
    fake.fail_next(502, path="/permission$")

    with pytest.raises(TemporaryError, match="502"):
        await app.permission(REF, "hubot")
    assert await app.permission(REF, "hubot") is Access.WRITE


# -- errors ----------------------------------------------------------------------------


async def test_502_is_temporary(fake: FakeGitHub, app: GitHubHost) -> None:
    await app.get_pull(REF, 2)
    fake.fail_next(502, method="POST", path="/check-runs$")

    with pytest.raises(TemporaryError, match="502"):
        await app.report_check(REF, SHA1, RUNNING, None)
    assert len(fake.calls("POST", "/check-runs$")) == 1  # no retry inside PyGithub


async def test_secondary_rate_limit_is_temporary_with_the_servers_delay(
    fake: FakeGitHub, app: GitHubHost
) -> None:
    await app.get_pull(REF, 2)
    fake.fail_next(403, headers={"Retry-After": "30"}, method="POST", path="/comments$")

    with pytest.raises(TemporaryError, match="secondary rate limit") as caught:
        await app.upsert_comment(REF, 2, "Ready", None)

    assert caught.value.delay == pytest.approx(30)
    assert not fake.comments(REPO, 2)
    assert await app.upsert_comment(REF, 2, "Ready", None)  # the job's retry goes through


async def test_429_and_exhausted_primary_limit_are_temporary(
    fake: FakeGitHub, personal: GitHubHost
) -> None:
    fake.fail_next(429, headers={"Retry-After": "7"})
    with pytest.raises(TemporaryError) as caught:
        await personal.get_pull(REF, 2)
    assert caught.value.delay == pytest.approx(7)

    fake.fail_next(
        403,
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1"},
        body={"message": "API rate limit exceeded for user ID 1."},
    )
    with pytest.raises(TemporaryError):
        await personal.get_pull(REF, 2)


async def test_missing_pull_request_is_permanent(fake: FakeGitHub, app: GitHubHost) -> None:
    with pytest.raises(PermanentError, match="404"):
        await app.get_pull(REF, 999)


async def test_bad_personal_token_is_permanent(fake: FakeGitHub) -> None:
    host = GitHubHost(GitHubConfig(api_url=fake.url, token=Secret("ghp_" + "0" * 36)))

    with pytest.raises(PermanentError, match="401") as caught:
        await host.get_pull(REF, 2)

    assert "ghp_" not in str(caught.value)
    host.close()


async def test_unreachable_github_is_temporary(fake: FakeGitHub) -> None:
    url = fake.url
    fake.stop()
    host = GitHubHost(GitHubConfig(api_url=url, token=Secret(fake.personal_token)))

    with pytest.raises(TemporaryError, match="cannot reach GitHub"):
        await host.get_pull(REF, 2)
    host.close()


async def test_a_pull_request_from_a_fork_is_recognized(fake: FakeGitHub, app: GitHubHost) -> None:
    assert not (await app.get_pull(REF, 2)).fork
    fake.add_pull(REPO, 3, SHA2, branch="patch-1", fork_full_name="mallory/Hello-World")
    assert (await app.get_pull(REF, 3)).fork
