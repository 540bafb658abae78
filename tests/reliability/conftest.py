"""Fixtures of the reliability suite: the fakes, and the secret-leak scan every scenario feeds.

Each scenario hands what it produced to `leaks` (logs, what the fake GitHub received, API
answers, dashboard pages, a dump of Redis); after the test the scan looks for every secret
of `secrets_for_scan` (and the fake App's private key and the installation tokens it
issued) and fails the test if one is found. The session-wide tally fails the run too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx
import pytest
from redis.asyncio import Redis

from tests.fakes.github import FakeGitHub, iter_tokens
from tests.fakes.kube import FakeKube
from tests.helpers import REPO, REPO_ID
from tests.reliability import secrets_for_scan as secrets
from tests.reliability.harness import Bot

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class LeakScan:
    """Texts a scenario produced, and the secrets none of them may hold."""

    secrets: dict[str, str] = field(default_factory=lambda: dict(secrets.FIXED))
    texts: list[tuple[str, str]] = field(default_factory=list)

    def secret(self, label: str, value: str) -> None:
        if len(value) >= 8:
            self.secrets[label] = value

    def add(self, where: str, text: str | bytes) -> None:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        self.texts.append((where, text))

    def findings(self) -> list[str]:
        return [
            f"{label} found in {where}"
            for where, text in self.texts
            for label, value in self.secrets.items()
            if value in text
        ]

    @property
    def scanned(self) -> int:
        return sum(len(text) for _, text in self.texts)

    def add_github(self, github: FakeGitHub) -> None:
        """What the bot wrote to GitHub (comments, check runs, deployments), and the App's
        key and the tokens GitHub issued as secrets to look for."""
        for number, line in enumerate(secrets.key_lines(github.private_key_pem)):
            self.secret(f"GitHub App private key (line {number + 2})", line)
        for token in iter_tokens(github):
            self.secret("GitHub installation/personal token", token)
        for call in github.calls():
            self.add(f"GitHub request {call.method} {call.path}", repr(call.body))
            self.add(f"GitHub request {call.method} {call.path} (query)", repr(call.query))

    async def add_redis(self, redis: Redis) -> None:
        """Every key and value in Redis: records, history, queued commands, arq's jobs."""
        async for raw in redis.scan_iter(count=1000):
            key = raw.decode("utf-8", "replace")
            kind = (await redis.type(raw)).decode()
            value: object
            if kind == "string":
                value = await redis.get(raw)
            elif kind == "hash":
                value = await redis.hgetall(raw)
            elif kind == "list":
                value = await redis.lrange(raw, 0, -1)
            elif kind == "set":
                value = await redis.smembers(raw)
            elif kind == "zset":
                value = await redis.zrange(raw, 0, -1, withscores=True)
            else:
                value = kind
            self.add(f"Redis {key}", f"{key} {value!r}")

    async def add_bot(self, bot: Bot, github: FakeGitHub, numbers: list[int]) -> None:
        """Everything one scenario's bot produced: logs, GitHub writes, Redis, API, pages."""
        await self.add_faces(bot.url, numbers)
        self.add_github(github)
        await self.add_redis(bot.redis)
        self.add("logs of web and workers", bot.logs())

    async def add_faces(self, base_url: str, numbers: list[int]) -> None:
        """The JSON API (list, each staging, its history) and the dashboard's pages, as an
        operator sees them."""
        auth = {"Authorization": f"Bearer {secrets.API_TOKEN}"}
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
            for path in ("/api/stagings", "/metrics", "/healthz", "/readyz"):
                response = await client.get(path, headers=auth)
                self.add(f"GET {path}", response.text)
            for number in numbers:
                ref = quote(f"github:{REPO}#{number}", safe="")
                for path in (f"/api/stagings/{ref}", f"/api/stagings/{ref}/history"):
                    response = await client.get(path, headers=auth)
                    self.add(f"GET {path}", response.text)
            form = await client.get("/login")
            match = _CSRF.search(form.text)
            assert match, "no CSRF token on the login page"
            await client.post("/login", data={"token": secrets.API_TOKEN, "csrf": match[1]})
            pages = ["/", *(f"/stagings/{quote(f'github:{REPO}#{n}', safe='')}" for n in numbers)]
            for page in pages:
                response = await client.get(page)
                assert response.status_code == 200, (page, response.status_code)
                self.add(f"dashboard {page}", response.text)


@dataclass
class LeakTally:
    scenarios: int = 0
    characters: int = 0
    findings: list[str] = field(default_factory=list)


TALLY = LeakTally()


@pytest.fixture(scope="session")
def leak_tally() -> Iterator[LeakTally]:
    yield TALLY
    assert not TALLY.findings, "secrets leaked:\n" + "\n".join(TALLY.findings)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY.scenarios:
        found = len(TALLY.findings)
        terminalreporter.write_line(
            f"leak scan: {TALLY.scenarios} scenarios, {TALLY.characters:,} characters "
            f"scanned, {found} secret{'s' if found != 1 else ''} found"
        )


@pytest.fixture
def leaks(leak_tally: LeakTally) -> Iterator[LeakScan]:
    """Feed it what the scenario produced; a secret found in any of it fails the test."""
    scan = LeakScan()
    yield scan
    found = scan.findings()
    leak_tally.scenarios += 1
    leak_tally.characters += scan.scanned
    leak_tally.findings.extend(found)
    assert not found, "secrets leaked:\n" + "\n".join(sorted(set(found))[:20])


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.add_repo(REPO, REPO_ID, installation_id=1)
        yield fake


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube() as fake:
        yield fake
