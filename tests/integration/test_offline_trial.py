"""The local trial end to end: offline mode, the `command` provisioner with examples/local/,
and `stagingbot demo-event` deliveries (GitHub's and GitLab's) to the real web app and worker.

No Git host exists here at all (offline mode calls none), and each staging is a real local
web app with its own SQLite file, reached at the link its `info` step printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from bot import trial
from bot.cli import main
from bot.cli_remote import Terminal
from bot.config import Config, RedisConfig, SweepConfig, load_config
from tests.conftest import ROOT, free_port
from tests.integration.test_dashboard import sign_in
from tests.integration.test_end_to_end import eventually, running_bot

TOKEN = "trial-operator-token-0123456789"
SHA1 = "1111111111111111111111111111111111111111"
SHA2 = "2222222222222222222222222222222222222222"
REF = f"github:{trial.TRIAL_REPO}#5"
API = "/api/stagings/" + quote(REF, safe="")
FOLDER = "hello-world-pr-5-0085"
GITLAB_REF = f"gitlab:{trial.TRIAL_PROJECT}!5"
GITLAB_API = "/api/stagings/" + quote(GITLAB_REF, safe="")


def trial_config(tmp_path: Path, redis_url: str) -> tuple[Config, str]:
    settings = trial.trial_settings(
        ROOT,
        free_port(),
        redis_url,
        TOKEN,
        secret="whsec-trial",
        key="trial-key",
        gitlab_secret="glsec-trial",
    )
    path = tmp_path / "config.toml"
    trial.write(path, trial.to_toml(settings))
    config = load_config(str(path), {})
    # One test's Redis, and no cron sweep in the middle of it.
    redis = RedisConfig(url=redis_url, key_prefix="stagingbot-test")
    kubernetes = replace(config.kubernetes, rollout_poll=0.1)  # `check` sooner than 1 s
    config = replace(config, redis=redis, sweep=SweepConfig(interval=0), kubernetes=kubernetes)
    return config, str(path)


async def demo_event(path: str, action: str, *extra: str) -> str:
    """`stagingbot demo-event ...` as a person types it (it blocks: run it off the loop)."""
    code, out, err = await demo_event_exit(path, action, *extra)
    assert code == 0, err
    return out


async def demo_event_exit(path: str, action: str, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    terminal = Terminal(out, err, lambda: 0.0, lambda: 0.0, lambda _: None, False)
    argv = ["demo-event", action, "--pr", "5", "--config", path, *extra]
    code = await asyncio.to_thread(main, argv, terminal=terminal)
    return code, out.getvalue(), err.getvalue()


def fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - a local test app
            return str(answer.read().decode())
    except (urllib.error.URLError, OSError):
        return ""


async def staging(bot: httpx.AsyncClient, api: str = API) -> dict[str, Any]:
    response = await bot.get(api, headers={"Authorization": f"Bearer {TOKEN}"})
    return dict(response.json()) if response.status_code == 200 else {}


async def app_page(bot: httpx.AsyncClient, sha: str, api: str = API) -> tuple[str, str]:
    """The staging's app address (its `info` link) and page, once it runs `sha`."""
    for _ in range(500):
        shown = await staging(bot, api)
        links = shown.get("links") or []
        if shown.get("state") == "running" and shown.get("sha") == sha and links:
            page = await asyncio.to_thread(fetch, links[0]["url"])
            if sha in page:
                return links[0]["url"], page
        await asyncio.sleep(0.04)
    pytest.fail(f"the staging's app never ran {sha[:7]}: {await staging(bot, api)}")


async def reported(bot: httpx.AsyncClient, *texts: str, api: str = API) -> dict[str, Any]:
    """The staging once the comment it would have written says all of `texts`."""
    for _ in range(500):
        shown = await staging(bot, api)
        comment = (shown.get("offline") or {}).get("comment") or ""
        if all(text in comment for text in texts):
            return shown
        await asyncio.sleep(0.04)
    pytest.fail(f"the comment never said {texts}: {await staging(bot, api)}")


async def replied(bot: httpx.AsyncClient, text: str, api: str) -> dict[str, Any]:
    """The staging once a reply it would have written (to a command) says `text`."""
    for _ in range(500):
        shown = await staging(bot, api)
        replies = (shown.get("offline") or {}).get("replies") or []
        if any(text in reply["body"] for reply in replies):
            return shown
        await asyncio.sleep(0.04)
    pytest.fail(f"no reply ever said {text!r}: {await staging(bot, api)}")


@pytest.fixture
def stagings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Where the local apps keep their folders; any app a failed test left is stopped."""
    folder = tmp_path / "stagings"
    monkeypatch.setenv("LOCAL_STAGINGS", str(folder))  # passed to the scripts (pass_env)
    yield folder
    for pid in apps_in(folder):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def apps_in(folder: Path) -> list[int]:
    """Live processes started with a path inside `folder` (the apps' databases are there)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            alive = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
            if alive and str(folder).encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
    return found


async def test_the_local_trial_shows_a_staging_appear_update_and_disappear(
    redis_url: str, tmp_path: Path, stagings: Path
) -> None:
    config, path = trial_config(tmp_path, redis_url)
    async with running_bot(config) as bot:
        said = await demo_event(path, "opened", "--sha", SHA1)
        assert "202" in said and "/stagings/github%3ACodertocat%2FHello-World%235" in said
        url, page = await app_page(bot, SHA1)
        assert url.startswith("http://127.0.0.1:")
        assert "#5" in page and "feature/demo-5" in page and "viewed 1 times" in page
        assert (stagings / FOLDER / "app.db").exists()

        await demo_event(path, "synchronize", "--sha", SHA2)
        url, page = await app_page(bot, SHA2)
        assert SHA1 not in page and "viewed 2 times" in page  # the same database

        override = await bot.put(
            API + "/overrides/GREETING",
            json={"value": "hello from the API"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert override.status_code == 200, override.text
        for _ in range(500):
            if "hello from the API" in await asyncio.to_thread(fetch, url):
                break
            await asyncio.sleep(0.04)
        page = await asyncio.to_thread(fetch, url)
        assert "override GREETING</td><td><code>hello from the API" in page

        shown = await reported(bot, "**running**", "GREETING")
        comment = shown["offline"]["comment"]
        assert "**running**" in comment and f"[app]({url})" in comment and SHA2[:7] in comment
        assert shown["offline"]["checks"]["staging"]["state"] == "success"
        assert await sign_in(bot, TOKEN, "/")
        detail = (await bot.get("/stagings/" + quote(REF, safe=""))).text
        assert f'<a href="{url}">app</a>' in detail
        assert "offline mode: not sent" in detail and "Offline mode" in detail

        await demo_event(path, "closed")
        await eventually(lambda: not (stagings / FOLDER).exists(), "the staging's folder removed")
        gone = await reported(bot, "**gone**")
        assert gone["state"] == "gone" and gone["exists"] is False
        assert await asyncio.to_thread(fetch, url) == ""
        assert apps_in(stagings) == []


async def test_a_gitlab_merge_request_gets_a_staging_through_demo_event_too(
    redis_url: str, tmp_path: Path, stagings: Path
) -> None:
    """The trial serves a GitLab project as well: merge request events and a note with a
    command, sent as GitLab sends them (X-Gitlab-Token, Idempotency-Key) to /webhooks/gitlab."""
    config, path = trial_config(tmp_path, redis_url)
    async with running_bot(config) as bot:
        said = await demo_event(path, "opened", "--host", "gitlab", "--sha", SHA1)
        assert f"Merge Request Hook (open) for {trial.TRIAL_PROJECT}!5 at {SHA1[:7]}" in said
        assert "202" in said and "/stagings/" + quote(GITLAB_REF, safe="") in said
        url, page = await app_page(bot, SHA1, GITLAB_API)
        assert url.startswith("http://127.0.0.1:") and "feature/demo-5" in page
        assert await staging(bot, API) == {}  # GitHub's request 5 is another staging

        await demo_event(path, "synchronize", "--host", "gitlab", "--sha", SHA2)
        url, page = await app_page(bot, SHA2, GITLAB_API)
        assert SHA1 not in page and "viewed 2 times" in page

        said = await demo_event(path, "comment", "--host", "gitlab", "--body", "/staging status")
        assert "Note Hook for" in said
        await replied(bot, SHA2[:7], GITLAB_API)  # `status` answers anyone, offline too
        shown = await reported(bot, "**running**", api=GITLAB_API)
        assert shown["offline"]["checks"]["staging"]["state"] == "success"

        other = ["--host", "gitlab", "--repo", "someone/else"]
        code, _, err = await demo_event_exit(path, "opened", *other)
        assert code == 1 and "not a repository this bot serves" in err

        await demo_event(path, "closed", "--host", "gitlab")
        gone = await reported(bot, "**gone**", api=GITLAB_API)
        assert gone["state"] == "gone" and gone["exists"] is False
        assert await asyncio.to_thread(fetch, url) == ""
        assert apps_in(stagings) == []
