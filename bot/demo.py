"""`stagingbot demo-event`: send a signed, real-shaped `pull_request` webhook to a running bot.

For the local trial (offline mode): the payload is one of GitHub's own examples
(`bot/demo_webhooks/`, see SOURCES.md there) with the request number, head commit, branch,
title and repository changed, signed with the configured webhook secret exactly as GitHub
signs, and posted to `/webhooks/github`.
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

from bot.config import Config

ACTIONS = ("opened", "synchronize", "closed")
FIXTURES = Path(__file__).with_name("demo_webhooks")
FIXTURE_REPO, FIXTURE_REPO_ID = "Codertocat/Hello-World", 186853002
SHA = re.compile(r"[0-9a-f]{40}")
TIMEOUT = 10.0
ONLINE_NOTE = (
    "note: this bot is not in offline mode; it will ask the Git host about the request "
    "rather than trust this made-up delivery."
)


@dataclass(frozen=True)
class Demo:
    """What one demo delivery says."""

    action: str
    number: int
    repo: str = FIXTURE_REPO
    sha: str = ""  # "": a fresh random commit, so every push is a new head
    branch: str = ""  # "": feature/demo-<number>


def repo_id(name: str) -> int:
    """The fixture's id for its own repository; any other gets a stable id of its own."""
    if name.lower() == FIXTURE_REPO.lower():
        return FIXTURE_REPO_ID
    return zlib.crc32(name.lower().encode()) or 1


def payload(demo: Demo) -> dict[str, Any]:
    """GitHub's example payload for the action, moved to the demo's request and commit."""
    data: dict[str, Any] = copy.deepcopy(
        json.loads((FIXTURES / f"pull_request.{demo.action}.json").read_text())
    )
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


def signed_headers(body: bytes, secret: str) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/stagingbot-demo",
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={digest}",
    }


def base_url(config: Config) -> str:
    host = config.server.host
    host = "127.0.0.1" if host in ("", "0.0.0.0") else "[::1]" if host == "::" else host  # noqa: S104
    return f"http://{host}:{config.server.port}"


def default_repo(config: Config) -> str:
    """The first served GitHub repository: the bot ignores deliveries for any other."""
    served = [entry.repo for entry in config.repos if entry.host == "github" and entry.enabled]
    return served[0] if served else FIXTURE_REPO


def send(config: Config, demo: Demo, url: str, out: TextIO, err: TextIO) -> int:
    """Post the delivery; 0 when the bot accepted it, 1 otherwise (and why, on `err`)."""
    if demo.sha and not SHA.fullmatch(demo.sha):
        print("stagingbot: --sha must be 40 lower-case hex characters", file=err)
        return 2
    if not config.offline:
        print(ONLINE_NOTE, file=err)
    data = payload(demo)
    body = json.dumps(data).encode()
    headers = signed_headers(body, config.github.webhook_secret.reveal())
    target = url.rstrip("/") + "/webhooks/github"
    try:
        response = httpx.post(target, content=body, headers=headers, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        print(f"stagingbot: cannot reach the bot at {target}: {exc}", file=err)
        print("is it running? (./scripts/demo, or `stagingbot run --config ...`)", file=err)
        return 1
    sha = data["pull_request"]["head"]["sha"]
    what = f"pull_request.{demo.action} for {demo.repo}#{demo.number} at {sha[:7]}"
    if response.status_code >= 300:
        answer = f"{response.status_code} {response.text.strip()}"
        print(f"stagingbot: the bot refused {what}: {answer}", file=err)
        return 1
    print(f"sent {what}: {response.status_code} {response.text.strip()}", file=out)
    page = quote(f"github:{demo.repo}#{demo.number}", safe="")
    print(f"follow it on {url.rstrip('/')}/stagings/{page}", file=out)
    return 0
