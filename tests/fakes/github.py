"""A local, stateful fake of the parts of GitHub's REST API the bot uses, over real HTTP.

It speaks the wire protocol PyGithub expects (response shapes from
https://docs.github.com/en/rest), authenticates like GitHub (App JWTs verified with the
App's public key, installation tokens, a personal token), refuses check-run writes from
anything but an installation token, and records every request so tests can count calls.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

Json = dict[str, Any]

DEFAULT_MESSAGES = {
    401: "Bad credentials",
    403: "You have exceeded a secondary rate limit. "
    "Please wait a few minutes before you try again.",
    404: "Not Found",
    422: "Validation Failed",
    429: "API rate limit exceeded for installation.",
    500: "Server Error",
    502: "Server Error",
    503: "Service Unavailable",
}
PERSONAL_CHECKS = "Resource not accessible by personal access token"
DEPLOY_STATES = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
STATUS_STATES = {"error", "failure", "pending", "success"}
CI_APP_ID = 15368  # GitHub Actions' App id: check runs of CI are written by another App
REACTIONS = {"+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"}
# The legacy `permission` field reports each role's base permission.
BASE_PERMISSION = {
    "admin": "admin",
    "maintain": "write",
    "write": "write",
    "triage": "read",
    "read": "read",
    "none": "none",
}


@functools.cache
def _app_key() -> tuple[rsa.RSAPrivateKey, str]:
    """One App key pair per test run: generating RSA keys is the slow part of a fake."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return key, pem.decode()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Recorded:
    """One request the fake answered."""

    method: str
    path: str
    query: dict[str, str]
    auth: str  # "jwt", "installation", "personal", "none" or "invalid"
    body: Any
    status: int


@dataclass
class _Failure:
    status: int
    headers: dict[str, str]
    body: Json | None
    method: str | None
    path: str | None  # regular expression searched in the request path


@dataclass
class _Repo:
    id: int
    full_name: str
    installation_id: int | None
    default_branch: str = "main"


@dataclass
class _Pull:
    repo_id: int
    number: int
    head_sha: str
    branch: str
    title: str
    author: str
    state: str = "open"
    merged: bool = False
    draft: bool = False
    fork_full_name: str | None = None
    base_sha: str = "b" * 40
    labels: list[str] = field(default_factory=list)
    updated_at: str = field(default_factory=_now)

    def __setattr__(self, name: str, value: Any) -> None:
        """Any change moves `updated_at`, as on GitHub (so an unchanged list keeps its ETag)."""
        super().__setattr__(name, value)
        if name != "updated_at":
            super().__setattr__("updated_at", _now())


@dataclass
class _Caller:
    kind: str
    installation_id: int | None = None


class _Error(Exception):
    def __init__(
        self, status: int, message: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body: Json = {
            "message": message or DEFAULT_MESSAGES.get(status, "Error"),
            "documentation_url": "https://docs.github.com/rest",
            "status": str(status),
        }
        self.headers = headers or {}


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    caller: _Caller
    match: re.Match[str]
    repo: _Repo | None = None


@dataclass
class _Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[["FakeGitHub", _Request], _Response]


class FakeGitHub:
    """GitHub's REST API for one App (and one personal token), on 127.0.0.1:<random port>."""

    def __init__(
        self,
        app_id: int = 424242,
        app_slug: str = "stagingbot",
        personal_login: str = "octo-operator",
        token_ttl: float = 3600.0,
    ) -> None:
        key, self.private_key_pem = _app_key()
        self._public_key = key.public_key()
        self.app_id = app_id
        self.app_slug = app_slug
        self.personal_login = personal_login
        self.personal_token = "ghp_" + secrets.token_hex(18)
        self.token_ttl = token_ttl
        self.requests: list[Recorded] = []
        self._lock = threading.RLock()
        self._ids = itertools.count(1001)
        self._repos: dict[int, _Repo] = {}
        self._old_names: dict[str, int] = {}
        self._pulls: dict[tuple[int, int], _Pull] = {}
        self._tokens: dict[str, tuple[int, float]] = {}  # token -> (installation id, expiry)
        self._check_runs: dict[int, Json] = {}
        self._statuses: dict[int, list[Json]] = {}  # repo id -> newest last
        self._comments: dict[int, Json] = {}
        self._reactions: dict[int, list[Json]] = {}  # comment id -> reactions
        self._users: set[str] = {personal_login.lower(), f"{app_slug}[bot]"}
        self._roles: dict[tuple[int, str], str] = {}  # (repo id, lower login) -> role
        self._deployments: dict[int, Json] = {}
        self._deployment_statuses: dict[int, list[Json]] = {}
        # (lower org, lower team slug) -> lower login -> membership state (active, pending)
        self._teams: dict[tuple[str, str], dict[str, str]] = {}
        self._no_members_read: set[int] = set()  # installations without "Members: read"
        self._failures: list[_Failure] = []
        self.rate_used = 0  # requests counted against the rate limit (a 304 is not)
        self._outage: _Failure | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> FakeGitHub:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall per keep-alive request
            wbufsize = 1 << 16  # headers and body leave in one write, flushed per request

            def _serve(self) -> None:
                fake._handle(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.block_on_close = False  # keep-alive connections must not hold up stop()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- test hooks ----------------------------------------------------------------------

    def add_repo(self, full_name: str, id: int, installation_id: int | None = 1) -> None:
        with self._lock:
            self._repos[id] = _Repo(id, full_name, installation_id)

    def rename_repo(self, repo_id: int, new_full_name: str) -> None:
        """Like GitHub: the old name answers 301 to `/repositories/{id}`."""
        with self._lock:
            repo = self._repos[repo_id]
            self._old_names[repo.full_name.lower()] = repo_id
            repo.full_name = new_full_name

    def add_pull(
        self,
        full_name: str,
        number: int,
        head_sha: str,
        branch: str = "feature",
        title: str = "Update the README",
        author: str = "Codertocat",
        draft: bool = False,
        fork_full_name: str | None = None,
        labels: tuple[str, ...] = (),
    ) -> None:
        with self._lock:
            repo = self._repo_named(full_name)
            self._pulls[repo.id, number] = _Pull(
                repo.id,
                number,
                head_sha,
                branch,
                title,
                author,
                draft=draft,
                fork_full_name=fork_full_name,
                labels=list(labels),
            )

    def set_labels(self, full_name: str, number: int, labels: tuple[str, ...]) -> None:
        """The names of the labels on the pull request, replacing any before."""
        with self._lock:
            self._pulls[self._repo_named(full_name).id, number].labels = list(labels)

    def set_head(self, full_name: str, number: int, head_sha: str) -> None:
        with self._lock:
            self._pulls[self._repo_named(full_name).id, number].head_sha = head_sha

    def close_pull(self, full_name: str, number: int, merged: bool = False) -> None:
        with self._lock:
            pull = self._pulls[self._repo_named(full_name).id, number]
            pull.state, pull.merged = "closed", merged

    def add_comment(self, full_name: str, number: int, body: str, login: str) -> int:
        """A comment written by someone else (a person, another bot)."""
        with self._lock:
            repo = self._repo_named(full_name)
            user = {"login": login, "id": 7, "type": "Bot" if "[bot]" in login else "User"}
            return int(self._new_comment(repo, number, body, user, None)["id"])

    def add_user(self, login: str) -> None:
        """An account that exists on GitHub, with no role in any repository."""
        with self._lock:
            self._users.add(login.lower())

    def set_role(self, full_name: str, login: str, role: str) -> None:
        """`login`'s role in the repository: admin, maintain, write, triage, read or none."""
        assert role in BASE_PERMISSION, role
        with self._lock:
            self._users.add(login.lower())
            self._roles[self._repo_named(full_name).id, login.lower()] = role

    def add_team(
        self, org: str, slug: str, members: tuple[str, ...] = (), pending: tuple[str, ...] = ()
    ) -> None:
        """A team of the organization `org` (which owns repositories added with `add_repo`)."""
        with self._lock:
            team = self._teams.setdefault((org.lower(), slug.lower()), {})
            team.update({login.lower(): "active" for login in members})
            team.update({login.lower(): "pending" for login in pending})
            self._users.update(login.lower() for login in (*members, *pending))

    def revoke_members_read(self, installation_id: int) -> None:
        """The App's installation lacks the "Members: read" organization permission."""
        with self._lock:
            self._no_members_read.add(installation_id)

    def reactions(self, comment_id: int) -> list[Json]:
        with self._lock:
            return [dict(r) for r in self._reactions.get(comment_id, [])]

    def fail_next(
        self,
        status: int,
        n: int = 1,
        headers: dict[str, str] | None = None,
        body: Json | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next `n` matching requests with `status` (e.g. 502, 403 + Retry-After)."""
        with self._lock:
            for _ in range(n):
                self._failures.append(_Failure(status, dict(headers or {}), body, method, path))

    def start_outage(
        self,
        status: int,
        headers: dict[str, str] | None = None,
        body: Json | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer every matching request with `status` until `end_outage()`: a stretch of 5xx,
        or of rate limiting (429, or 403 with GitHub's secondary-limit message and
        `Retry-After` in `headers`). Replaces an outage already going on."""
        with self._lock:
            self._outage = _Failure(status, dict(headers or {}), body, method, path)

    def end_outage(self) -> None:
        with self._lock:
            self._outage = None

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens = {t: (i, 0.0) for t, (i, _) in self._tokens.items()}

    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        """Recorded requests, filtered by method and a regular expression on the path."""
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method)
                and (path is None or re.search(path, r.path))
            ]

    def comments(self, full_name: str, number: int) -> list[Json]:
        with self._lock:
            repo_id = self._repo_named(full_name).id
            return [
                dict(c)
                for c in self._comments.values()
                if c["_repo"] == repo_id and c["_number"] == number
            ]

    def check_runs(self, full_name: str, sha: str) -> list[Json]:
        with self._lock:
            repo_id = self._repo_named(full_name).id
            return [
                dict(c)
                for c in self._check_runs.values()
                if c["_repo"] == repo_id and c["head_sha"] == sha
            ]

    def statuses(self, full_name: str, sha: str) -> list[Json]:
        with self._lock:
            repo_id = self._repo_named(full_name).id
            return [dict(s) for s in self._statuses.get(repo_id, []) if s["_sha"] == sha]

    def add_check_run(
        self,
        full_name: str,
        sha: str,
        name: str,
        status: str = "completed",
        conclusion: str | None = "success",
    ) -> int:
        """A check run written by another App (CI, e.g. GitHub Actions): a re-run is a new
        run with the same name, and the list answers the newest one of each name."""
        with self._lock:
            repo = self._repo_named(full_name)
            rid = next(self._ids)
            api = f"/repos/{repo.full_name}"
            self._check_runs[rid] = {
                "id": rid,
                "node_id": f"CR_{rid}",
                "head_sha": sha,
                "external_id": "",
                "url": self._api(f"{api}/check-runs/{rid}"),
                "html_url": f"https://github.com/{repo.full_name}/actions/runs/{rid}/job/{rid}",
                "details_url": f"https://github.com/{repo.full_name}/actions/runs/{rid}",
                "status": status,
                "conclusion": conclusion if status == "completed" else None,
                "started_at": _now(),
                "completed_at": _now() if status == "completed" else None,
                "output": {
                    "title": None,
                    "summary": None,
                    "text": None,
                    "annotations_count": 0,
                    "annotations_url": self._api(f"{api}/check-runs/{rid}/annotations"),
                },
                "name": name,
                "check_suite": {"id": 7},
                "app": {**self._app(), "id": CI_APP_ID, "slug": "github-actions"},
                "pull_requests": [],
                "_repo": repo.id,
            }
            return rid

    def add_status(self, full_name: str, sha: str, context: str, state: str) -> None:
        """A commit status written by someone else (a CI service with its own token)."""
        assert state in STATUS_STATES, state
        with self._lock:
            repo = self._repo_named(full_name)
            sid = next(self._ids)
            self._statuses.setdefault(repo.id, []).append(
                {
                    "url": self._api(f"/repos/{repo.full_name}/statuses/{sha}"),
                    "avatar_url": None,
                    "id": sid,
                    "node_id": f"SC_{sid}",
                    "state": state,
                    "description": f"Build {state}",
                    "target_url": f"https://ci.example.com/builds/{sid}",
                    "context": context,
                    "created_at": _now(),
                    "updated_at": _now(),
                    "creator": {"login": "ci-bot", "id": 77, "type": "User"},
                    "_sha": sha,
                }
            )

    def deployments(self, full_name: str) -> list[Json]:
        with self._lock:
            repo_id = self._repo_named(full_name).id
            return [dict(d) for d in self._deployments.values() if d["_repo"] == repo_id]

    def deployment_statuses(self, deployment_id: int) -> list[Json]:
        with self._lock:
            return [dict(s) for s in self._deployment_statuses.get(deployment_id, [])]

    # -- HTTP plumbing -------------------------------------------------------------------

    def _handle(self, http: BaseHTTPRequestHandler) -> None:
        split = urlsplit(http.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        length = int(http.headers.get("Content-Length") or 0)
        raw = http.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        with self._lock:
            caller = self._authenticate(http.headers.get("Authorization", ""))
            response = self._dispatch(http.command, split.path, query, body, caller)
            payload = b"" if response.body is None else json.dumps(response.body).encode()
            asked = http.headers.get("If-None-Match")
            response = _conditional(http.command, asked, response, payload)
            if response.status == 304:
                payload = b""
            elif caller.kind in ("installation", "personal"):
                self.rate_used += 1  # a 304 costs no rate limit; every other answer does
            self.requests.append(
                Recorded(http.command, split.path, query, caller.kind, body, response.status)
            )
            remaining = max(0, 5000 - self.rate_used)
        http.send_response(response.status)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Content-Length": str(len(payload)),
            "X-GitHub-Request-Id": secrets.token_hex(8).upper(),
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(int(time.time()) + 3600),
            "X-RateLimit-Resource": "core",
            **response.headers,
        }
        for name, value in headers.items():
            http.send_header(name, value)
        http.end_headers()
        http.wfile.write(payload)

    def _authenticate(self, header: str) -> _Caller:
        scheme, _, credential = header.partition(" ")
        if not header:
            return _Caller("none")
        if scheme.lower() not in ("token", "bearer"):
            return _Caller("invalid")
        if credential == self.personal_token:
            return _Caller("personal")
        if credential in self._tokens:
            installation_id, expires = self._tokens[credential]
            if expires > time.time():
                return _Caller("installation", installation_id)
            return _Caller("invalid")
        if scheme.lower() == "bearer" and credential.count(".") == 2:
            try:
                claims = jwt.decode(
                    credential,
                    self._public_key,
                    algorithms=["RS256"],
                    options={"require": ["exp", "iat", "iss"]},
                    leeway=5,
                )
            except jwt.PyJWTError:
                return _Caller("invalid")
            # GitHub refuses JWTs valid for more than 10 minutes.
            if str(claims["iss"]) == str(self.app_id) and claims["exp"] - claims["iat"] <= 660:
                return _Caller("jwt")
        return _Caller("invalid")

    def _dispatch(
        self, method: str, path: str, query: dict[str, str], body: Any, caller: _Caller
    ) -> _Response:
        try:
            self._maybe_fail(method, path)
            return self._route(method, path, query, body, caller)
        except _Error as err:
            return _Response(err.status, err.body, err.headers)

    def _maybe_fail(self, method: str, path: str) -> None:
        outage = self._outage
        if outage is not None and self._matches(outage, method, path):
            err = _Error(outage.status, None, outage.headers)
            if outage.body is not None:
                err.body = outage.body
            raise err
        for failure in self._failures:
            if (failure.method is None or failure.method == method) and (
                failure.path is None or re.search(failure.path, path)
            ):
                self._failures.remove(failure)
                err = _Error(failure.status, None, failure.headers)
                if failure.body is not None:
                    err.body = failure.body
                raise err

    @staticmethod
    def _matches(failure: _Failure, method: str, path: str) -> bool:
        return (failure.method is None or failure.method == method) and (
            failure.path is None or re.search(failure.path, path) is not None
        )

    def _route(
        self, method: str, path: str, query: dict[str, str], body: Any, caller: _Caller
    ) -> _Response:
        for pattern, verb, handler in APP_ROUTES:
            match = re.fullmatch(pattern, path)
            if match and verb == method:
                if caller.kind != "jwt":
                    raise _Error(401, "A JSON web token could not be decoded")
                return handler(self, _Request(method, path, query, body, caller, match))
        if (match := re.fullmatch(r"/user", path)) and method == "GET":
            return self._get_user(_Request(method, path, query, body, caller, match))
        if (match := re.fullmatch(ORG_TEAM_MEMBERSHIP, path)) and method == "GET":
            return self._team_membership(_Request(method, path, query, body, caller, match))
        repo, rest = self._resolve_repo(path)
        for pattern, verb, handler in REPO_ROUTES:
            match = re.fullmatch(pattern, rest)
            if match and verb == method:
                request = _Request(method, path, query, body, caller, match, repo)
                if rest == "/installation":
                    if caller.kind != "jwt":
                        raise _Error(401, "A JSON web token could not be decoded")
                else:
                    self._authorize(repo, caller)
                return handler(self, request)
        raise _Error(404)

    def _resolve_repo(self, path: str) -> tuple[_Repo, str]:
        if m := re.fullmatch(r"/repositories/(\d+)(/.*)?", path):
            repo = self._repos.get(int(m[1]))
            if repo is None:
                raise _Error(404)
            return repo, m[2] or ""
        if m := re.fullmatch(r"/repos/([^/]+/[^/]+)(/.*)?", path):
            wanted = m[1].lower()
            for repo in self._repos.values():
                if repo.full_name.lower() == wanted:
                    return repo, m[2] or ""
            if wanted in self._old_names:
                location = f"{self.url}/repositories/{self._old_names[wanted]}{m[2] or ''}"
                raise _Error(301, "Moved Permanently", {"Location": location})
        raise _Error(404)

    def _authorize(self, repo: _Repo, caller: _Caller) -> None:
        if caller.kind == "none":
            raise _Error(401, "Requires authentication")
        if caller.kind == "invalid":
            raise _Error(401, "Bad credentials")
        if caller.kind == "jwt":
            raise _Error(403, "Resource not accessible by integration")
        if caller.kind == "installation" and caller.installation_id != repo.installation_id:
            raise _Error(404)

    def _repo_named(self, full_name: str) -> _Repo:
        for repo in self._repos.values():
            if repo.full_name.lower() == full_name.lower():
                return repo
        raise KeyError(full_name)

    def _paginate(self, request: _Request, items: list[Json]) -> tuple[list[Json], dict[str, str]]:
        per_page = min(int(request.query.get("per_page", 30)), 100)
        page = int(request.query.get("page", 1))
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        links = []
        for rel, number in (("prev", page - 1), ("next", page + 1), ("first", 1), ("last", last)):
            if 1 <= number <= last and number != page:
                query = urlencode({**request.query, "per_page": per_page, "page": number})
                links.append(f'<{self.url}{request.path}?{query}>; rel="{rel}"')
        return chunk, ({"Link": ", ".join(links)} if links else {})

    # -- object shapes -------------------------------------------------------------------

    def _api(self, path: str) -> str:
        return f"{self.url}{path}"

    def _user(self, caller: _Caller) -> Json:
        if caller.kind == "installation":
            login = f"{self.app_slug}[bot]"
            return {
                "login": login,
                "id": 9_000_001,
                "type": "Bot",
                "site_admin": False,
                "url": self._api(f"/users/{login}"),
            }
        return {
            "login": self.personal_login,
            "id": 583231,
            "type": "User",
            "site_admin": False,
            "url": self._api(f"/users/{self.personal_login}"),
        }

    def _app(self) -> Json:
        return {
            "id": self.app_id,
            "slug": self.app_slug,
            "node_id": "MDM6QXBwMQ==",
            "name": "Staging Bot",
            "owner": {"login": "acme", "id": 1, "type": "Organization"},
            "description": "",
            "external_url": "https://stagingbot.example.com",
            "html_url": f"https://github.com/apps/{self.app_slug}",
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "permissions": {"checks": "write", "pull_requests": "write", "deployments": "write"},
            "events": ["pull_request", "issue_comment"],
        }

    def _repo_json(self, repo: _Repo) -> Json:
        owner, name = repo.full_name.split("/", 1)
        return {
            "id": repo.id,
            "node_id": f"R_{repo.id}",
            "name": name,
            "full_name": repo.full_name,
            "owner": {"login": owner, "id": 1, "type": "Organization"},
            "private": False,
            "fork": False,
            "html_url": f"https://github.com/{repo.full_name}",
            "url": self._api(f"/repos/{repo.full_name}"),
            "default_branch": repo.default_branch,
        }

    def _pull_json(self, pull: _Pull) -> Json:
        repo = self._repos[pull.repo_id]
        head_repo = self._repo_json(repo)
        if pull.fork_full_name:
            head_repo = {
                **head_repo,
                "id": repo.id + 1,
                "full_name": pull.fork_full_name,
                "fork": True,
                "name": pull.fork_full_name.split("/", 1)[1],
            }
        closed = pull.state == "closed"
        api = f"/repos/{repo.full_name}"
        return {
            "url": self._api(f"{api}/pulls/{pull.number}"),
            "id": repo.id * 1000 + pull.number,
            "node_id": f"PR_{repo.id}_{pull.number}",
            "html_url": f"https://github.com/{repo.full_name}/pull/{pull.number}",
            "issue_url": self._api(f"{api}/issues/{pull.number}"),
            "comments_url": self._api(f"{api}/issues/{pull.number}/comments"),
            "statuses_url": self._api(f"{api}/statuses/{pull.head_sha}"),
            "number": pull.number,
            "state": pull.state,
            "locked": False,
            "title": pull.title,
            "body": None,
            "user": {"login": pull.author, "id": 21031067, "type": "User"},
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": pull.updated_at,
            "closed_at": pull.updated_at if closed else None,
            "merged_at": pull.updated_at if pull.merged else None,
            "merge_commit_sha": None,
            "draft": pull.draft,
            "merged": pull.merged,
            "labels": [self._label_json(repo, name) for name in pull.labels],
            "head": {
                "label": f"{head_repo['owner']['login']}:{pull.branch}",
                "ref": pull.branch,
                "sha": pull.head_sha,
                "user": head_repo["owner"],
                "repo": head_repo,
            },
            "base": {
                "label": f"{repo.full_name.split('/')[0]}:{repo.default_branch}",
                "ref": repo.default_branch,
                "sha": pull.base_sha,
                "user": self._repo_json(repo)["owner"],
                "repo": self._repo_json(repo),
            },
        }

    def _label_json(self, repo: _Repo, name: str) -> Json:
        lid = 208_000_000 + sum(map(ord, name))
        return {
            "id": lid,
            "node_id": f"LA_{lid}",
            "url": self._api(f"/repos/{repo.full_name}/labels/{quote(name)}"),
            "name": name,
            "color": "f29513",
            "default": False,
            "description": None,
        }

    def _pull(self, request: _Request) -> _Pull:
        assert request.repo is not None
        pull = self._pulls.get((request.repo.id, int(request.match["number"])))
        if pull is None:
            raise _Error(404)
        return pull

    def _new_comment(
        self, repo: _Repo, number: int, body: str, user: Json, app: Json | None
    ) -> Json:
        cid = next(self._ids)
        comment = {
            "id": cid,
            "node_id": f"IC_{cid}",
            "url": self._api(f"/repos/{repo.full_name}/issues/comments/{cid}"),
            "html_url": f"https://github.com/{repo.full_name}/pull/{number}#issuecomment-{cid}",
            "issue_url": self._api(f"/repos/{repo.full_name}/issues/{number}"),
            "body": body,
            "user": user,
            "created_at": _now(),
            "updated_at": _now(),
            "author_association": "NONE",
            "performed_via_github_app": app,
            "_repo": repo.id,
            "_number": number,
        }
        self._comments[cid] = comment
        return comment

    # -- handlers ------------------------------------------------------------------------

    def _get_app(self, request: _Request) -> _Response:
        return _Response(200, self._app())

    def _access_token(self, request: _Request) -> _Response:
        installation_id = int(request.match["id"])
        if installation_id not in {r.installation_id for r in self._repos.values()}:
            raise _Error(404)
        token = "ghs_" + secrets.token_hex(18)
        expires = time.time() + self.token_ttl
        self._tokens[token] = (installation_id, expires)
        stamp = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return _Response(
            201,
            {
                "token": token,
                "expires_at": stamp,
                "permissions": {"checks": "write", "pull_requests": "write"},
                "repository_selection": "selected",
            },
        )

    def _installation(self, request: _Request) -> _Response:
        assert request.repo is not None
        if request.repo.installation_id is None:
            raise _Error(404)
        iid = request.repo.installation_id
        return _Response(
            200,
            {
                "id": iid,
                "app_id": self.app_id,
                "app_slug": self.app_slug,
                "target_type": "Organization",
                "account": self._repo_json(request.repo)["owner"],
                "access_tokens_url": self._api(f"/app/installations/{iid}/access_tokens"),
                "repositories_url": self._api("/installation/repositories"),
                "html_url": f"https://github.com/settings/installations/{iid}",
                "permissions": {"checks": "write", "pull_requests": "write"},
                "events": ["pull_request"],
                "created_at": "2024-01-01T00:00:00Z",
                "updated_at": "2024-01-01T00:00:00Z",
                "repository_selection": "selected",
            },
        )

    def _get_user(self, request: _Request) -> _Response:
        if request.caller.kind in ("none", "invalid"):
            raise _Error(401, "Requires authentication")
        if request.caller.kind != "personal":
            raise _Error(403, "Resource not accessible by integration")
        return _Response(200, self._user(request.caller))

    def _get_repo(self, request: _Request) -> _Response:
        assert request.repo is not None
        return _Response(200, self._repo_json(request.repo))

    def _get_pull(self, request: _Request) -> _Response:
        # The full pull request carries counts a list item lacks: its issue comments.
        # https://docs.github.com/en/rest/pulls/pulls#get-a-pull-request
        pull = self._pull(request)
        comments = sum(
            1
            for c in self._comments.values()
            if c["_repo"] == pull.repo_id and c["_number"] == pull.number
        )
        return _Response(200, {**self._pull_json(pull), "comments": comments})

    def _list_pulls(self, request: _Request) -> _Response:
        """Newest first, like GitHub's default `sort=created&direction=desc`. List items are
        the "simple" shape: no `merged`, `mergeable`, `comments`... (reading one of those
        makes PyGithub GET the pull request)."""
        assert request.repo is not None
        state = request.query.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise _Error(422)
        pulls = sorted(
            (p for (repo_id, _), p in self._pulls.items() if repo_id == request.repo.id),
            key=lambda p: -p.number,
        )
        simple = ("merged", "mergeable", "comments", "commits", "additions", "deletions")
        items = [
            {k: v for k, v in self._pull_json(p).items() if k not in simple}
            for p in pulls
            if state == "all" or p.state == state
        ]
        page, headers = self._paginate(request, items)
        return _Response(200, page, headers)

    def _check_run_json(self, run: Json) -> Json:
        return {k: v for k, v in run.items() if not k.startswith("_")}

    def _create_check_run(self, request: _Request) -> _Response:
        assert request.repo is not None
        if request.caller.kind != "installation":
            raise _Error(403, PERSONAL_CHECKS)
        body = request.body or {}
        if not body.get("name") or not body.get("head_sha"):
            raise _Error(422)
        rid = next(self._ids)
        api = f"/repos/{request.repo.full_name}"
        run: Json = {
            "id": rid,
            "node_id": f"CR_{rid}",
            "head_sha": body["head_sha"],
            "external_id": body.get("external_id", ""),
            "url": self._api(f"{api}/check-runs/{rid}"),
            "html_url": f"https://github.com/{request.repo.full_name}/runs/{rid}",
            "details_url": body.get("details_url"),
            "status": "queued",
            "conclusion": None,
            "started_at": _now(),
            "completed_at": None,
            "output": {
                "title": None,
                "summary": None,
                "text": None,
                "annotations_count": 0,
                "annotations_url": self._api(f"{api}/check-runs/{rid}/annotations"),
            },
            "name": body["name"],
            "check_suite": {"id": 5},
            "app": self._app(),
            "pull_requests": [],
            "_repo": request.repo.id,
        }
        self._apply_check_fields(run, body)
        self._check_runs[rid] = run
        return _Response(201, self._check_run_json(run))

    def _apply_check_fields(self, run: Json, body: Json) -> None:
        for key in ("details_url", "external_id", "name"):
            if key in body:
                run[key] = body[key]
        if "output" in body:
            run["output"] = {**run["output"], **body["output"]}
        if body.get("conclusion"):
            run.update(status="completed", conclusion=body["conclusion"], completed_at=_now())
        elif body.get("status"):
            if body["status"] == "completed":
                raise _Error(422, "Conclusion must be given when status is completed")
            run.update(status=body["status"], conclusion=None, completed_at=None)

    def _update_check_run(self, request: _Request) -> _Response:
        assert request.repo is not None
        if request.caller.kind != "installation":
            raise _Error(403, PERSONAL_CHECKS)
        run = self._check_runs.get(int(request.match["id"]))
        if run is None or run["_repo"] != request.repo.id:
            raise _Error(404)
        body = request.body or {}
        if run["status"] == "completed" and (
            ("conclusion" in body and body["conclusion"] != run["conclusion"])
            or ("status" in body and "conclusion" not in body and body["status"] != "completed")
        ):
            # "Once a check run transitions from the in_progress state to completed state,
            # it's not possible to modify its status nor its conclusion further" (GitHub
            # support). Whether GitHub answers 422 or ignores it, a bot must not try.
            raise _Error(422, "A completed check run's status and conclusion cannot change")
        self._apply_check_fields(run, body)
        return _Response(200, self._check_run_json(run))

    def _get_check_run(self, request: _Request) -> _Response:
        assert request.repo is not None
        run = self._check_runs.get(int(request.match["id"]))
        if run is None or run["_repo"] != request.repo.id:
            raise _Error(404)
        return _Response(200, self._check_run_json(run))

    def _resolve_ref(self, repo: _Repo, ref: str) -> str:
        for pull in self._pulls.values():
            if pull.repo_id == repo.id and ref == pull.branch:
                return pull.head_sha
        return ref

    def _list_check_runs(self, request: _Request) -> _Response:
        assert request.repo is not None
        sha = self._resolve_ref(request.repo, request.match["ref"])
        name, status = request.query.get("check_name"), request.query.get("status")
        runs = [
            self._check_run_json(r)
            for r in sorted(self._check_runs.values(), key=lambda r: -int(r["id"]))
            if r["_repo"] == request.repo.id
            and r["head_sha"] == sha
            and (name is None or r["name"] == name)
            and (status is None or r["status"] == status)
        ]
        if request.query.get("filter", "latest") == "latest":  # GitHub's default
            seen: set[tuple[str, int]] = set()
            newest = []
            for run in runs:  # newest first: the first of each name and App is the latest
                if (run["name"], run["app"]["id"]) not in seen:
                    seen.add((run["name"], run["app"]["id"]))
                    newest.append(run)
            runs = newest
        page, headers = self._paginate(request, runs)
        return _Response(200, {"total_count": len(runs), "check_runs": page}, headers)

    def _create_status(self, request: _Request) -> _Response:
        assert request.repo is not None
        body = request.body or {}
        if body.get("state") not in STATUS_STATES:
            raise _Error(422)
        sid = next(self._ids)
        sha = request.match["sha"]
        status = {
            "url": self._api(f"/repos/{request.repo.full_name}/statuses/{sha}"),
            "avatar_url": None,
            "id": sid,
            "node_id": f"SC_{sid}",
            "state": body["state"],
            "description": body.get("description"),
            "target_url": body.get("target_url"),
            "context": body.get("context") or "default",
            "created_at": _now(),
            "updated_at": _now(),
            "creator": self._user(request.caller),
            "_sha": sha,
        }
        if len(status["description"] or "") > 140:
            raise _Error(422, "description is too long (maximum is 140 characters)")
        self._statuses.setdefault(request.repo.id, []).append(status)
        return _Response(201, {k: v for k, v in status.items() if k != "_sha"})

    def _combined_status(self, request: _Request) -> _Response:
        """The latest status of each context and their combined state.
        https://docs.github.com/en/rest/commits/statuses#get-the-combined-status-for-a-specific-reference
        """
        assert request.repo is not None
        sha = self._resolve_ref(request.repo, request.match["ref"])
        latest: dict[str, Json] = {}
        for status in reversed(self._statuses.get(request.repo.id, [])):
            if status["_sha"] == sha:
                latest.setdefault(status["context"], status)
        statuses = [{k: v for k, v in s.items() if k != "_sha"} for s in latest.values()]
        states = {s["state"] for s in statuses}
        combined = (
            "failure"
            if states & {"failure", "error"}
            else "pending"
            if "pending" in states or not states
            else "success"
        )
        api = f"/repos/{request.repo.full_name}"
        return _Response(
            200,
            {
                "state": combined,
                "statuses": statuses,
                "sha": sha,
                "total_count": len(statuses),
                "repository": self._repo_json(request.repo),
                "commit_url": self._api(f"{api}/commits/{sha}"),
                "url": self._api(f"{api}/commits/{sha}/status"),
            },
        )

    def _list_statuses(self, request: _Request) -> _Response:
        assert request.repo is not None
        sha = self._resolve_ref(request.repo, request.match["ref"])
        items = [
            {k: v for k, v in s.items() if k != "_sha"}
            for s in reversed(self._statuses.get(request.repo.id, []))
            if s["_sha"] == sha
        ]
        page, headers = self._paginate(request, items)
        return _Response(200, page, headers)

    def _comment_json(self, comment: Json) -> Json:
        return {k: v for k, v in comment.items() if not k.startswith("_")}

    def _list_comments(self, request: _Request) -> _Response:
        assert request.repo is not None
        pull = self._pull(request)
        items = [
            self._comment_json(c)
            for c in self._comments.values()
            if c["_repo"] == request.repo.id and c["_number"] == pull.number
        ]
        page, headers = self._paginate(request, items)
        return _Response(200, page, headers)

    def _create_comment(self, request: _Request) -> _Response:
        assert request.repo is not None
        pull = self._pull(request)
        body = (request.body or {}).get("body")
        if not isinstance(body, str) or not body:
            raise _Error(422)
        app = self._app() if request.caller.kind == "installation" else None
        comment = self._new_comment(
            request.repo, pull.number, body, self._user(request.caller), app
        )
        return _Response(201, self._comment_json(comment))

    def _comment(self, request: _Request) -> Json:
        assert request.repo is not None
        comment = self._comments.get(int(request.match["id"]))
        if comment is None or comment["_repo"] != request.repo.id:
            raise _Error(404)
        return comment

    def _get_comment(self, request: _Request) -> _Response:
        return _Response(200, self._comment_json(self._comment(request)))

    def _update_comment(self, request: _Request) -> _Response:
        comment = self._comment(request)
        body = (request.body or {}).get("body")
        if not isinstance(body, str) or not body:
            raise _Error(422)
        # Like GitHub, write access is enough to edit anyone's comment: tests check the
        # bodies of other people's comments to prove the bot never touches them.
        comment.update(body=body, updated_at=_now())
        return _Response(200, self._comment_json(comment))

    def _create_reaction(self, request: _Request) -> _Response:
        comment = self._comment(request)
        content = (request.body or {}).get("content")
        if content not in REACTIONS:
            raise _Error(422)
        user = self._user(request.caller)
        reactions = self._reactions.setdefault(comment["id"], [])
        for reaction in reactions:
            # https://docs.github.com/en/rest/reactions/reactions#create-reaction-for-an-issue-comment
            # "200 Reaction exists": the same user's same reaction is not added twice.
            if reaction["content"] == content and reaction["user"]["login"] == user["login"]:
                return _Response(200, reaction)
        rid = next(self._ids)
        reaction = {
            "id": rid,
            "node_id": f"REA_{rid}",
            "user": user,
            "content": content,
            "created_at": _now(),
        }
        reactions.append(reaction)
        return _Response(201, reaction)

    def _get_permission(self, request: _Request) -> _Response:
        assert request.repo is not None
        login = unquote(request.match["login"])
        if login.lower() not in self._users:
            raise _Error(404)
        role = self._roles.get((request.repo.id, login.lower()), "none")
        permission = BASE_PERMISSION[role]
        user = {
            "login": login,
            "id": 100_000 + len(login),
            "type": "User",
            "site_admin": False,
            "url": self._api(f"/users/{login}"),
            "permissions": {
                "admin": role == "admin",
                "maintain": role in ("admin", "maintain"),
                "push": permission in ("admin", "write"),
                "triage": role in ("admin", "maintain", "write", "triage"),
                "pull": permission != "none",
            },
            "role_name": role,
        }
        return _Response(200, {"permission": permission, "role_name": role, "user": user})

    def _team_membership(self, request: _Request) -> _Response:
        """GET /orgs/{org}/teams/{team_slug}/memberships/{username}: 200 with the state
        (active, or pending for an invitation), 404 for a non-member or an unknown team.
        https://docs.github.com/en/rest/teams/members#get-team-membership-for-a-user"""
        org = unquote(request.match["org"]).lower()
        caller = request.caller
        if caller.kind in ("none", "invalid"):
            raise _Error(401, "Bad credentials" if caller.kind == "invalid" else None)
        if caller.kind == "jwt":
            raise _Error(403, "Resource not accessible by integration")
        if caller.kind == "installation":
            owned = {
                r.installation_id
                for r in self._repos.values()
                if r.full_name.lower().startswith(f"{org}/")
            }
            if caller.installation_id not in owned:
                raise _Error(404)  # installed elsewhere: the organization is not visible
            if caller.installation_id in self._no_members_read:
                raise _Error(403, "Resource not accessible by integration")
        team = self._teams.get((org, unquote(request.match["slug"]).lower()))
        login = unquote(request.match["login"])
        state = (team or {}).get(login.lower())
        if state is None:
            raise _Error(404)
        slug = request.match["slug"]
        return _Response(
            200,
            {
                "url": self._api(f"/orgs/{org}/teams/{slug}/memberships/{login}"),
                "role": "member",
                "state": state,
            },
        )

    def _deployment_json(self, deployment: Json) -> Json:
        return {k: v for k, v in deployment.items() if not k.startswith("_")}

    def _create_deployment(self, request: _Request) -> _Response:
        assert request.repo is not None
        body = request.body or {}
        ref = body.get("ref")
        if not isinstance(ref, str) or not ref:
            raise _Error(422)
        sha = self._resolve_ref(request.repo, ref)
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            raise _Error(422, f"No ref found for: {ref}")
        required = body.get("required_contexts")
        if required is None:
            # GitHub verifies every context unless told otherwise; a pending check conflicts.
            pending = [
                r["name"]
                for r in self._check_runs.values()
                if r["head_sha"] == sha and r["conclusion"] != "success"
            ]
            pending += [
                s["context"]
                for s in self._statuses.get(request.repo.id, [])
                if s["_sha"] == sha and s["state"] != "success"
            ]
            if pending:
                raise _Error(409, f"Conflict: Commit status checks failed for {ref}.")
        did = next(self._ids)
        api = f"/repos/{request.repo.full_name}"
        deployment = {
            "url": self._api(f"{api}/deployments/{did}"),
            "id": did,
            "node_id": f"DE_{did}",
            "sha": sha,
            "ref": ref,
            "task": body.get("task", "deploy"),
            "payload": body.get("payload", {}),
            "original_environment": body.get("environment", "production"),
            "environment": body.get("environment", "production"),
            "description": body.get("description"),
            "creator": self._user(request.caller),
            "created_at": _now(),
            "updated_at": _now(),
            "statuses_url": self._api(f"{api}/deployments/{did}/statuses"),
            "repository_url": self._api(api),
            "transient_environment": body.get("transient_environment", False),
            "production_environment": body.get(
                "production_environment", body.get("environment", "production") == "production"
            ),
            "_repo": request.repo.id,
            "_request": dict(body),  # exactly what the client sent
        }
        self._deployments[did] = deployment
        self._deployment_statuses[did] = []
        return _Response(201, self._deployment_json(deployment))

    def _list_deployments(self, request: _Request) -> _Response:
        assert request.repo is not None
        q = request.query
        items = [
            self._deployment_json(d)
            for d in sorted(self._deployments.values(), key=lambda d: -int(d["id"]))
            if d["_repo"] == request.repo.id
            and all(d[k] == q[k] for k in ("sha", "ref", "task", "environment") if k in q)
        ]
        page, headers = self._paginate(request, items)
        return _Response(200, page, headers)

    def _deployment(self, request: _Request) -> Json:
        assert request.repo is not None
        deployment = self._deployments.get(int(request.match["id"]))
        if deployment is None or deployment["_repo"] != request.repo.id:
            raise _Error(404)
        return deployment

    def _get_deployment(self, request: _Request) -> _Response:
        return _Response(200, self._deployment_json(self._deployment(request)))

    def _create_deployment_status(self, request: _Request) -> _Response:
        deployment = self._deployment(request)
        body = request.body or {}
        if body.get("state") not in DEPLOY_STATES:
            raise _Error(422)
        if len(body.get("description") or "") > 140:
            raise _Error(422, "description is too long (maximum is 140 characters)")
        status = self._add_deployment_status(deployment, body, request.caller)
        if body.get("auto_inactive", True) and body["state"] == "success":
            # https://docs.github.com/en/rest/deployments/statuses: auto_inactive marks prior
            # non-transient, non-production deployments of the environment inactive.
            for other in self._deployments.values():
                if (
                    other["id"] < deployment["id"]
                    and other["_repo"] == deployment["_repo"]
                    and other["environment"] == deployment["environment"]
                    and not other["transient_environment"]
                    and not other["production_environment"]
                ):
                    self._add_deployment_status(other, {"state": "inactive"}, request.caller)
        return _Response(201, status)

    def _add_deployment_status(self, deployment: Json, body: Json, caller: _Caller) -> Json:
        sid = next(self._ids)
        status = {
            "url": f"{deployment['url']}/statuses/{sid}",
            "id": sid,
            "node_id": f"DES_{sid}",
            "state": body["state"],
            "creator": self._user(caller),
            "description": body.get("description", ""),
            "environment": body.get("environment", deployment["environment"]),
            "target_url": body.get("target_url", body.get("log_url", "")),
            "log_url": body.get("log_url", body.get("target_url", "")),
            "environment_url": body.get("environment_url", ""),
            "auto_inactive": body.get("auto_inactive", True),
            "created_at": _now(),
            "updated_at": _now(),
            "deployment_url": deployment["url"],
            "repository_url": deployment["repository_url"],
        }
        self._deployment_statuses[deployment["id"]].append(status)
        return status

    def _list_deployment_statuses(self, request: _Request) -> _Response:
        deployment = self._deployment(request)
        items = list(reversed(self._deployment_statuses[deployment["id"]]))
        page, headers = self._paginate(request, items)
        return _Response(200, page, headers)


ORG_TEAM_MEMBERSHIP = r"/orgs/(?P<org>[^/]+)/teams/(?P<slug>[^/]+)/memberships/(?P<login>[^/]+)"
APP_ROUTES: list[tuple[str, str, Handler]] = [
    (r"/app", "GET", FakeGitHub._get_app),
    (r"/app/installations/(?P<id>\d+)/access_tokens", "POST", FakeGitHub._access_token),
]
REPO_ROUTES: list[tuple[str, str, Handler]] = [
    (r"", "GET", FakeGitHub._get_repo),
    (r"/installation", "GET", FakeGitHub._installation),
    (r"/pulls", "GET", FakeGitHub._list_pulls),
    (r"/pulls/(?P<number>\d+)", "GET", FakeGitHub._get_pull),
    (r"/check-runs", "POST", FakeGitHub._create_check_run),
    (r"/check-runs/(?P<id>\d+)", "PATCH", FakeGitHub._update_check_run),
    (r"/check-runs/(?P<id>\d+)", "GET", FakeGitHub._get_check_run),
    (r"/commits/(?P<ref>[^/]+)/check-runs", "GET", FakeGitHub._list_check_runs),
    (r"/statuses/(?P<sha>[^/]+)", "POST", FakeGitHub._create_status),
    (r"/commits/(?P<ref>[^/]+)/statuses", "GET", FakeGitHub._list_statuses),
    (r"/commits/(?P<ref>[^/]+)/status", "GET", FakeGitHub._combined_status),
    (r"/issues/(?P<number>\d+)/comments", "GET", FakeGitHub._list_comments),
    (r"/issues/(?P<number>\d+)/comments", "POST", FakeGitHub._create_comment),
    (r"/issues/comments/(?P<id>\d+)", "GET", FakeGitHub._get_comment),
    (r"/issues/comments/(?P<id>\d+)", "PATCH", FakeGitHub._update_comment),
    (r"/issues/comments/(?P<id>\d+)/reactions", "POST", FakeGitHub._create_reaction),
    (r"/collaborators/(?P<login>[^/]+)/permission", "GET", FakeGitHub._get_permission),
    (r"/deployments", "GET", FakeGitHub._list_deployments),
    (r"/deployments", "POST", FakeGitHub._create_deployment),
    (r"/deployments/(?P<id>\d+)", "GET", FakeGitHub._get_deployment),
    (r"/deployments/(?P<id>\d+)/statuses", "GET", FakeGitHub._list_deployment_statuses),
    (r"/deployments/(?P<id>\d+)/statuses", "POST", FakeGitHub._create_deployment_status),
]


def _conditional(
    method: str, if_none_match: str | None, response: _Response, payload: bytes
) -> _Response:
    """GitHub's conditional requests: a GET's 200 carries an ETag (over the body); asked
    again with it in `If-None-Match`, an unchanged answer is `304 Not Modified`, no body.
    https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#use-conditional-requests-if-appropriate
    """
    if method != "GET" or response.status != 200:
        return response
    etag = f'W/"{hashlib.sha256(payload).hexdigest()[:40]}"'
    headers = {**response.headers, "ETag": etag}
    asked = {tag.strip() for tag in (if_none_match or "").split(",")}
    if etag in asked or "*" in asked:
        return _Response(304, None, headers)
    return _Response(response.status, response.body, headers)


def iter_tokens(fake: FakeGitHub) -> Iterator[str]:
    """Every credential the fake knows (personal and issued), to assert none was ever posted."""
    with fake._lock:
        yield fake.personal_token
        yield from list(fake._tokens)
