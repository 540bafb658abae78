"""Dashboard sign-in through an authentication proxy: the user header is trusted only from
the configured proxy addresses, through the real app and a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx
import pytest

from bot import serve
from bot.config import ConfigError, DashboardConfig, load_config
from bot.web import create_app
from tests.conftest import free_port
from tests.integration.test_api import api_config, history
from tests.integration.test_dashboard import PAGE, csrf_of, with_staging

PROXY = "10.20.0.7"
OUTSIDE = "203.0.113.9"


def proxy_dashboard(**changes: Any) -> DashboardConfig:
    settings: dict[str, Any] = {
        "proxy_user_header": "X-Forwarded-User",
        "proxy_addresses": ("10.20.0.0/16", "::1"),
        "proxy_operators": ("Alice",),
        "proxy_viewers": ("victor@example.com",),
        **changes,
    }
    return DashboardConfig(**settings)


@asynccontextmanager
async def browser(
    redis_url: str, peer: str, dashboard: DashboardConfig | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app as a browser reaches it from `peer` (the connection's own address)."""
    app = create_app(api_config(redis_url, dashboard=dashboard or proxy_dashboard()))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(peer, 51234))
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
            yield client


def as_user(name: str, header: str = "X-Forwarded-User") -> dict[str, str]:
    return {header: name}


async def test_the_proxys_user_is_signed_in_with_the_role_the_config_gives(
    redis_url: str,
) -> None:
    async with browser(redis_url, PROXY) as client:
        await with_staging(client, redis_url)

        page = await client.get(PAGE, headers=as_user("alice"))  # names compare case-free

        assert page.status_code == 200
        assert "alice" in page.text and "(operator)" in page.text
        assert ">Redeploy</button>" in page.text
        assert "Sign out" not in page.text  # the proxy signs people out, not the bot

        done = await client.post(
            f"{PAGE}/redeploy", headers=as_user("alice"), data={"csrf": csrf_of(page.text)}
        )
        assert done.status_code == 303
    entry = (await history(redis_url))[0]
    assert entry["action"] == "redeploy via dashboard" and entry["by"] == "alice"


async def test_a_viewer_from_the_proxy_sees_no_buttons(redis_url: str) -> None:
    async with browser(redis_url, PROXY) as client:
        await with_staging(client, redis_url)
        page = await client.get(PAGE, headers=as_user("victor@example.com"))

    assert page.status_code == 200 and "(viewer)" in page.text
    assert "<button" not in page.text.split("</header>")[1]


async def test_the_same_header_from_another_address_is_ignored(redis_url: str) -> None:
    async with browser(redis_url, OUTSIDE) as client:
        await with_staging(client, redis_url)

        listed = await client.get("/", headers=as_user("alice"))
        forwarded = await client.get(
            "/", headers={**as_user("alice"), "X-Forwarded-For": PROXY, "X-Real-IP": PROXY}
        )
        acted = await client.post(f"{PAGE}/destroy", headers=as_user("alice"), data={})

    assert listed.status_code == 303 and listed.headers["location"].startswith("/login")
    assert forwarded.status_code == 303  # a forwarded-for header never makes a proxy
    assert acted.status_code == 401
    assert "destroy via dashboard" not in [entry["action"] for entry in await history(redis_url)]


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Forwarded-User", "mallory"), ("X-Forwarded-User", "alice")],  # the client's copy kept
        [("X-Forwarded-User", "alice, mallory")],
        [("X-Forwarded-User", "")],
        [("X-Auth-Request-User", "alice")],  # not the configured header
    ],
)
async def test_an_ambiguous_or_other_header_signs_nobody_in(
    redis_url: str, headers: list[tuple[str, str]]
) -> None:
    async with browser(redis_url, PROXY) as client:
        response = await client.get("/", headers=httpx.Headers(headers))

    assert response.status_code == 303 and response.headers["location"].startswith("/login")


async def test_a_user_no_list_names_gets_the_default_role_or_a_page_saying_why_not(
    redis_url: str,
) -> None:
    async with browser(redis_url, PROXY) as client:
        refused = await client.get("/", headers=as_user("nobody"), follow_redirects=True)
    assert "nobody" in refused.text and "gives that name no role" in refused.text
    assert "dashboard.proxy_viewers" in refused.text

    viewers = proxy_dashboard(proxy_default_role="viewer")
    async with browser(redis_url, PROXY, viewers) as client:
        listed = await client.get("/", headers=as_user("nobody"))
    assert listed.status_code == 200 and "(viewer)" in listed.text


async def test_the_header_name_is_configurable_and_ipv6_proxies_work(redis_url: str) -> None:
    dashboard = proxy_dashboard(proxy_user_header="X-Auth-Request-User")
    async with browser(redis_url, "::1", dashboard) as client:
        ours = await client.get("/", headers=as_user("alice", "X-Auth-Request-User"))
        other = await client.get("/", headers=as_user("alice", "X-Forwarded-User"))

    assert ours.status_code == 200 and other.status_code == 303


async def test_a_proxied_user_still_needs_the_forms_csrf_token(redis_url: str) -> None:
    async with browser(redis_url, PROXY) as client:
        await with_staging(client, redis_url)
        refused = await client.post(f"{PAGE}/redeploy", headers=as_user("alice"), data={})

    assert refused.status_code == 403 and "CSRF" in refused.text


async def test_the_api_never_takes_the_proxys_header(redis_url: str) -> None:
    async with browser(redis_url, PROXY) as client:
        response = await client.get("/api/stagings", headers=as_user("alice"))

    assert response.status_code == 401


async def test_without_the_header_configured_nothing_is_trusted(redis_url: str) -> None:
    async with browser(redis_url, PROXY, DashboardConfig()) as client:
        response = await client.get("/", headers=as_user("alice"))

    assert response.status_code == 303


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        ('proxy_user_header = "X-Forwarded-User"', "dashboard.proxy_addresses: required"),
        ('proxy_user_header = "X Forwarded"\nproxy_addresses = ["10.0.0.0/8"]', "header name"),
        (
            'proxy_user_header = "X-Forwarded-User"\nproxy_addresses = ["10.0.0.300/8"]',
            "dashboard.proxy_addresses[0]",
        ),
        ('proxy_default_role = "admin"', "dashboard.proxy_default_role"),
        (
            'proxy_operators = ["alice"]\nproxy_viewers = ["ALICE"]',
            "dashboard.proxy_operators: 'alice' is listed in dashboard.proxy_viewers too",
        ),
    ],
)
def test_a_wrong_proxy_setting_stops_the_bot_naming_the_key(
    tmp_path: Any, toml: str, problem: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[staging]\nbase_domain = "staging.example.com"\nsecret_key = "k"\n'
        '[github]\ntoken = "t"\nwebhook_secret = "w"\n'
        f"[dashboard]\n{toml}\n"
    )
    with pytest.raises(ConfigError) as error:
        load_config(str(path), {})

    assert problem in str(error.value)


def test_the_proxy_lists_load_from_the_file_and_the_environment(tmp_path: Any) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[staging]\nbase_domain = "staging.example.com"\nsecret_key = "k"\n'
        '[github]\ntoken = "t"\nwebhook_secret = "w"\n'
        '[dashboard]\nproxy_user_header = "X-Forwarded-User"\n'
        'proxy_addresses = ["10.0.0.0/8"]\nproxy_operators = ["alice"]\n'
    )
    config = load_config(str(path), {"STAGINGBOT_DASHBOARD_PROXY_VIEWERS": "bob,carol"})

    assert config.dashboard.proxy_operators == ("alice",)
    assert config.dashboard.proxy_viewers == ("bob", "carol")
    assert replace(config.dashboard, proxy_viewers=()).proxy_default_role == ""


async def test_the_served_app_keeps_the_connections_own_address_whatever_a_header_says(
    redis_url: str,
) -> None:
    """Through the real uvicorn server `stagingbot web` runs: a request from 127.0.0.1
    claiming to be forwarded for the proxy's address is still from 127.0.0.1."""
    dashboard = proxy_dashboard(proxy_addresses=(PROXY + "/32",))
    config = api_config(redis_url, dashboard=dashboard)
    config = replace(config, server=replace(config.server, host="127.0.0.1", port=free_port()))
    uv = serve.web_server_config(config)
    assert uv.proxy_headers is False
    uv.forwarded_allow_ips = "*"  # even trusting every forwarder would change nothing now
    server = serve._Server(uv)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn's Server offers no started event
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{config.server.port}") as client:
            spoofed = await client.get(
                "/",
                headers={**as_user("alice"), "X-Forwarded-For": PROXY, "Forwarded": f"for={PROXY}"},
            )
    finally:
        server.should_exit = True
        await task

    assert spoofed.status_code == 303 and spoofed.headers["location"].startswith("/login")
