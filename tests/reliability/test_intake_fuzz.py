"""Fuzzing the webhook intake: generated bodies and header sets against the real app and a real
Redis. Never a 5xx, never an exception, never a secret in an answer or a log line, and a
delivery the app refuses (or that is not authentic) changes nothing in Redis: no record,
no delivery id, no job."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config import GitHubConfig, GitLabConfig, RepoConfig, Secret, ServerConfig
from bot.logs import JsonFormatter
from bot.web import create_app
from tests.conftest import FIXTURES
from tests.helpers import REPO, make_config
from tests.reliability import secrets_for_scan as secrets
from tests.reliability.conftest import LeakScan

pytestmark = pytest.mark.reliability
EXAMPLES = 5_000  # per endpoint: 10,000 deliveries in all
MAX_BODY = 64 * 1024
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run and machine
    database=None,
    suppress_health_check=list(HealthCheck),
)
GITHUB_EVENTS = [
    "pull_request",
    "issue_comment",
    "ping",
    "push",
    "check_run",
    "check_suite",
    "installation",
    "pull_request_review",
]
GITLAB_HOOKS = ["Merge Request Hook", "Note Hook", "Push Hook", "Pipeline Hook", "System Hook"]
CONTENT_TYPES = [
    "application/json",
    "application/x-www-form-urlencoded",
    "text/plain",
    "application/json; charset=utf-8",
    "",
]


@functools.cache
def _fixtures(host: str) -> list[Any]:
    return [json.loads(path.read_text()) for path in sorted((FIXTURES / host).glob("*.json"))]


# Hypothesis draws the shape of each delivery (which body, which signature, which headers,
# which fixture, how many mutations) and a seed; the bulk content (garbage bytes and text,
# JSON values, where a mutation lands) comes from `random.Random(seed)`. Drawing every byte
# through Hypothesis costs ~3 ms an example, ten times what the request costs; this way a
# failing example is still reproduced exactly (derandomized, the seed is in the report) and
# shrunk over its shape.
SEEDS = st.integers(0, 2**32 - 1)
BODY_KINDS = ("bytes", "text", "json", "mutated", "fixture", "form", "oversize")


def garbage_text(rng: random.Random, longest: int) -> str:
    """Printable and non-ASCII Latin-1 (header values are octets), occasionally very long."""
    size = rng.choice([rng.randrange(longest), rng.randrange(longest), 300])
    return "".join(chr(rng.randrange(32, 256)) for _ in range(size))


def json_value(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(8 if depth < 2 else 5)
    if choice == 0:
        return None
    if choice == 1:
        return rng.random() < 0.5
    if choice == 2:
        return rng.choice([0, -1, 2**63, rng.randrange(-(10**6), 10**6)])
    if choice == 3:
        return rng.uniform(-1e9, 1e9)
    if choice == 4:
        return "".join(chr(rng.randrange(0, 0x2FF)) for _ in range(rng.randrange(12)))
    if choice in (5, 6):
        return [json_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {garbage_text(rng, 8): json_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def mutate(document: Any, rng: random.Random, times: int) -> Any:
    """A real payload with `times` values replaced or removed, anywhere in it."""
    document = json.loads(json.dumps(document))
    for _ in range(times):
        node: Any = document
        for _ in range(rng.randrange(7)):
            children = list(node) if isinstance(node, dict) else list(range(len(node)))
            child = node[rng.choice(children)] if children else None
            if not isinstance(child, dict | list) or not child:
                break
            node = child
        if isinstance(node, dict) and node:
            name = rng.choice(sorted(node))
            if rng.random() < 0.5:
                node[name] = json_value(rng)
            else:
                del node[name]
    return document


def make_body(kind: str, document: Any, rng: random.Random, times: int) -> tuple[bytes, str]:
    """(body, content type) of one kind."""
    if kind == "bytes":
        return rng.randbytes(rng.randrange(400)), rng.choice(CONTENT_TYPES)
    if kind == "text":
        text = "".join(chr(rng.randrange(0, 0x10FF)) for _ in range(rng.randrange(300)))
        return text.encode("utf-8", "surrogatepass"), rng.choice(CONTENT_TYPES)
    if kind == "oversize":
        return b"{" + b" " * MAX_BODY + b"}", "application/json"
    value = {
        "json": lambda: json_value(rng),
        "mutated": lambda: mutate(document, rng, times),
        "fixture": lambda: document,
        "form": lambda: mutate(document, rng, times),
    }[kind]()
    if kind == "form":
        return ("payload=" + quote(json.dumps(value))).encode(), "application/x-www-form-urlencoded"
    return json.dumps(value).encode(), "application/json"


def header(draw: st.DrawFn, rng: random.Random, real: list[str]) -> str | None:
    """A real value, garbage, or none at all."""
    kind = draw(st.integers(0, 3))
    if kind == 3:
        return None
    return draw(st.sampled_from(real)) if kind < 2 else garbage_text(rng, 64)


@dataclass
class Intake:
    """The real app, called through httpx's ASGI transport on an event loop of its own (no
    thread hop per request, which is what keeps 10,000 deliveries within seconds)."""

    loop: asyncio.AbstractEventLoop
    client: httpx.AsyncClient
    db: redis.Redis
    logs: list[str]
    seen: int = 0

    last: list[int] | None = None  # Redis as the previous example left it

    def state(self) -> list[int]:
        pipe = self.db.pipeline(transaction=False)
        pipe.dbsize()
        pipe.zcard("stagingbot-test:queue")
        return list(pipe.execute())

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bool]:
        """Status, text, and whether Redis changed at all (nothing else writes to it)."""
        before = self.last if self.last is not None else self.state()
        raw = {name: value.encode("latin-1") for name, value in headers.items()}  # any octet
        response = self.loop.run_until_complete(self.client.post(path, content=body, headers=raw))
        self.seen += 1
        self.last = self.state()
        return response.status_code, response.text, self.last != before


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.INFO)
        self.into = into
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(self.format(record))


@pytest.fixture
def intake(redis_url: str, leaks: LeakScan) -> Iterator[Intake]:
    config = replace(
        make_config(redis_url),
        server=ServerConfig(max_body_bytes=MAX_BODY),
        github=GitHubConfig(
            webhook_secret=Secret(secrets.GITHUB_WEBHOOK_SECRET), token=Secret("ghp-fuzz-token")
        ),
        gitlab=GitLabConfig(
            token=Secret(secrets.GITLAB_TOKEN),
            webhook_secret=Secret(secrets.GITLAB_WEBHOOK_SECRET),
        ),
        repos=(
            RepoConfig(host="github", repo=REPO),
            RepoConfig(host="gitlab", repo="gitlabhq/gitlab-test"),
            RepoConfig(host="gitlab", repo="gitlab-org/gitlab-test"),
        ),
    )
    logs: list[str] = []
    handler = _Collect(logs)
    root = logging.getLogger()
    root.addHandler(handler)
    level, root.level = root.level, logging.INFO
    quiet = logging.getLogger("httpx")  # one line per request from the test's own client
    quiet_level, quiet.level = quiet.level, logging.WARNING
    db = redis.Redis.from_url(redis_url)
    app = create_app(config)
    loop = asyncio.new_event_loop()
    lifespan = app.router.lifespan_context(app)
    # raise_app_exceptions: whatever the app raises fails the example.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    try:
        loop.run_until_complete(lifespan.__aenter__())
        yield Intake(loop, client, db, logs)
    finally:
        loop.run_until_complete(client.aclose())
        loop.run_until_complete(lifespan.__aexit__(None, None, None))
        loop.close()
        root.removeHandler(handler)
        root.setLevel(level)
        quiet.setLevel(quiet_level)
        leaks.add("intake logs", "\n".join(logs))
        db.close()
    crashes = [line for line in logs if '"exc":' in line or '"level": "error"' in line]
    assert not crashes, crashes[:3]


SIGNATURES = ("valid", "valid", "other-body", "garbage", "sha1", "upper", "none")


def _signature(kind: str, body: bytes, rng: random.Random) -> str | None:
    if kind == "valid":
        return secrets.github_signature(body)
    if kind == "other-body":
        return secrets.github_signature(body + b" ")
    if kind == "garbage":
        return garbage_text(rng, 80)
    if kind == "sha1":
        return "sha1=" + secrets.github_signature(body)[7:47]
    if kind == "upper":
        return "sha256=" + secrets.github_signature(body)[7:].upper()
    return None


def _body(draw: st.DrawFn, host: str, rng: random.Random) -> tuple[bytes, str]:
    kind = draw(st.sampled_from(BODY_KINDS))
    document = draw(st.sampled_from(_fixtures(host)))
    return make_body(kind, document, rng, draw(st.integers(1, 4)))


@st.composite
def github_deliveries(draw: st.DrawFn) -> tuple[bytes, dict[str, str], bool]:
    rng = random.Random(draw(SEEDS))
    body, content_type = _body(draw, "github", rng)
    headers = {"Content-Type": content_type}
    signature = _signature(draw(st.sampled_from(SIGNATURES)), body, rng)
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    event = header(draw, rng, GITHUB_EVENTS)
    if event is not None:
        headers["X-GitHub-Event"] = event
    delivery = header(draw, rng, [str(uuid.UUID(int=rng.getrandbits(128)))])
    if delivery is not None:
        headers["X-GitHub-Delivery"] = delivery
    return body, headers, signature == secrets.github_signature(body)


GITLAB_TOKENS = [
    secrets.GITLAB_WEBHOOK_SECRET,
    secrets.GITLAB_WEBHOOK_SECRET.upper(),
    secrets.GITLAB_WEBHOOK_SECRET + " ",
    secrets.GITLAB_WEBHOOK_SECRET[:-1],
    "",
]


@st.composite
def gitlab_deliveries(draw: st.DrawFn) -> tuple[bytes, dict[str, str], bool]:
    rng = random.Random(draw(SEEDS))
    body, content_type = _body(draw, "gitlab", rng)
    headers = {"Content-Type": content_type}
    token = header(draw, rng, [secrets.GITLAB_WEBHOOK_SECRET] * 4 + GITLAB_TOKENS)
    if token is not None:
        headers["X-Gitlab-Token"] = token
    hook = header(draw, rng, GITLAB_HOOKS)
    if hook is not None:
        headers["X-Gitlab-Event"] = hook
    for name in ("Idempotency-Key", "X-Gitlab-Event-UUID"):
        value = header(draw, rng, [str(uuid.UUID(int=rng.getrandbits(128)))])
        if value is not None:
            headers[name] = value
    return body, headers, token == secrets.GITLAB_WEBHOOK_SECRET


def check(intake: Intake, path: str, body: bytes, headers: dict[str, str], authentic: bool) -> None:
    status, text, changed = intake.post(path, body, headers)
    assert status < 500, (status, text)
    if not authentic:  # refused: for its signature or token, or first for its size
        assert status == (413 if len(body) > MAX_BODY else 401), (status, text)
    if status >= 400:
        assert not changed, f"a refused delivery ({status}) changed Redis"
    for label, value in secrets.FIXED.items():
        assert value not in text, f"{label} in an answer"


def test_github_intake_survives_generated_deliveries(intake: Intake) -> None:
    @FUZZ
    @given(github_deliveries())
    def deliver(case: tuple[bytes, dict[str, str], bool]) -> None:
        check(intake, "/webhooks/github", *case)

    deliver()
    assert intake.seen >= EXAMPLES


def test_gitlab_intake_survives_generated_deliveries(intake: Intake) -> None:
    @FUZZ
    @given(gitlab_deliveries())
    def deliver(case: tuple[bytes, dict[str, str], bool]) -> None:
        check(intake, "/webhooks/gitlab", *case)

    deliver()
    assert intake.seen >= EXAMPLES
