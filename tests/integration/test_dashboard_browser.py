"""The dashboard in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium)
against the real app on a real port and a real Redis, seeded with a few realistic stagings.

CI installs Chromium (.ci/run); where it cannot be installed these tests skip, saying so.
`scripts/screenshots` runs the screenshot test with STAGINGBOT_SCREENSHOTS set, which
writes docs/images/dashboard-list.png and dashboard-detail.png.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import uvicorn
from redis.asyncio import Redis

from bot import sealed
from bot.config import Config
from bot.model import StagingKey
from bot.store import Store
from bot.web import create_app
from handlers import plan
from tests.conftest import free_port
from tests.integration.test_api import OPERATOR, VIEWER, api_config

CHROMIUM = os.environ.get("STAGINGBOT_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = os.environ.get("STAGINGBOT_SCREENSHOTS", "")
PREFIX = "stagingbot-browser"

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the test extras install it
    sync_playwright = None  # type: ignore[assignment]

pytestmark = [
    pytest.mark.skipif(
        sync_playwright is None, reason="playwright is not installed: pip install -e '.[test]'"
    ),
    pytest.mark.skipif(
        not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)),
        reason=f"no Chromium at {CHROMIUM}: `apt-get install chromium` (.ci/run does), "
        "or point STAGINGBOT_CHROMIUM at one",
    ),
]

DAY = 86400.0
SHOP, API, WEB = (1296269, "acme/shop"), (1300192, "acme/payments-api"), (4211, "acme/web")
SECRET_VALUE = "sk_live_51H8browser-never-rendered"


def sha(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()  # noqa: S324 - a made-up commit id


# (repo, number, phase, branch, title, author, age in seconds, extra fields)
STAGINGS: list[tuple[tuple[int, str], int, str, str, str, str, float, dict[str, str]]] = [
    (SHOP, 142, "running", "feature/checkout-v2", "New checkout flow", "maria", 300, {}),
    (SHOP, 139, "deploying", "fix/cart-rounding", "Round cart totals per line", "dev-li", 40, {}),
    (
        API,
        57,
        "failed",
        "feat/refund-webhooks",
        "Refund webhooks",
        "okafor",
        3 * 3600,
        {"reason": "image cannot be pulled: registry.example.com/payments-api:7c1d2e3"},
    ),
    (SHOP, 120, "archived", "exp/recommendations", "Recommendations A/B test", "sam", 4 * DAY, {}),
    (
        WEB,
        88,
        "awaiting approval",
        "patch-1",
        "Fix typo in footer",
        "first-timer",
        2 * 3600,
        {"fork": "1"},
    ),
    (WEB, 91, "running", "docs/pricing-page", "Pricing page copy", "maria", DAY, {}),
]
DETAIL = f"github:{SHOP[1]}#142"


async def seed(config: Config) -> None:
    """Records as the worker leaves them, with a little history each."""
    redis = Redis.from_url(config.redis.url)
    store = Store(redis, config.redis.key_prefix)
    now = time.time()
    secret_key = config.staging.secret_key.reveal()
    for (repo_id, repo), number, phase, branch, title, author, age, extra in STAGINGS:
        key = StagingKey("github", repo_id, number)
        name = f"{repo.split('/')[1]}-pr-{number}"
        commit = sha(f"{repo}#{number}")
        fields = {
            "host": "github",
            "repo_id": str(repo_id),
            "repo": repo,
            "number": str(number),
            "desired": "running",
            "desired_sha": commit,
            "sha": "" if phase == "awaiting approval" else commit,
            "phase": phase,
            "staging_url": f"https://{name}.staging.example.com/",
            "pr_url": f"https://github.com/{repo}/pull/{number}",
            "branch": branch,
            "title": title,
            "author": author,
            "event_at": f"{now - age:.3f}",
            "namespace": f"staging-{name}",
            "labels": "[]",
            **extra,
        }
        if phase == "archived":
            fields[plan.DECISION] = plan.ARCHIVE
        if number == 142:
            fields[plan.OVERRIDES] = plan.encode_overrides(
                {"FEATURE_CHECKOUT_V2": "on", "LOG_LEVEL": "debug"}
            )
            entry = sealed.seal(secret_key, "STRIPE_KEY", SECRET_VALUE)
            fields[plan.SECRET_OVERRIDES] = sealed.encode({"STRIPE_KEY": entry})
        await store.desire(key, fields)
        for offset, action, result, by in (
            (age + 1800, "deploy", "applied", author),
            (age + 1500, "running", "ok", "stagingbot"),
            (age, phase if phase != "running" else "set LOG_LEVEL via dashboard", "ok", "qa-anna"),
        ):
            entry_fields = {"at": round(now - offset, 3), "action": action, "result": result}
            await store.add_history(
                key, {**entry_fields, "sha": commit, "event": "seed", "by": by, "reason": ""}
            )
    await redis.aclose()


@pytest.fixture(scope="module")
def site(redis_server: str) -> Iterator[str]:
    """The web app on a real port (in a thread of its own), over a seeded Redis."""
    config = api_config(redis_server)
    config = replace(config, redis=replace(config.redis, key_prefix=PREFIX))

    async def fresh() -> None:
        redis = Redis.from_url(redis_server)
        for name in [k async for k in redis.scan_iter(f"{PREFIX}*")]:
            await redis.delete(name)
        await redis.aclose()
        await seed(config)

    asyncio.run(fresh())
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config), host="127.0.0.1", port=port, log_config=None, proxy_headers=False
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the web app did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert sync_playwright is not None
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(5000)
    opened = context.new_page()
    yield opened
    context.close()


def sign_in(page: Page, site: str, token: str, target: str = "/") -> None:
    page.goto(f"{site}/login?next={quote(target, safe='')}")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{site}{target}")


def detail_path(ref: str) -> str:
    return "/stagings/" + quote(ref, safe="")


def test_screenshots_of_the_list_and_a_detail_page(site: str, page: Page, tmp_path: Path) -> None:
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    sign_in(page, site, OPERATOR)
    page.screenshot(path=str(folder / "dashboard-list.png"), full_page=True)
    page.goto(site + detail_path(DETAIL))
    page.screenshot(path=str(folder / "dashboard-detail.png"), full_page=True)

    for name in ("dashboard-list.png", "dashboard-detail.png"):
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert SECRET_VALUE not in page.content()


def test_the_list_shows_every_staging_with_archived_ones_apart_and_search_narrows_it(
    site: str, page: Page
) -> None:
    sign_in(page, site, VIEWER)

    tables = page.locator("table")
    expect(tables.nth(0).locator("tbody tr")).to_have_count(5)
    expect(tables.nth(1).locator("tbody tr")).to_have_count(1)
    expect(tables.nth(1)).to_contain_text("Recommendations A/B test")
    expect(page.locator(".badge.failed")).to_have_text("failed")
    expect(
        page.get_by_role("link", name="https://shop-pr-142.staging.example.com/")
    ).to_be_visible()

    page.get_by_label("Search").fill("checkout")
    page.get_by_role("button", name="Show").click()

    expect(tables.nth(0).locator("tbody tr")).to_have_count(1)
    expect(tables.nth(0)).to_contain_text("New checkout flow")
    assert "q=checkout" in page.url

    page.get_by_label("Search").fill("")
    page.get_by_label("State").select_option("failed")
    page.get_by_role("button", name="Show").click()
    expect(tables.nth(0).locator("tbody tr")).to_have_count(1)
    expect(tables.nth(0)).to_contain_text("Refund webhooks")


def test_a_viewer_sees_the_detail_and_history_but_no_action_buttons(site: str, page: Page) -> None:
    sign_in(page, site, VIEWER)
    page.get_by_role("link", name="acme/shop#142").click()

    expect(page.locator("h1")).to_contain_text("acme/shop#142")
    expect(page.locator("dl")).to_contain_text("feature/checkout-v2")
    expect(page.get_by_role("cell", name="**********")).to_be_visible()
    expect(page.get_by_role("cell", name="set LOG_LEVEL via dashboard")).to_be_visible()
    for action in ("Deploy", "Redeploy", "Archive", "Destroy", "Set", "Remove"):
        expect(page.get_by_role("button", name=action, exact=True)).to_have_count(0)
    assert SECRET_VALUE not in page.content()


def test_an_operator_redeploys_from_the_detail_page(site: str, page: Page) -> None:
    sign_in(page, site, OPERATOR, detail_path(DETAIL))

    page.get_by_role("button", name="Redeploy", exact=True).click()

    expect(page.get_by_role("status")).to_have_text(
        "redeploy: accepted, the staging is being updated"
    )
    expect(page.locator("table").last.locator("tbody tr").first).to_contain_text(
        "redeploy via dashboard"
    )
    expect(page.locator("table").last.locator("tbody tr").first).to_contain_text("ci")


def test_destroy_asks_for_a_confirmation_tick_first(site: str, page: Page) -> None:
    ref = f"github:{WEB[1]}#91"
    sign_in(page, site, OPERATOR, detail_path(ref))
    destroy = page.get_by_role("button", name="Destroy", exact=True)

    destroy.click()  # the browser refuses the form: the box is required
    expect(page.get_by_role("status")).to_have_count(0)
    valid: Any = page.get_by_label("yes, remove it").evaluate("box => box.validity.valid")
    assert valid is False

    page.get_by_label("yes, remove it").check()
    destroy.click()

    expect(page.get_by_role("status")).to_have_text(
        "destroy: accepted, the staging is being updated"
    )
