"""A local, stateful fake of the parts of GitLab's REST API v4 the bot uses, over real HTTP.

It speaks the wire protocol python-gitlab expects (response shapes from
https://docs.gitlab.com/api/rest/), authenticates with `PRIVATE-TOKEN`, addresses a
project by numeric id or URL-encoded path, refuses what GitLab refuses (a commit status
posted twice in the same state, deleting an available environment, a duplicate
environment name, a duplicate award emoji), resolves members inherited from the
project's groups, and records every request so tests can count calls.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

Json = dict[str, Any]

DEFAULT_MESSAGES = {
    400: "400 Bad request",
    401: "401 Unauthorized",
    403: "403 Forbidden",
    404: "404 Not Found",
    429: "Retry later",
    500: "500 Internal Server Error",
    502: "502 Bad Gateway",
    503: "503 Service Unavailable",
}
AWARD_NAMES = {"thumbsup", "thumbsdown", "eyes", "confused", "tada", "rocket", "heart"}
STATUS_STATES = {"pending", "running", "success", "failed", "canceled", "skipped"}
FINISHED = {"success", "failed", "canceled", "skipped"}
# GitLab names the state-machine event after the target state in its refusal.
EVENTS = {
    "pending": "enqueue",
    "running": "run",
    "success": "success",
    "failed": "drop",
    "canceled": "cancel",
    "skipped": "skip",
}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass(frozen=True)
class Recorded:
    """One request the fake answered (`path` as sent, still URL-encoded)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    auth_ok: bool
    status: int


@dataclass
class _Failure:
    status: int
    headers: dict[str, str]
    body: Json | None
    method: str | None
    path: str | None  # regular expression searched in the request path


@dataclass
class _Project:
    id: int
    path: str  # path_with_namespace


@dataclass
class _MergeRequest:
    project_id: int
    iid: int
    sha: str
    branch: str
    title: str
    author: str
    draft: bool = False
    state: str = "opened"
    target_branch: str = "main"
    source_project_id: int | None = None  # a fork's project; None: the project itself
    labels: list[str] = field(default_factory=list)


class _Error(Exception):
    def __init__(
        self, status: int, message: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        # GitLab's message is a string, or a dict of field -> errors for validation failures.
        self.body: Json = {"message": message or DEFAULT_MESSAGES.get(status, "Error")}
        self.headers = headers or {}


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    match: re.Match[str]
    project: _Project


@dataclass
class _Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[["FakeGitLab", _Request], _Response]


class FakeGitLab:
    """GitLab's REST API v4 for one token's user, on 127.0.0.1:<random port>."""

    def __init__(self, username: str = "stagingbot", user_id: int = 4242) -> None:
        self.username = username
        self.user_id = user_id
        self.token = "glpat-" + secrets.token_urlsafe(15)
        self.requests: list[Recorded] = []
        self._lock = threading.RLock()
        self._ids = itertools.count(1001)
        self._projects: dict[int, _Project] = {}
        self._mrs: dict[tuple[int, int], _MergeRequest] = {}
        self._notes: dict[int, Json] = {}
        self._statuses: list[Json] = []
        self._pipelines: dict[int, Json] = {}  # id -> pipeline, with `_project` and `_jobs`
        self._environments: dict[int, Json] = {}
        self._users: dict[str, Json] = {username.lower(): self._person(username, user_id)}
        self._members: dict[str, dict[int, int]] = {}  # group or project path -> id -> level
        self._groups: dict[str, int] = {}  # lower full path -> group id
        self._awards: dict[int, list[Json]] = {}  # note id -> award emoji
        self._failures: list[_Failure] = []
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> FakeGitLab:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True
            wbufsize = 1 << 16

            def _serve(self) -> None:
                fake._handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGitLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- test hooks ----------------------------------------------------------------------

    def add_project(self, path: str, id: int) -> None:
        with self._lock:
            self._projects[id] = _Project(id, path)

    def rename_project(self, id: int, new_path: str) -> None:
        with self._lock:
            self._projects[id].path = new_path

    def add_mr(
        self,
        path: str,
        iid: int,
        sha: str,
        branch: str = "feature",
        title: str = "Update the README",
        draft: bool = False,
        author: str = "alice",
        source_project_id: int | None = None,
        labels: tuple[str, ...] = (),
    ) -> None:
        with self._lock:
            project = self._project_named(path)
            self._mrs[project.id, iid] = _MergeRequest(
                project.id,
                iid,
                sha,
                branch,
                title,
                author,
                draft,
                source_project_id=source_project_id,
                labels=list(labels),
            )

    def set_labels(self, path: str, iid: int, labels: tuple[str, ...]) -> None:
        """The names of the labels on the merge request, replacing any before."""
        with self._lock:
            self._mrs[self._project_named(path).id, iid].labels = list(labels)

    def set_head(self, path: str, iid: int, sha: str) -> None:
        with self._lock:
            self._mrs[self._project_named(path).id, iid].sha = sha

    def close_mr(self, path: str, iid: int, merged: bool = False) -> None:
        with self._lock:
            self._mrs[self._project_named(path).id, iid].state = "merged" if merged else "closed"

    def add_note(self, path: str, iid: int, body: str, username: str) -> int:
        """A note written by someone else (a person, another bot)."""
        with self._lock:
            project = self._project_named(path)
            return int(self._new_note(project, iid, body, username, 7)["id"])

    def add_user(self, username: str, id: int) -> None:
        with self._lock:
            self._users[username.lower()] = self._person(username, id)

    def add_member(self, path: str, username: str, access_level: int) -> None:
        """Make `username` a member of the group or project `path` (e.g. 40: maintainer)."""
        with self._lock:
            user_id = int(self._users[username.lower()]["id"])
            self._members.setdefault(path.lower(), {})[user_id] = access_level

    def add_group(self, path: str, id: int) -> None:
        """A group (or subgroup: `parent/child`); members are added with `add_member`."""
        with self._lock:
            self._groups[path.lower()] = id

    def awards(self, note_id: int) -> list[Json]:
        with self._lock:
            return [dict(a) for a in self._awards.get(note_id, [])]

    def fail_next(
        self,
        status: int,
        n: int = 1,
        headers: dict[str, str] | None = None,
        body: Json | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next `n` matching requests with `status` (e.g. 502, 429 + Retry-After)."""
        with self._lock:
            for _ in range(n):
                self._failures.append(_Failure(status, dict(headers or {}), body, method, path))

    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        """Recorded requests, filtered by method and a regular expression on the path."""
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method)
                and (path is None or re.search(path, r.path))
            ]

    def notes(self, path: str, iid: int) -> list[Json]:
        with self._lock:
            pid = self._project_named(path).id
            return [
                self._public(n)
                for n in self._notes.values()
                if n["_project"] == pid and n["noteable_iid"] == iid
            ]

    def statuses(self, path: str, sha: str) -> list[Json]:
        """Every commit status on `sha`, oldest first."""
        with self._lock:
            pid = self._project_named(path).id
            return [
                self._public(s) for s in self._statuses if s["_project"] == pid and s["sha"] == sha
            ]

    def add_pipeline(
        self, path: str, sha: str, status: str = "running", jobs: dict[str, str] | None = None
    ) -> int:
        """A CI pipeline on `sha` with its jobs (name -> status); a later one is newer."""
        with self._lock:
            project = self._project_named(path)
            pid = next(self._ids)
            self._pipelines[pid] = {
                "id": pid,
                "iid": len(self._pipelines) + 1,
                "project_id": project.id,
                "sha": sha,
                "ref": "feature",
                "status": status,
                "source": "merge_request_event",
                "created_at": _now(),
                "updated_at": _now(),
                "web_url": f"https://gitlab.example.com/{project.path}/-/pipelines/{pid}",
                "_project": project.id,
                "_jobs": [],
            }
            self.set_pipeline(pid, status, jobs or {})
            return pid

    def set_pipeline(self, pipeline_id: int, status: str, jobs: dict[str, str]) -> None:
        """The pipeline's status and its jobs' (name -> status), replacing those before."""
        with self._lock:
            pipeline = self._pipelines[pipeline_id]
            pipeline.update(status=status, updated_at=_now())
            path = self._projects[pipeline["_project"]].path
            pipeline["_jobs"] = [
                {
                    "id": next(self._ids),
                    "status": job_status,
                    "stage": "build",
                    "name": name,
                    "ref": pipeline["ref"],
                    "tag": False,
                    "allow_failure": False,
                    "created_at": _now(),
                    "web_url": f"https://gitlab.example.com/{path}/-/jobs/{pipeline_id}",
                    "pipeline": {
                        k: pipeline[k] for k in ("id", "project_id", "ref", "sha", "status")
                    },
                }
                for name, job_status in jobs.items()
            ]

    def environments(self, path: str) -> list[Json]:
        with self._lock:
            pid = self._project_named(path).id
            return [self._public(e) for e in self._environments.values() if e["_project"] == pid]

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
        auth_ok = secrets.compare_digest(http.headers.get("PRIVATE-TOKEN", ""), self.token)
        with self._lock:
            response = self._dispatch(http.command, split.path, query, body, auth_ok)
            self.requests.append(
                Recorded(http.command, split.path, query, body, auth_ok, response.status)
            )
        payload = b"" if response.body is None else json.dumps(response.body).encode()
        http.send_response(response.status)
        headers = {
            "Content-Type": "application/json",
            "Content-Length": str(len(payload)),
            "X-Request-Id": secrets.token_hex(8),
            **response.headers,
        }
        for name, value in headers.items():
            http.send_header(name, value)
        http.end_headers()
        http.wfile.write(payload)

    def _dispatch(
        self, method: str, path: str, query: dict[str, str], body: Any, auth_ok: bool
    ) -> _Response:
        try:
            self._maybe_fail(method, path)
            if not auth_ok:
                raise _Error(401)
            return self._route(method, path, query, body or {})
        except _Error as err:
            return _Response(err.status, err.body, err.headers)

    def _maybe_fail(self, method: str, path: str) -> None:
        for failure in self._failures:
            if (failure.method is None or failure.method == method) and (
                failure.path is None or re.search(failure.path, path)
            ):
                self._failures.remove(failure)
                err = _Error(failure.status, None, failure.headers)
                if failure.body is not None:
                    err.body = failure.body
                raise err

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> _Response:
        if path == "/api/v4/user" and method == "GET":
            return _Response(200, self._user())
        if path == "/api/v4/users" and method == "GET":
            return self._list_users(query)
        if m := re.fullmatch(r"/api/v4/groups/([^/]+)/members/all/(\d+)", path):
            if method != "GET":
                raise _Error(405)
            return self._group_member_all(unquote(m[1]), int(m[2]))
        m = re.fullmatch(r"/api/v4/projects/([^/]+)(/.*)?", path)
        if m is None:
            raise _Error(404)
        project = self._resolve(unquote(m[1]))
        rest = m[2] or ""
        for pattern, verb, handler in ROUTES:
            match = re.fullmatch(pattern, rest)
            if match and verb == method:
                return handler(self, _Request(method, path, query, body, match, project))
        raise _Error(404)

    def _resolve(self, ident: str) -> _Project:
        if ident.isdigit() and int(ident) in self._projects:
            return self._projects[int(ident)]
        for project in self._projects.values():
            if project.path.lower() == ident.lower():
                return project
        raise _Error(404, "404 Project Not Found")

    def _project_named(self, path: str) -> _Project:
        for project in self._projects.values():
            if project.path.lower() == path.lower():
                return project
        raise KeyError(path)

    def _paginate(self, request: _Request, items: list[Json]) -> _Response:
        per_page = min(int(request.query.get("per_page", 20)), 100)
        page = int(request.query.get("page", 1))
        last = max(1, -(-len(items) // per_page))
        headers = {
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Total": str(len(items)),
            "X-Total-Pages": str(last),
            "X-Next-Page": str(page + 1) if page < last else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
        }
        links = []
        for rel, number in (("prev", page - 1), ("next", page + 1), ("first", 1), ("last", last)):
            if 1 <= number <= last and (rel in ("first", "last") or number != page):
                query = urlencode({**request.query, "per_page": per_page, "page": number})
                links.append(f'<{self.url}{request.path}?{query}>; rel="{rel}"')
        headers["Link"] = ", ".join(links)
        chunk = [self._public(i) for i in items[(page - 1) * per_page : page * per_page]]
        return _Response(200, chunk, headers)

    @staticmethod
    def _public(item: Json) -> Json:
        return {k: v for k, v in item.items() if not k.startswith("_")}

    # -- object shapes -------------------------------------------------------------------

    def _user(self) -> Json:
        return {
            "id": self.user_id,
            "username": self.username,
            "name": "Staging Bot",
            "state": "active",
            "bot": True,
            "web_url": f"{self.url}/{self.username}",
        }

    def _person(self, username: str, id: int) -> Json:
        return {"id": id, "username": username, "name": username, "state": "active"}

    def _project_json(self, project: _Project) -> Json:
        return {
            "id": project.id,
            "name": project.path.rsplit("/", 1)[-1],
            "path": project.path.rsplit("/", 1)[-1],
            "path_with_namespace": project.path,
            "default_branch": "main",
            "web_url": f"{self.url}/{project.path}",
        }

    def _mr_json(self, mr: _MergeRequest) -> Json:
        project = self._projects[mr.project_id]
        web_url = f"{self.url}/{project.path}/-/merge_requests/{mr.iid}"
        return {
            "id": mr.project_id * 1000 + mr.iid,
            "iid": mr.iid,
            "project_id": mr.project_id,
            "title": ("Draft: " if mr.draft else "") + mr.title,
            "description": "",
            "state": mr.state,
            "draft": mr.draft,
            "work_in_progress": mr.draft,
            # Names, sorted (lib/api/entities/merge_request_basic.rb) unless the request
            # asks for with_labels_details, which the bot does not.
            "labels": sorted(mr.labels),
            "sha": mr.sha,
            "source_branch": mr.branch,
            "target_branch": mr.target_branch,
            "source_project_id": mr.source_project_id or mr.project_id,
            "target_project_id": mr.project_id,
            "author": self._person(mr.author, 7),
            "web_url": web_url,
            "references": {
                "short": f"!{mr.iid}",
                "relative": f"!{mr.iid}",
                "full": f"{project.path}!{mr.iid}",
            },
            "diff_refs": {"base_sha": "b" * 40, "head_sha": mr.sha, "start_sha": "b" * 40},
            "created_at": "2024-01-01T00:00:00.000Z",
            "updated_at": _now(),
        }

    def _new_note(
        self, project: _Project, iid: int, body: str, username: str, user_id: int
    ) -> Json:
        nid = next(self._ids)
        note: Json = {
            "id": nid,
            "type": None,
            "body": body,
            "author": self._person(username, user_id),
            "created_at": _now(),
            "updated_at": _now(),
            "system": False,
            "noteable_id": project.id * 1000 + iid,
            "noteable_type": "MergeRequest",
            "noteable_iid": iid,
            "project_id": project.id,
            "resolvable": False,
            "internal": False,
            "_project": project.id,
        }
        self._notes[nid] = note
        return note

    # -- handlers ------------------------------------------------------------------------

    def _mr(self, request: _Request) -> _MergeRequest:
        mr = self._mrs.get((request.project.id, int(request.match["iid"])))
        if mr is None:
            raise _Error(404, "404 Not found")
        return mr

    def _note(self, request: _Request) -> Json:
        mr = self._mr(request)
        note = self._notes.get(int(request.match["id"]))
        if note is None or note["_project"] != mr.project_id or note["noteable_iid"] != mr.iid:
            raise _Error(404, "404 Not found")
        return note

    def _member(self, project: _Project, user_id: int, inherited: bool) -> Json:
        """The user's membership: direct, or (inherited) the highest through any ancestor."""
        parts = project.path.lower().split("/")
        paths = [project.path.lower()]
        if inherited:
            paths += ["/".join(parts[:n]) for n in range(1, len(parts))]
        levels = [self._members.get(p, {}).get(user_id, 0) for p in paths]
        user = next((u for u in self._users.values() if u["id"] == user_id), None)
        if user is None or max(levels) == 0:
            raise _Error(404, "404 Not found")
        return {
            **user,
            "web_url": f"{self.url}/{user['username']}",
            "access_level": max(levels),
            "created_at": "2024-01-01T00:00:00.000Z",
            "expires_at": None,
            "membership_state": "active",
        }

    def _group_member_all(self, ident: str, user_id: int) -> _Response:
        """GET /groups/:id/members/all/:user_id: a member of the group or of a parent group
        (the highest level); 404 "Group Not Found" for an unknown group (or a username)."""
        paths = {gid: path for path, gid in self._groups.items()}
        path = paths.get(int(ident)) if ident.isdigit() else ident.lower()
        if path is None or path not in self._groups:
            raise _Error(404, "404 Group Not Found")
        parts = path.split("/")
        levels = [
            self._members.get("/".join(parts[:n]), {}).get(user_id, 0)
            for n in range(1, len(parts) + 1)
        ]
        user = next((u for u in self._users.values() if u["id"] == user_id), None)
        if user is None or max(levels) == 0:
            raise _Error(404, "404 Not found")
        return _Response(
            200,
            {
                **user,
                "web_url": f"{self.url}/{user['username']}",
                "access_level": max(levels),
                "created_at": "2024-01-01T00:00:00.000Z",
                "expires_at": None,
                "membership_state": "active",
            },
        )

    def _environment(self, request: _Request) -> Json:
        env = self._environments.get(int(request.match["id"]))
        if env is None or env["_project"] != request.project.id:
            raise _Error(404, "404 Not found")
        return env

    def _get_project(self, request: _Request) -> _Response:
        return _Response(200, self._project_json(request.project))

    def _list_mrs(self, request: _Request) -> _Response:
        """Newest first, like GitLab's default `order_by=created_at&sort=desc`."""
        state = request.query.get("state", "all")
        if state not in ("opened", "closed", "merged", "locked", "all"):
            raise _Error(400, "state does not have a valid value")
        mrs = sorted(
            (mr for (pid, _), mr in self._mrs.items() if pid == request.project.id),
            key=lambda mr: -mr.iid,
        )
        items = [self._mr_json(mr) for mr in mrs if state == "all" or mr.state == state]
        return self._paginate(request, items)

    def _get_mr(self, request: _Request) -> _Response:
        return _Response(200, self._mr_json(self._mr(request)))

    def _list_notes(self, request: _Request) -> _Response:
        mr = self._mr(request)
        notes = [
            n
            for n in self._notes.values()
            if n["_project"] == mr.project_id and n["noteable_iid"] == mr.iid
        ]
        # GitLab's default order is created_at desc.
        ascending = request.query.get("sort") == "asc"
        notes.sort(key=lambda n: int(n["id"]), reverse=not ascending)
        return self._paginate(request, notes)

    def _create_note(self, request: _Request) -> _Response:
        self._mr(request)
        text = request.body.get("body")
        if not text:
            raise _Error(400, "400 Bad request - body is missing")
        iid = int(request.match["iid"])
        note = self._new_note(request.project, iid, text, self.username, self.user_id)
        return _Response(201, self._public(note))

    def _get_note(self, request: _Request) -> _Response:
        return _Response(200, self._public(self._note(request)))

    def _update_note(self, request: _Request) -> _Response:
        note = self._note(request)
        if note["author"]["username"] != self.username:
            raise _Error(403)
        if "body" in request.body:
            note["body"] = request.body["body"]
            note["updated_at"] = _now()
        return _Response(200, self._public(note))

    def _list_users(self, query: dict[str, str]) -> _Response:
        wanted = query.get("username", "").lower()
        found = [
            {**u, "web_url": f"{self.url}/{u['username']}"}
            for u in self._users.values()
            if not wanted or u["username"].lower() == wanted
        ]
        headers = {"X-Page": "1", "X-Per-Page": "20", "X-Total": str(len(found))}
        return _Response(200, found[:20], {**headers, "X-Total-Pages": "1", "X-Next-Page": ""})

    def _get_member(self, request: _Request) -> _Response:
        return _Response(200, self._member(request.project, int(request.match["uid"]), False))

    def _get_member_all(self, request: _Request) -> _Response:
        return _Response(200, self._member(request.project, int(request.match["uid"]), True))

    def _award_note(self, request: _Request) -> _Response:
        note = self._note(request)
        name = request.body.get("name")
        if not name:
            raise _Error(400, "400 Bad request - name is missing")
        # lib/api/award_emoji.rb answers a refused award with not_found!("Award Emoji ...").
        if name not in AWARD_NAMES:
            raise _Error(404, "404 Award Emoji Name is not a valid emoji name Not Found")
        awards = self._awards.setdefault(note["id"], [])
        if any(a["name"] == name and a["user"]["id"] == self.user_id for a in awards):
            raise _Error(404, "404 Award Emoji Name has already been taken Not Found")
        award = {
            "id": next(self._ids),
            "name": name,
            "user": self._person(self.username, self.user_id),
            "created_at": _now(),
            "updated_at": _now(),
            "awardable_id": note["id"],
            "awardable_type": "Note",
        }
        awards.append(award)
        return _Response(201, award)

    def _create_status(self, request: _Request) -> _Response:
        body, sha = request.body, request.match["sha"]
        state = body.get("state")
        if state not in STATUS_STATES:
            raise _Error(400, "400 Bad request - state does not have a valid value")
        name = body.get("name") or body.get("context") or "default"
        ref = body.get("ref") or "main"
        mine = [
            s
            for s in self._statuses
            if s["_project"] == request.project.id
            and s["sha"] == sha
            and s["name"] == name
            and s["ref"] == ref
        ]
        # Like GitLab's Ci::CreateCommitStatusService: a pending or running status with the
        # same name and ref is transitioned in place (and refuses a move to the same state,
        # or back to pending); a finished one is left alone and a new status is created.
        latest = mine[-1] if mine and mine[-1]["status"] not in FINISHED else None
        if latest is not None and (
            latest["status"] == state or (latest["status"], state) == ("running", "pending")
        ):
            event = EVENTS[state]
            raise _Error(400, f"Cannot transition status via :{event} from :{latest['status']}")
        if latest is None:
            latest = {
                "id": next(self._ids),
                "sha": sha,
                "ref": ref,
                "name": name,
                "author": self._person(self.username, self.user_id),
                "created_at": _now(),
                "started_at": None,
                "finished_at": None,
                "allow_failure": False,
                "coverage": None,
                "pipeline_id": body.get("pipeline_id") or next(self._ids),
                "_project": request.project.id,
            }
            self._statuses.append(latest)
        latest.update(
            status=state,
            target_url=body.get("target_url"),
            description=body.get("description"),
        )
        if state in FINISHED:
            latest["finished_at"] = _now()
        return _Response(201, self._public(latest))

    def _list_statuses(self, request: _Request) -> _Response:
        sha = request.match["sha"]
        found = [
            s for s in self._statuses if s["_project"] == request.project.id and s["sha"] == sha
        ]
        return self._paginate(request, found)

    def _list_environments(self, request: _Request) -> _Response:
        name, search = request.query.get("name"), request.query.get("search")
        if name and search:
            raise _Error(400, "400 Bad request - search and name are mutually exclusive")
        found = [
            e
            for e in self._environments.values()
            if e["_project"] == request.project.id
            and (name is None or e["name"] == name)
            and (search is None or search in e["name"])
            and request.query.get("states", e["state"]) == e["state"]
        ]
        return self._paginate(request, found)

    def _create_environment(self, request: _Request) -> _Response:
        name = request.body.get("name")
        if not name:
            raise _Error(400, "400 Bad request - name is missing")
        taken = any(
            e["_project"] == request.project.id and e["name"] == name
            for e in self._environments.values()
        )
        if taken:
            raise _Error(400, {"name": ["has already been taken"]})
        eid = next(self._ids)
        env: Json = {
            "id": eid,
            "name": name,
            "slug": re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:17] + "-abc123",
            "external_url": request.body.get("external_url"),
            "state": "available",
            "tier": request.body.get("tier") or "development",
            "created_at": _now(),
            "updated_at": _now(),
            "_project": request.project.id,
        }
        self._environments[eid] = env
        return _Response(201, self._public(env))

    def _get_environment(self, request: _Request) -> _Response:
        return _Response(200, self._public(self._environment(request)))

    def _update_environment(self, request: _Request) -> _Response:
        env = self._environment(request)
        for key in ("external_url", "tier"):
            if key in request.body:
                env[key] = request.body[key]
        env["updated_at"] = _now()
        return _Response(200, self._public(env))

    def _stop_environment(self, request: _Request) -> _Response:
        env = self._environment(request)
        env["state"] = "stopped"
        return _Response(200, self._public(env))

    def _delete_environment(self, request: _Request) -> _Response:
        env = self._environment(request)
        if env["state"] == "available":
            raise _Error(403, "403 Forbidden - Environment must be stopped before deletion")
        del self._environments[env["id"]]
        return _Response(204, None)

    def _list_pipelines(self, request: _Request) -> _Response:
        """https://docs.gitlab.com/api/pipelines/#list-project-pipelines (id, newest first)."""
        query = request.query
        found = [
            {k: v for k, v in p.items() if k != "_jobs"}
            for p in self._pipelines.values()
            if p["_project"] == request.project.id
            and query.get("sha", p["sha"]) == p["sha"]
            and query.get("status", p["status"]) == p["status"]
        ]
        if query.get("order_by", "id") != "id":
            raise _Error(400, "order_by does not have a valid value")
        found.sort(key=lambda p: int(p["id"]), reverse=query.get("sort", "desc") == "desc")
        return self._paginate(request, found)

    def _list_pipeline_jobs(self, request: _Request) -> _Response:
        """https://docs.gitlab.com/api/jobs/#list-pipeline-jobs"""
        pipeline = self._pipelines.get(int(request.match["id"]))
        if pipeline is None or pipeline["_project"] != request.project.id:
            raise _Error(404, "404 Not found")
        return self._paginate(request, [dict(job) for job in pipeline["_jobs"]])


SHA = r"(?P<sha>[0-9a-fA-F]{7,64})"

ROUTES: list[tuple[str, str, Handler]] = [
    (r"", "GET", FakeGitLab._get_project),
    (r"/merge_requests", "GET", FakeGitLab._list_mrs),
    (r"/merge_requests/(?P<iid>\d+)", "GET", FakeGitLab._get_mr),
    (r"/merge_requests/(?P<iid>\d+)/notes", "GET", FakeGitLab._list_notes),
    (r"/merge_requests/(?P<iid>\d+)/notes", "POST", FakeGitLab._create_note),
    (r"/merge_requests/(?P<iid>\d+)/notes/(?P<id>\d+)", "GET", FakeGitLab._get_note),
    (r"/merge_requests/(?P<iid>\d+)/notes/(?P<id>\d+)", "PUT", FakeGitLab._update_note),
    (
        r"/merge_requests/(?P<iid>\d+)/notes/(?P<id>\d+)/award_emoji",
        "POST",
        FakeGitLab._award_note,
    ),
    (r"/members/(?P<uid>\d+)", "GET", FakeGitLab._get_member),
    (r"/members/all/(?P<uid>\d+)", "GET", FakeGitLab._get_member_all),
    (rf"/statuses/{SHA}", "POST", FakeGitLab._create_status),
    (rf"/repository/commits/{SHA}/statuses", "GET", FakeGitLab._list_statuses),
    (r"/pipelines", "GET", FakeGitLab._list_pipelines),
    (r"/pipelines/(?P<id>\d+)/jobs", "GET", FakeGitLab._list_pipeline_jobs),
    (r"/environments", "GET", FakeGitLab._list_environments),
    (r"/environments", "POST", FakeGitLab._create_environment),
    (r"/environments/(?P<id>\d+)", "GET", FakeGitLab._get_environment),
    (r"/environments/(?P<id>\d+)", "PUT", FakeGitLab._update_environment),
    (r"/environments/(?P<id>\d+)", "DELETE", FakeGitLab._delete_environment),
    (r"/environments/(?P<id>\d+)/stop", "POST", FakeGitLab._stop_environment),
]
