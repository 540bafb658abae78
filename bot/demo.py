"""`stagingbot demo-event`: send a signed, real-shaped webhook to a running bot.

For the local trial (offline mode). The payload is one of the Git host's own examples
(`bot/demo_webhooks/`, see SOURCES.md there) with the request number, head commit, branch,
title and repository changed in a copy, authenticated exactly as that host does it, and
posted to the bot's webhook for that host:

- GitHub: a `pull_request` event, signed with `X-Hub-Signature-256`, to `/webhooks/github`;
- GitLab: a `Merge Request Hook` (open, update with new commits, close) or a `Note Hook`
  (a comment on the merge request, e.g. `/staging status`), with the secret in
  `X-Gitlab-Token` and fresh `X-Gitlab-Event-UUID` and `Idempotency-Key`, to
  `/webhooks/gitlab`.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
import secrets
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

import httpx

from bot import _configparse
from bot.config import Config, uses_github

ACTIONS = ("opened", "synchronize", "closed", "comment")
HOSTS = ("github", "gitlab")
FIXTURES = Path(__file__).with_name("demo_webhooks")
# The example payload of each action, per host (SOURCES.md says where each comes from).
# On GitLab, new commits on a merge request arrive as an `update` that has `oldrev`.
FILES = {
    "github": {
        "opened": "pull_request.opened.json",
        "synchronize": "pull_request.synchronize.json",
        "closed": "pull_request.closed.json",
    },
    "gitlab": {
        "opened": "merge_request.open.json",
        "synchronize": "merge_request.update.with-oldrev.captured-woodpecker.json",
        "closed": "merge_request.close.captured-woodpecker.json",
        "comment": "note.merge_request.json",
    },
}
FIXTURE_REPO, FIXTURE_REPO_ID = "Codertocat/Hello-World", 186853002
# The project of GitLab's own docs example of a merge request event (merge_request.open.json).
FIXTURE_PROJECT, FIXTURE_PROJECT_ID = "gitlabhq/gitlab-test", 1
FIXTURE_REPOS = {
    "github": (FIXTURE_REPO, FIXTURE_REPO_ID),
    "gitlab": (FIXTURE_PROJECT, FIXTURE_PROJECT_ID),
}
GITLAB = "https://gitlab.com"
SHA = re.compile(r"[0-9a-f]{40}")
TIMEOUT = 10.0
ONLINE_NOTE = (
    "note: this bot is not in offline mode; it will ask the Git host about the request "
    "rather than trust this made-up delivery."
)
UNSIGNABLE = (
    "stagingbot: the configuration has no {host}.webhook_secret, so the bot refuses every "
    "{name} delivery; set one (a trial written by ./scripts/demo has both hosts' secrets)"
)


@dataclass(frozen=True)
class Demo:
    """What one demo delivery says."""

    action: str
    number: int
    repo: str = FIXTURE_REPO
    sha: str = ""  # "": a fresh random commit, so every push is a new head
    branch: str = ""  # "": feature/demo-<number>
    host: str = "github"
    body: str = ""  # the comment's text (action "comment")

    @property
    def ref(self) -> str:
        """The request as the CLI and the dashboard name it: github:o/r#7, gitlab:g/p!7."""
        mark = "!" if self.host == "gitlab" else "#"
        return f"{self.host}:{self.repo}{mark}{self.number}"


def repo_id(name: str, host: str = "github") -> int:
    """The fixture's id for its own repository; any other gets a stable id of its own."""
    fixture, fixture_id = FIXTURE_REPOS[host]
    if name.lower() == fixture.lower():
        return fixture_id
    return zlib.crc32(name.lower().encode()) or 1


def repo_problem(host: str, repo: str) -> str:
    """Why `repo` cannot name a repository on `host` ("" when it can)."""
    try:
        _configparse.check_repo_path(host, repo)
    except _configparse.Invalid as exc:
        return str(exc)
    return ""


def fixture(host: str, action: str) -> dict[str, Any]:
    if action not in FILES[host]:
        raise ValueError(f"no {host} example payload for {action!r}")
    return dict(json.loads((FIXTURES / FILES[host][action]).read_text()))


def payload(demo: Demo) -> dict[str, Any]:
    """The host's example payload for the action, moved to the demo's request and commit."""
    if demo.host == "gitlab":
        return gitlab_payload(demo)
    return github_payload(demo)


def github_payload(demo: Demo) -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(fixture("github", demo.action))
    sha = demo.sha or secrets.token_hex(20)
    branch = demo.branch or f"feature/demo-{demo.number}"
    pr = data["pull_request"]
    owner, name = demo.repo.split("/", 1)
    repository = {**data["repository"], "id": repo_id(demo.repo), "name": name}
    repository.update(full_name=demo.repo, html_url=f"https://github.com/{demo.repo}")
    repository["owner"] = {**repository["owner"], "login": owner}
    data["repository"] = repository
    data["number"] = demo.number
    pr.update(
        number=demo.number,
        title=f"Demo pull request #{demo.number}",
        html_url=f"https://github.com/{demo.repo}/pull/{demo.number}",
        url=f"https://api.github.com/repos/{demo.repo}/pulls/{demo.number}",
    )
    pr["head"] = {**pr["head"], "sha": sha, "ref": branch, "label": f"{owner}:{branch}"}
    pr["head"]["repo"] = repository  # the same repository: not a fork
    pr["base"] = {**pr["base"], "repo": repository}
    if demo.action == "synchronize":
        data["after"] = sha
    return data


def gitlab_payload(demo: Demo) -> dict[str, Any]:
    """GitLab's example for the action: a merge request event, or for `comment` a note on
    the merge request. Source and target are the same project (not a fork)."""
    data: dict[str, Any] = copy.deepcopy(fixture("gitlab", demo.action))
    sha = demo.sha or secrets.token_hex(20)
    project_id = repo_id(demo.repo, "gitlab")
    web = f"{GITLAB}/{demo.repo}"
    data["project"] = moved_project(data["project"], demo.repo, project_id)
    repository = data.get("repository")
    if isinstance(repository, dict):
        name = demo.repo.rsplit("/", 1)[1]
        http = f"{web}.git"
        url = f"git@gitlab.com:{demo.repo}.git" if _ssh(repository.get("url")) else http
        data["repository"] = {**repository, "name": name, "url": url, "homepage": web}
    url = f"{web}/-/merge_requests/{demo.number}"
    request_id = zlib.crc32(demo.ref.encode()) or 1  # the merge request's global id
    if demo.action == "comment":
        request = data["merge_request"]
        note = data["object_attributes"]
        note_id = secrets.randbelow(2**31 - 1) + 1  # a new comment each time
        note.update(id=note_id, note=demo.body, noteable_id=request_id, url=f"{url}#note_{note_id}")
        if "project_id" in note:
            note["project_id"] = project_id
        if "project_id" in data:
            data["project_id"] = project_id
    else:
        request = data["object_attributes"]
        request["url"] = url
    request.update(
        id=request_id,
        iid=demo.number,
        title=f"Demo merge request !{demo.number}",
        source_branch=demo.branch or f"feature/demo-{demo.number}",
        source_project_id=project_id,
        target_project_id=project_id,
    )
    for side in ("source", "target"):
        if isinstance(request.get(side), dict):
            request[side] = moved_project(request[side], demo.repo, project_id)
    request["last_commit"] = {**request["last_commit"], "id": sha, "url": f"{web}/-/commit/{sha}"}
    return data


def moved_project(project: dict[str, Any], path: str, project_id: int) -> dict[str, Any]:
    """A GitLab project object moved to `path`: only the keys it already has change."""
    web = f"{GITLAB}/{path}"
    ssh, http = f"git@gitlab.com:{path}.git", f"{web}.git"
    namespace, name = path.rsplit("/", 1)
    moved = {
        "id": project_id,
        "name": name,
        "namespace": namespace,
        "path_with_namespace": path,
        "web_url": web,
        "homepage": web,
        "git_ssh_url": ssh,
        "ssh_url": ssh,
        "git_http_url": http,
        "http_url": http,
        "url": ssh if _ssh(project.get("url")) else http,
    }
    changed = {key: value for key, value in moved.items() if key in project}
    return {**project, **changed}


def _ssh(url: object) -> bool:
    return isinstance(url, str) and url.startswith("git@")


def signed_headers(body: bytes, secret: str) -> dict[str, str]:
    """Signed as GitHub signs: HMAC-SHA256 of the body, keyed with the webhook secret."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/stagingbot-demo",
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={digest}",
    }


def gitlab_headers(hook: str, secret: str) -> dict[str, str]:
    """As GitLab sends them: the secret itself in X-Gitlab-Token (not an HMAC), the hook's
    name, and a fresh event id and idempotency key (a retry would keep them)."""
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitLab/stagingbot-demo",
        "X-Gitlab-Event": hook,
        "X-Gitlab-Token": secret,
        "X-Gitlab-Instance": GITLAB,
        "X-Gitlab-Webhook-UUID": str(uuid.uuid5(uuid.NAMESPACE_URL, "stagingbot-demo")),
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
        "Idempotency-Key": str(uuid.uuid4()),
    }


def gitlab_hook(action: str) -> str:
    return "Note Hook" if action == "comment" else "Merge Request Hook"


def base_url(config: Config) -> str:
    host = config.server.host
    host = "127.0.0.1" if host in ("", "0.0.0.0") else "[::1]" if host == "::" else host  # noqa: S104
    return f"http://{host}:{config.server.port}"


def default_host(config: Config) -> str:
    """GitHub, unless the bot serves GitLab projects only."""
    return "github" if uses_github(config) else "gitlab"


def default_repo(config: Config, host: str = "github") -> str:
    """The first repository served on `host`: the bot ignores deliveries for any other."""
    served = [entry.repo for entry in config.repos if entry.host == host and entry.enabled]
    return served[0] if served else FIXTURE_REPOS[host][0]


def default_comment(config: Config) -> str:
    """A command anyone may run, answered even in offline mode (where nobody may write)."""
    return f"{config.commands.prefix} status"


def described(demo: Demo, data: dict[str, Any]) -> str:
    """What was sent, in the host's words: pull_request.opened for o/r#7 at abc1234."""
    if demo.host == "github":
        sha = data["pull_request"]["head"]["sha"]
        return f"pull_request.{demo.action} for {demo.repo}#{demo.number} at {sha[:7]}"
    if demo.action == "comment":
        return f"Note Hook for {demo.repo}!{demo.number}: {demo.body!r}"
    action = data["object_attributes"]["action"]
    sha = data["object_attributes"]["last_commit"]["id"]
    return f"Merge Request Hook ({action}) for {demo.repo}!{demo.number} at {sha[:7]}"


def send(config: Config, demo: Demo, url: str, out: TextIO, err: TextIO) -> int:
    """Post the delivery; 0 when the bot took it up, 1 otherwise (and why, on `err`)."""
    if demo.sha and not SHA.fullmatch(demo.sha):
        print("stagingbot: --sha must be 40 lower-case hex characters", file=err)
        return 2
    gitlab = demo.host == "gitlab"
    secret = (config.gitlab if gitlab else config.github).webhook_secret.reveal()
    if not secret:
        name = "GitLab" if gitlab else "GitHub"
        print(UNSIGNABLE.format(host=demo.host, name=name), file=err)
        return 2
    if not config.offline:
        print(ONLINE_NOTE, file=err)
    data = payload(demo)
    body = json.dumps(data).encode()
    if gitlab:
        headers = gitlab_headers(gitlab_hook(demo.action), secret)
    else:
        headers = signed_headers(body, secret)
    target = url.rstrip("/") + f"/webhooks/{demo.host}"
    try:
        response = httpx.post(target, content=body, headers=headers, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        print(f"stagingbot: cannot reach the bot at {target}: {exc}", file=err)
        print("is it running? (./scripts/demo, or `stagingbot run --config ...`)", file=err)
        return 1
    what = described(demo, data)
    answer = f"{response.status_code} {response.text.strip()}"
    if response.status_code >= 300:
        print(f"stagingbot: the bot refused {what}: {answer}", file=err)
        return 1
    if ignored(response):
        print(f"stagingbot: the bot ignored {what}: {answer}", file=err)
        return 1
    print(f"sent {what}: {answer}", file=out)
    page = quote(demo.ref, safe="")
    print(f"follow it on {url.rstrip('/')}/stagings/{page}", file=out)
    return 0


def ignored(response: httpx.Response) -> bool:
    """The bot answered 2xx but has nothing to do with the delivery (a repository it does
    not serve, a comment holding no command): it says so under "ignored"."""
    try:
        answer = response.json()
    except ValueError:
        return False
    return isinstance(answer, dict) and "ignored" in answer
