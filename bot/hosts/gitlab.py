"""The GitLab adapter of `GitHost`: commit status, sticky MR note, review environment, commands.

python-gitlab is synchronous (`requests`): every call runs in a thread via `asyncio.to_thread`.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import gitlab
import requests
from gitlab.exceptions import GitlabError
from gitlab.v4.objects import Project

from bot import build_gate, metrics
from bot.config import ConfigError, GitLabConfig
from bot.errors import TemporaryError, classify_http
from bot.hosts.base import (
    CONFUSED,
    EYES,
    REACTIONS,
    STICKY_MARKER,
    THUMBS_UP,
    Access,
    without_sticky_marker,
)
from bot.hosts.github import REDACTED, clip
from bot.model import (
    BuildReport,
    CheckReport,
    CheckState,
    DeployState,
    PullRequest,
    RepoRef,
)

T = TypeVar("T")

USER_AGENT = "stagingbot"
DESCRIPTION_LIMIT = 255  # commit status description
NOTES_PER_PAGE = 100  # GitLab's maximum page size
MRS_PER_PAGE = 100
JOBS_PER_PAGE = 100
ENVIRONMENT_TIER = "development"
STATUS_STATES = {
    CheckState.IN_PROGRESS: "running",
    CheckState.SUCCESS: "success",
    CheckState.FAILURE: "failed",
    CheckState.CANCELLED: "canceled",
}
# GitLab refuses to move a pending/running status to the state it is already in:
# 400 "Cannot transition status via :run from :running". The status is what we wanted.
SAME_STATE = "Cannot transition status"
# https://docs.gitlab.com/api/emoji_reactions/ (award emoji names)
AWARD_NAMES = {EYES: "eyes", THUMBS_UP: "thumbsup", CONFUSED: "confused"}
# A duplicate award is refused with "Name has already been taken" (404 through the
# API's not_found!, 400 in some versions): the reaction is there, which is what we wanted.
ALREADY_TAKEN = "has already been taken"
# https://docs.gitlab.com/api/members/#roles: 50 owner, 40 maintainer, 30 developer,
# 20 reporter, 15 planner, 10 guest, 5 minimal access. Developers may run commands.
ADMIN_LEVEL = 40
WRITE_LEVEL = 30
# https://docs.gitlab.com/security/tokens/#token-prefixes
TOKEN_PATTERN = re.compile(
    r"\bgl(?:pat|oas|dt|rt|rtr|cbt|ptt|ft|imt|agent|soat|ffct|wt|sst)-[A-Za-z0-9_.\-]{20,}"
)


class _Client(gitlab.Gitlab):
    """python-gitlab that never sleeps in the thread, and keeps each thread's last headers.

    `Gitlab.http_request` sleeps through 429 (honouring Retry-After) unless each call passes
    `obey_rate_limit=False`, and the client has no setting for it: overriding the one method
    every request goes through covers every manager and `GitlabList` page. The job's own
    `Retry(defer=...)` decides when to try again. python-gitlab's errors keep the status and
    body but drop the headers, so a response hook remembers them for Retry-After.
    """

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self._seen = threading.local()
        self.session.hooks["response"].append(self._remember)

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._seen.headers = {str(k): str(v) for k, v in response.headers.items()}

    def last_headers(self) -> dict[str, str]:
        headers: dict[str, str] = getattr(self._seen, "headers", {})
        return headers

    def forget_headers(self) -> None:
        self._seen.headers = {}

    def http_request(self, verb: str, path: str, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.update(obey_rate_limit=False, retry_transient_errors=False, max_retries=0)
        return super().http_request(verb, path, *args, **kwargs)


def level_access(level: int) -> Access:
    """The host-neutral access of a GitLab access level."""
    if level >= ADMIN_LEVEL:
        return Access.ADMIN
    if level >= WRITE_LEVEL:
        return Access.WRITE
    return Access.READ if level > 0 else Access.NONE


def merge_request(repo: RepoRef, mr: dict[str, Any], path: Callable[[], str]) -> PullRequest:
    """The host-neutral request from GitLab's MR attributes (`path()`: the project's path,
    asked only when the MR does not say it)."""
    # "group/sub/project!12": the current path without a second GET of the project.
    full = str((mr.get("references") or {}).get("full") or "")
    return PullRequest(
        repo=RepoRef(
            repo.host,
            int(mr.get("project_id") or repo.id),
            full.rpartition("!")[0] if "!" in full else path(),
        ),
        number=int(mr["iid"]),
        head_sha=str(mr["sha"]),
        branch=str(mr["source_branch"]),
        title=str(mr["title"]),
        author=str(mr["author"]["username"]),
        url=str(mr["web_url"]),
        open=mr["state"] == "opened",
        merged=mr["state"] == "merged",
        # GitLab before 14.0 sends `work_in_progress` only (now deprecated for `draft`).
        draft=bool(mr.get("draft") or mr.get("work_in_progress")),
        labels=tuple(str(label) for label in mr.get("labels") or ()),  # names
        fork=mr.get("source_project_id") != mr.get("target_project_id"),
    )


def error_message(exc: GitlabError) -> str:
    """GitLab's `message`: a string, or a dict of field -> errors for validation failures."""
    message: Any = exc.error_message
    if isinstance(message, dict):
        return "; ".join(f"{k} {', '.join(map(str, v))}" for k, v in message.items())
    return str(message)


class GitLabHost:
    """`GitHost` for GitLab (gitlab.com or self-managed) through python-gitlab and a token.

    Projects are addressed by numeric id, so a renamed or transferred project keeps its
    stagings; objects are built lazily from ids, so an edit is one request.
    """

    def __init__(self, config: GitLabConfig, *, timeout: int = 15) -> None:
        if not config.token:
            raise ConfigError("gitlab.token: required to report on GitLab")
        self._config = config
        # Short values would redact ordinary words; real tokens and secrets are long.
        candidates = (config.token.reveal(), config.webhook_secret.reveal())
        self._secrets = [s for s in candidates if len(s) >= 8]
        self._gl = _Client(
            config.url.rstrip("/"),
            private_token=config.token.reveal(),
            timeout=timeout,
            retry_transient_errors=False,
            user_agent=USER_AGENT,
            # Pagination links then follow the configured URL, not GitLab's external_url
            # (a self-managed instance behind a proxy), and python-gitlab does not warn.
            keep_base_url=True,
        )
        self._lock = threading.Lock()  # guards the fields below
        self._username: str | None = None
        self._notes: dict[tuple[int, int], threading.Lock] = {}  # one sticky upsert per MR
        self._user_ids: dict[str, int] = {}  # username -> user id (ids never change)

    @classmethod
    def from_config(cls, config: GitLabConfig, *, timeout: int = 15) -> GitLabHost:
        """Build the host once at start-up; raises `ConfigError` naming the bad key."""
        return cls(config, timeout=timeout)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._gl.session.close()

    # -- GitHost -------------------------------------------------------------------------

    async def get_pull(self, repo: RepoRef, number: int) -> PullRequest:
        def work() -> PullRequest:
            mr = self._project(repo).mergerequests.get(number).attributes
            return merge_request(repo, mr, lambda: self._path(repo))

        return await self._call(f"read {repo.full_name}!{number}", work)

    async def open_pulls(self, repo: RepoRef) -> list[PullRequest]:
        def work() -> list[PullRequest]:
            # By id when known, else by the configured path (python-gitlab encodes it).
            project = self._gl.projects.get(repo.id or repo.full_name, lazy=True)
            # The list follows `Link: rel="next"` to the end; a failed page raises.
            # ETags are not used yet. https://docs.gitlab.com/api/merge_requests/
            found = project.mergerequests.list(
                state="opened", iterator=True, per_page=MRS_PER_PAGE, order_by="created_at"
            )
            return [merge_request(repo, mr.attributes, lambda: repo.full_name) for mr in found]

        return await self._call(f"list the open merge requests of {repo.full_name}", work)

    async def report_check(
        self,
        repo: RepoRef,
        sha: str,
        check: CheckReport,
        known_id: int | None,
        gate: str = "",
        *,
        unseen: bool = False,  # a commit status: nothing to look up
    ) -> int | None:
        """GitLab commit statuses have no id to keep: always None."""
        name = f"{self._config.status_name}/{gate}" if gate else self._config.status_name
        fields: dict[str, Any] = {
            "state": STATUS_STATES[check.state],
            "name": name,
            "description": clip(self._scrub(check.title or check.summary), DESCRIPTION_LIMIT),
        }
        if check.url:
            fields["target_url"] = self._scrub(check.url)

        def work() -> None:
            commit = self._project(repo).commits.get(sha, lazy=True)
            try:
                commit.statuses.create(fields)
            except GitlabError as exc:
                if exc.response_code == 400 and SAME_STATE in error_message(exc):
                    return None  # already in that state: reported
                raise
            return None

        what = f"report {name!r} on {repo.full_name}@{sha[:12]}"
        return await self._call(what, work)

    async def upsert_comment(
        self, repo: RepoRef, number: int, body: str, known_id: int | None, *, unseen: bool = False
    ) -> int:
        text = self._scrub(body if STICKY_MARKER in body else f"{STICKY_MARKER}\n{body}")
        with self._lock:
            serial = self._notes.setdefault((repo.id, number), threading.Lock())

        def work() -> int:
            with serial:  # concurrent first reports make one note
                return self._upsert(repo, number, text, known_id)

        return await self._call(f"comment on {repo.full_name}!{number}", work)

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
        unseen: bool = False,  # one environment per merge request, whatever the commit
    ) -> int:
        # The commit status carries the staging's state; the environment carries its URL.
        what = f"report environment {environment} on {repo.full_name}"
        if state is DeployState.INACTIVE:
            return await self._call(what, lambda: self._retire(repo, environment, known_id))
        return await self._call(
            what, lambda: self._ensure(repo, environment, self._scrub(url), known_id)
        )

    async def react(self, repo: RepoRef, number: int, comment_id: int, reaction: str) -> None:
        if reaction not in REACTIONS:
            raise ValueError(f"unknown reaction {reaction!r}")
        name = AWARD_NAMES[reaction]

        def work() -> None:
            mr = self._project(repo).mergerequests.get(number, lazy=True)
            try:
                mr.notes.get(comment_id, lazy=True).awardemojis.create({"name": name})
            except GitlabError as exc:
                taken = ALREADY_TAKEN in error_message(exc)
                if exc.response_code not in (400, 404) or not taken:
                    raise

        await self._call(f"award {name} on {repo.full_name}!{number} note {comment_id}", work)

    async def permission(self, repo: RepoRef, user: str) -> Access:
        def work() -> Access:
            user_id = self._user_id(user)
            if user_id is None:
                return Access.NONE
            try:
                # members/all: direct members and those inherited from the project's groups.
                member = self._project(repo).members_all.get(user_id)
            except GitlabError as exc:
                if exc.response_code != 404:
                    raise
                # The same 404 answers a non-member and a missing project: reading the
                # project raises (and is mapped) when it is the one missing.
                self._path(repo)
                return Access.NONE
            return level_access(int(member.attributes.get("access_level") or 0))

        return await self._call(f"read {user}'s access to {repo.full_name}", work)

    async def member_of(self, repo: RepoRef, group: str, user: str) -> bool:
        def work() -> bool:
            user_id = self._user_id(user)
            if user_id is None:
                return False
            try:
                # members/all: direct members and those inherited from parent groups.
                # https://docs.gitlab.com/api/members/#get-a-member-of-a-group-or-project-including-inherited-and-invited-members
                found = self._gl.groups.get(group, lazy=True).members_all.get(user_id)
            except GitlabError as exc:
                if exc.response_code != 404:
                    raise
                return False  # not a member, or no such group (or a username, not a group)
            data = found.attributes
            # "awaiting": added but not yet active (a seat not yet granted).
            return str(data.get("membership_state") or "active") == "active"

        return await self._call(f"read {user}'s membership of the group {group}", work)

    async def reply(self, repo: RepoRef, number: int, body: str) -> int:
        text = self._scrub(without_sticky_marker(body))

        def work() -> int:
            notes = self._project(repo).mergerequests.get(number, lazy=True).notes
            return int(notes.create({"body": text}).attributes["id"])

        return await self._call(f"reply on {repo.full_name}!{number}", work)

    async def build_report(self, repo: RepoRef, sha: str) -> BuildReport:
        def work() -> BuildReport:
            # The newest pipeline for the commit, and its jobs (retried ones left out).
            # https://docs.gitlab.com/api/pipelines/#list-project-pipelines
            # https://docs.gitlab.com/api/jobs/#list-pipeline-jobs
            project = self._project(repo)
            pipelines = project.pipelines.list(
                sha=sha, order_by="id", sort="desc", per_page=1, get_all=False
            )
            if not pipelines:
                return BuildReport()
            pipeline = pipelines[0]
            jobs = pipeline.jobs.list(iterator=True, per_page=JOBS_PER_PAGE)
            checks = tuple(
                build_gate.from_gitlab_job(
                    str(job.attributes["name"]),
                    str(job.attributes["status"]),
                    str(job.attributes.get("web_url") or ""),
                )
                for job in jobs
            )
            status = str(pipeline.attributes.get("status") or "")
            finished = ""
            if status in build_gate.GITLAB_FINISHED:
                finished = f"pipeline #{pipeline.attributes.get('id')} finished: {status}"
            return BuildReport(checks, finished)

        return await self._call(f"read the pipelines of {repo.full_name}@{sha[:12]}", work)

    async def identity(self) -> str:
        return await self._call("read the bot's username", self._own_username)

    # -- the work, in a thread -----------------------------------------------------------

    def _project(self, repo: RepoRef) -> Project:
        return self._gl.projects.get(repo.id, lazy=True)  # by id: a renamed project works

    def _path(self, repo: RepoRef) -> str:
        return str(self._gl.projects.get(repo.id).attributes["path_with_namespace"])

    def _upsert(self, repo: RepoRef, number: int, text: str, known_id: int | None) -> int:
        notes = self._project(repo).mergerequests.get(number, lazy=True).notes
        if known_id is not None:
            try:
                notes.update(known_id, {"body": text})
                return known_id
            except GitlabError as exc:
                if exc.response_code != 404:
                    raise  # 404: deleted by someone; find another by marker, or create one
        username = self._own_username()
        found = notes.list(
            iterator=True, per_page=NOTES_PER_PAGE, sort="asc", order_by="created_at"
        )
        for note in found:
            # Anyone can paste the marker: only the bot's own note is the sticky one.
            data = note.attributes
            author = data.get("author") or {}
            if STICKY_MARKER in (data.get("body") or "") and author.get("username") == username:
                notes.update(note.get_id(), {"body": text})
                return int(data["id"])
        return int(notes.create({"body": text}).attributes["id"])

    def _ensure(self, repo: RepoRef, name: str, url: str, known_id: int | None) -> int:
        """The environment `name` exists, is available and points at `url`."""
        environments = self._project(repo).environments
        env: dict[str, Any] | None = None
        if known_id is not None:
            env = self._touch(repo, known_id, url)
            if env is not None and env.get("name") != name:
                env = None  # an id from another environment: never repoint it
        if env is None:
            env = self._find(repo, name)
            if env is not None and url and env.get("external_url") != url:
                env = self._touch(repo, int(env["id"]), url)
        if env is not None and env.get("state") == "stopped":
            # GitLab has no API to start an environment again (only a deployment does):
            # replace the stopped one. https://docs.gitlab.com/api/environments/
            self._delete(repo, int(env["id"]))
            env = None
        if env is None:
            fields = {"name": name, "tier": ENVIRONMENT_TIER}
            if url:
                fields["external_url"] = url
            try:
                env = environments.create(fields).attributes
            except GitlabError as exc:
                # A concurrent attempt created it first: "name has already been taken".
                if exc.response_code != 400 or "taken" not in error_message(exc):
                    raise
                env = self._find(repo, name)
                if env is None:
                    raise
        return int(env["id"])

    def _retire(self, repo: RepoRef, name: str, known_id: int | None) -> int:
        """Stop the environment (its staging is gone), and delete it when configured."""
        environments = self._project(repo).environments
        env_id = known_id
        if env_id is not None:
            try:
                environments.get(env_id, lazy=True).stop()
            except GitlabError as exc:
                if exc.response_code != 404:
                    raise
                env_id = None
        if env_id is None:
            env = self._find(repo, name)
            if env is None:
                return known_id or 0  # nothing to stop
            env_id = int(env["id"])
            if env.get("state") != "stopped":
                environments.get(env_id, lazy=True).stop()
        if self._config.delete_environments:
            self._delete(repo, env_id)
        return env_id

    def _touch(self, repo: RepoRef, env_id: int, url: str) -> dict[str, Any] | None:
        """The environment, with `url` set when given; None if it is gone."""
        environments = self._project(repo).environments
        try:
            if url:
                return environments.update(env_id, {"external_url": url})
            return environments.get(env_id).attributes
        except GitlabError as exc:
            if exc.response_code == 404:
                return None
            raise

    def _find(self, repo: RepoRef, name: str) -> dict[str, Any] | None:
        # `name` is an exact match (`search` would be a substring one).
        for env in self._project(repo).environments.list(name=name, iterator=True):
            if env.attributes.get("name") == name:
                return env.attributes
        return None

    def _delete(self, repo: RepoRef, env_id: int) -> None:
        try:
            self._project(repo).environments.delete(env_id)
        except GitlabError as exc:
            if exc.response_code != 404:  # already gone is what we wanted
                raise

    def _user_id(self, username: str) -> int | None:
        """The id of `username`, looked up once; None when there is no such user."""
        with self._lock:
            known = self._user_ids.get(username.lower())
        if known is None:
            found = self._gl.users.list(username=username, get_all=False)
            if not found:
                return None  # not cached: the account may be created later
            known = int(found[0].get_id() or 0)
            with self._lock:
                self._user_ids[username.lower()] = known
        return known

    def _own_username(self) -> str:
        """The username the bot's notes carry: the token's user, learnt once."""
        with self._lock:
            known = self._username
        if known is None:
            user = self._gl.http_get("/user")
            assert isinstance(user, dict)
            known = str(user["username"])
            with self._lock:
                self._username = known
        return known

    # -- plumbing ------------------------------------------------------------------------

    async def _call(self, what: str, work: Callable[[], T]) -> T:
        return await asyncio.to_thread(self._run, what, work)

    def _run(self, what: str, work: Callable[[], T]) -> T:
        self._gl.forget_headers()  # pool threads are reused: no stale Retry-After
        metrics.api_call("gitlab")
        try:
            return work()
        except GitlabError as exc:
            metrics.api_error("gitlab", exc.response_code or 0)
            raise classify_http(
                exc.response_code or 0,
                self._gl.last_headers(),
                self._scrub(error_message(exc)),
                what,
            ) from exc
        except requests.RequestException as exc:
            metrics.api_error("gitlab", None)
            raise TemporaryError(f"{what}: cannot reach GitLab ({type(exc).__name__})") from exc

    def _scrub(self, text: str) -> str:
        """Nothing the bot posts may carry a credential, whoever rendered the text."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return TOKEN_PATTERN.sub(REDACTED, text)
