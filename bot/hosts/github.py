"""The GitHub adapter of `GitHost`: checks or statuses, the sticky comment, deployments, commands.

PyGithub is synchronous (`requests`): every call runs in a thread via `asyncio.to_thread`.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests
from github import Github, GithubException, UnknownObjectException
from github.Deployment import Deployment
from github.PullRequest import PullRequest as GithubPullRequest
from github.Repository import Repository

from bot import build_gate, metrics
from bot.config import GitHubConfig
from bot.errors import TemporaryError, classify_http
from bot.hosts import github_lists
from bot.hosts.base import (
    CONFUSED,
    EYES,
    REACTIONS,
    STICKY_MARKER,
    THUMBS_UP,
    Access,
    ListPage,
    OpenPulls,
    without_sticky_marker,
)
from bot.hosts.github_auth import GitHubClients
from bot.model import (
    BuildReport,
    CheckReport,
    CheckState,
    DeployState,
    PullRequest,
    RepoRef,
)

T = TypeVar("T")

DESCRIPTION_LIMIT = 140  # commit and deployment status descriptions
SUMMARY_LIMIT = 65535  # check run output.summary
STATUS_STATES = {
    CheckState.IN_PROGRESS: "pending",
    CheckState.SUCCESS: "success",
    CheckState.FAILURE: "failure",
    CheckState.CANCELLED: "error",
}
# https://docs.github.com/en/rest/reactions/reactions#about-reactions
REACTION_CONTENT = {EYES: "eyes", THUMBS_UP: "+1", CONFUSED: "confused"}
# The legacy `permission` field folds every role (custom ones included) into its base:
# maintain reads "write", triage reads "read". Writers may run commands, so one request
# is enough; a maintainer is WRITE, not ADMIN.
# https://docs.github.com/en/rest/collaborators/collaborators#get-repository-permissions-for-a-user
PERMISSIONS = {"admin": Access.ADMIN, "write": Access.WRITE, "read": Access.READ}
# https://github.blog/engineering/platform-security/behind-githubs-new-authentication-token-formats/
TOKEN_PATTERN = re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})")
REDACTED = "[redacted]"


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pull_request(
    host: str, pr: GithubPullRequest, merged: bool, comments: int | None = None
) -> PullRequest:
    """The host-neutral request from PyGithub's, reading only what a list item carries
    (`merged` and `comments` only a full pull request has: its reader passes them)."""
    return PullRequest(
        repo=RepoRef(host, pr.base.repo.id, pr.base.repo.full_name),
        number=pr.number,
        head_sha=pr.head.sha,
        branch=pr.head.ref,
        title=pr.title,
        author=pr.user.login,
        url=pr.html_url,
        open=pr.state == "open",
        merged=merged,
        draft=bool(pr.draft),
        labels=tuple(label.name for label in pr.labels),
        # A deleted fork leaves no head repository: still a fork.
        fork=pr.head.repo is None or pr.head.repo.id != pr.base.repo.id,
        comments=comments,
    )


def error_message(exc: GithubException) -> str:
    """GitHub's `message`, plus the first validation error when there is one."""
    data = exc.data if isinstance(exc.data, dict) else {}
    message = str(data.get("message") or exc.message or "")
    errors = data.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        detail = errors[0].get("message") or errors[0].get("code")
        if detail:
            message = f"{message} ({detail})"
    return message


class GitHubHost:
    """`GitHost` for GitHub through PyGithub, as a GitHub App or with a personal token.

    Which client speaks for a repository is `GitHubClients`' business. Calls for one
    installation run one at a time, as GitHub asks to avoid its secondary rate limits.
    """

    def __init__(self, config: GitHubConfig, *, timeout: int = 15) -> None:
        self._config = config
        # Short values would redact ordinary words; real tokens and secrets are long.
        candidates = (config.token.reveal(), config.webhook_secret.reveal())
        self._secrets = [s for s in candidates if len(s) >= 8]
        self._clients = GitHubClients(config, timeout=timeout)
        self._lock = threading.Lock()  # guards _serial
        self._serial: dict[int, threading.Lock] = {}  # installation id (0: token) -> lock

    @classmethod
    def from_config(cls, config: GitHubConfig, *, timeout: int = 15) -> GitHubHost:
        """Build the host once at start-up; raises `ConfigError` naming the bad key."""
        return cls(config, timeout=timeout)

    def close(self) -> None:
        """Close the HTTP connections of every client."""
        self._clients.close()

    # -- GitHost -------------------------------------------------------------------------

    async def get_pull(self, repo: RepoRef, number: int) -> PullRequest:
        def work(r: Repository) -> PullRequest:
            pr = r.get_pull(number)
            return pull_request(repo.host, pr, merged=bool(pr.merged), comments=pr.comments)

        return await self._call(f"read {repo.full_name}#{number}", repo, work)

    async def open_pulls(self, repo: RepoRef) -> list[PullRequest]:
        return list((await self.open_pulls_since(repo, ())).pulls)

    async def open_pulls_since(self, repo: RepoRef, known: Sequence[ListPage]) -> OpenPulls:
        """Every page asked with its last ETag (bot.hosts.github_lists); no GET of the
        repository itself, so an unchanged list costs no rate limit at all.
        https://docs.github.com/en/rest/pulls/pulls#list-pull-requests"""

        def work(client: Github) -> OpenPulls:
            # List items lack `merged` (reading it would GET each one): open means unmerged.
            return github_lists.open_pulls_since(
                client.requester, repo, known, lambda host, pr: pull_request(host, pr, False)
            )

        what = f"list the open pull requests of {repo.full_name}"
        return await asyncio.to_thread(self._mapped, what, lambda: self._as(repo, work), repo)

    async def report_check(
        self,
        repo: RepoRef,
        sha: str,
        check: CheckReport,
        known_id: int | None,
        gate: str = "",
        *,
        unseen: bool = False,
    ) -> int | None:
        name = f"{self._config.check_name}/{gate}" if gate else self._config.check_name
        what = f"report {name!r} on {repo.full_name}@{sha[:12]}"
        if not self._clients.app_mode:
            # GitHub accepts check-run writes only from an App installation token.
            return await self._call(what, repo, lambda r: self._commit_status(r, sha, check, name))
        return await self._call(
            what, repo, lambda r: self._check_run(r, sha, check, known_id, name, unseen)
        )

    async def upsert_comment(
        self, repo: RepoRef, number: int, body: str, known_id: int | None, *, unseen: bool = False
    ) -> int:
        text = self._scrub(body if STICKY_MARKER in body else f"{STICKY_MARKER}\n{body}")
        what = f"comment on {repo.full_name}#{number}"
        return await self._call(
            what, repo, lambda r: self._upsert(r, number, text, known_id, unseen)
        )

    async def report_deployment(
        self,
        repo: RepoRef,
        environment: str,
        sha: str,
        state: DeployState,
        url: str,
        description: str,
        known_id: int | None,
        *,
        unseen: bool = False,
    ) -> int:
        status: dict[str, Any] = {
            "state": state.value,
            "description": clip(self._scrub(description), DESCRIPTION_LIMIT),
            "auto_inactive": True,
        }
        if url and state is not DeployState.INACTIVE:
            status["environment_url"] = url
        what = f"report deployment {environment} on {repo.full_name}@{sha[:12]}"

        def work(r: Repository) -> int:
            return self._deploy(r, environment, sha, status, known_id, unseen)

        return await self._call(what, repo, work)

    async def react(self, repo: RepoRef, number: int, comment_id: int, reaction: str) -> None:
        if reaction not in REACTIONS:
            raise ValueError(f"unknown reaction {reaction!r}")
        content = REACTION_CONTENT[reaction]

        def work(r: Repository) -> None:
            # GitHub answers 200 with the existing reaction for a duplicate: idempotent.
            r.get_issue(number).get_comment(comment_id).create_reaction(content)

        what = f"react {content} on {repo.full_name}#{number} comment {comment_id}"
        await self._call(what, repo, work)

    async def permission(self, repo: RepoRef, user: str) -> Access:
        def work(r: Repository) -> Access:
            try:
                return PERMISSIONS.get(r.get_collaborator_permission(user), Access.NONE)
            except UnknownObjectException:
                # GitHub answers the same 404 for an unknown user and a missing repository:
                # reading the repository raises (and is mapped) when it is the one missing.
                _ = r.full_name
                return Access.NONE

        return await self._call(f"read {user}'s permission on {repo.full_name}", repo, work)

    async def member_of(self, repo: RepoRef, group: str, user: str) -> bool:
        org, _, slug = group.partition("/")
        if not org or not slug or "/" in slug:
            return False  # not a team: teams are `org/team-slug`

        def work(client: Github) -> bool:
            # Needs the App's "Members: read" organization permission (403 without it).
            # https://docs.github.com/en/rest/teams/members#get-team-membership-for-a-user
            team = client.get_organization(org).get_team_by_slug(slug)  # lazy: no request
            try:
                membership = team.get_team_membership(user)
            except UnknownObjectException:
                return False  # not a member, or no such team: GitHub answers 404 to both
            return membership.state == "active"  # an invitation still pending is not yet

        what = f"read {user}'s membership of the team {group}"
        return await asyncio.to_thread(self._mapped, what, lambda: self._as(repo, work), repo)

    async def reply(self, repo: RepoRef, number: int, body: str) -> int:
        text = self._scrub(without_sticky_marker(body))

        def work(r: Repository) -> int:
            return r.get_issue(number).create_comment(text).id

        return await self._call(f"reply on {repo.full_name}#{number}", repo, work)

    async def build_report(self, repo: RepoRef, sha: str) -> BuildReport:
        def work(r: Repository) -> BuildReport:
            commit = r.get_commit(sha)
            # Newest first, the latest run of each name (filter=latest, GitHub's default).
            # https://docs.github.com/en/rest/checks/runs#list-check-runs-for-a-git-reference
            runs = commit.get_check_runs(filter="latest")
            checks = [
                build_gate.from_check_run(run.name, run.status, run.conclusion, run.html_url or "")
                for run in runs
            ]
            # The latest status of each context.
            # https://docs.github.com/en/rest/commits/statuses#get-the-combined-status-for-a-specific-reference
            for status in commit.get_combined_status().statuses:
                checks.append(
                    build_gate.from_status(status.context, status.state, status.target_url or "")
                )
            return BuildReport(tuple(checks))

        return await self._call(f"read the builds of {repo.full_name}@{sha[:12]}", repo, work)

    async def identity(self) -> str:
        return await asyncio.to_thread(
            self._mapped, "read the bot's login", self._clients.own_login
        )

    # -- the work, in a thread -----------------------------------------------------------

    def _check_run(
        self,
        r: Repository,
        sha: str,
        check: CheckReport,
        known_id: int | None,
        name: str,
        unseen: bool,
    ) -> int:
        fields: dict[str, Any] = {
            "output": {
                "title": clip(self._scrub(check.title), 1000),
                "summary": clip(self._scrub(check.summary), SUMMARY_LIMIT),
            }
        }
        if check.url:
            fields["details_url"] = check.url
        if check.state is CheckState.IN_PROGRESS:
            fields["status"] = "in_progress"
        else:
            fields.update(
                status="completed", conclusion=check.state.value, completed_at=datetime.now(UTC)
            )
        if known_id is not None:
            try:
                r.get_check_run(known_id).edit(**fields)
                return known_id
            except UnknownObjectException:
                pass  # gone or never ours: find it by name like a first attempt would
        elif unseen:  # never begun on this commit: nothing to find
            return r.create_check_run(name=name, head_sha=sha, **fields).id
        # A retried job that never stored the id must not create a second run. The list is
        # the newest run of each name (filter=latest): the one GitHub shows.
        for run in r.get_commit(sha).get_check_runs(check_name=name):
            if run.app.id == self._config.app_id:
                written = run.conclusion if run.status == "completed" else run.status
                if not check.state.can_follow(written or ""):
                    break  # completed for good (GitHub keeps its outcome): start a new run
                run.edit(**fields)
                return run.id
        return r.create_check_run(name=name, head_sha=sha, **fields).id

    def _commit_status(self, r: Repository, sha: str, check: CheckReport, name: str) -> None:
        fields: dict[str, Any] = {
            "state": STATUS_STATES[check.state],
            "description": clip(self._scrub(check.title or check.summary), DESCRIPTION_LIMIT),
            "context": name,
        }
        if check.url:
            fields["target_url"] = check.url
        r.get_commit(sha).create_status(**fields)

    def _upsert(
        self, r: Repository, number: int, body: str, known_id: int | None, unseen: bool
    ) -> int:
        issue = r.get_issue(number)
        if known_id is not None:
            try:
                issue.get_comment(known_id).edit(body)
                return known_id
            except UnknownObjectException:
                pass  # deleted by someone: find another by marker, or create one
        elif unseen:  # no comment on the request at all: nothing to find
            return issue.create_comment(body).id
        login = self._clients.own_login()
        for comment in issue.get_comments():
            # Anyone can paste the marker: only the bot's own comment is the sticky one.
            if STICKY_MARKER in (comment.body or "") and comment.user.login == login:
                comment.edit(body)
                return comment.id
        return issue.create_comment(body).id

    def _deploy(
        self,
        r: Repository,
        environment: str,
        sha: str,
        status: dict[str, Any],
        known_id: int | None,
        unseen: bool,
    ) -> int:
        if known_id is not None:
            try:
                r.get_deployment(known_id).create_status(**status)
                return known_id
            except UnknownObjectException:
                pass
        deployment: Deployment | None = None
        if known_id is not None or not unseen:  # unseen: never begun on it, nothing to find
            deployment = next(iter(r.get_deployments(sha=sha, environment=environment)), None)
        if deployment is None:
            # ref = the SHA and no required contexts, or GitHub merges the base branch in or
            # answers 409 while the staging check itself is pending.
            # https://docs.github.com/en/rest/deployments/deployments#create-a-deployment
            deployment = r.create_deployment(
                ref=sha,
                auto_merge=False,
                required_contexts=[],
                environment=environment,
                transient_environment=True,
                production_environment=False,
            )
        deployment.create_status(**status)
        return deployment.id

    # -- plumbing ------------------------------------------------------------------------

    async def _call(self, what: str, repo: RepoRef, work: Callable[[Repository], T]) -> T:
        return await asyncio.to_thread(self._run, what, repo, work)

    def _run(self, what: str, repo: RepoRef, work: Callable[[Repository], T]) -> T:
        def in_repo(client: Github) -> T:
            # By id: a renamed repository still works. The sweep knows only configured
            # names (id 0) for repositories it has not met yet.
            return work(client.get_repo(repo.id or repo.full_name))

        return self._mapped(what, lambda: self._as(repo, in_repo), repo)

    def _as(self, repo: RepoRef, work: Callable[[Github], T]) -> T:
        """`work` with the client that speaks for `repo`, one call per installation at a time.

        An installation a webhook named may since have been removed (the App reinstalled):
        on a 401/404 through it, the installation is looked up and `work` runs once more.
        """
        installation_id, client = self._clients.for_repo(repo)
        try:
            return self._serially(installation_id, client, work)
        except GithubException as exc:
            hinted = repo.installation and installation_id == repo.installation
            if exc.status not in (401, 404) or not hinted:
                raise
            self._clients.forget(repo)  # and no longer trusts that installation id
            return self._serially(*self._clients.for_repo(repo), work)

    def _serially(self, installation_id: int, client: Github, work: Callable[[Github], T]) -> T:
        with self._lock:
            serial = self._serial.setdefault(installation_id, threading.Lock())
        with serial:
            return work(client)

    def _mapped(self, what: str, work: Callable[[], T], repo: RepoRef | None = None) -> T:
        """`work()`, with PyGithub's and requests' errors mapped to the bot's two kinds."""
        metrics.api_call("github")
        try:
            return work()
        except GithubException as exc:
            metrics.api_error("github", exc.status)
            if repo is not None and exc.status in (401, 404):
                self._clients.forget(repo)  # uninstalled or moved: look it up again
            raise classify_http(
                exc.status,
                {str(k): str(v) for k, v in (exc.headers or {}).items()},
                self._scrub(error_message(exc)),
                what,
            ) from exc
        except requests.RequestException as exc:
            metrics.api_error("github", None)
            raise TemporaryError(f"{what}: cannot reach GitHub ({type(exc).__name__})") from exc

    def _scrub(self, text: str) -> str:
        """Nothing the bot posts may carry a credential, whoever rendered the text."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return TOKEN_PATTERN.sub(REDACTED, text)
