"""The dashboard through the real app and a real Redis: sign-in, list, detail, forms, CSRF."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from urllib.parse import quote

import httpx
import pytest

from bot.config import ApiConfig, Config
from handlers import plan
from tests.helpers import REPO, make_config
from tests.integration.test_api import (
    OPERATOR,
    PREFIX,
    QA,
    SECRET_VALUE,
    SHA1,
    VIEWER,
    api_config,
    client_for,
    fields,
    history,
    opened,
    running,
)

REF = f"github:{REPO}#2"
PAGE = "/stagings/" + quote(REF, safe="")
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')

assert PREFIX  # the same store as the API tests


@pytest.fixture
async def app(redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(api_config(redis_url)) as client:
        yield client


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, token: str, next_page: str = "/") -> httpx.Response:
    form = await client.get("/login", params={"next": next_page})
    return await client.post(
        f"/login?next={quote(next_page, safe='')}",
        data={"token": token, "csrf": csrf_of(form.text)},
    )


async def with_staging(client: httpx.AsyncClient, redis_url: str) -> None:
    await opened(client)
    overrides = plan.encode_overrides({"GREETING": "hello", "STRIPE_KEY": SECRET_VALUE})
    await running(redis_url, **{plan.OVERRIDES: overrides})


async def test_pages_need_a_sign_in_that_returns_to_the_page_asked_for(
    app: httpx.AsyncClient,
) -> None:
    assert (await app.get("/")).headers["location"] == "/login?next=%2F"
    assert (await app.get(PAGE)).status_code == 303

    signed = await sign_in(app, OPERATOR, next_page=PAGE)

    assert signed.status_code == 303 and signed.headers["location"] == PAGE
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert OPERATOR not in signed.headers["set-cookie"]  # the session holds a fingerprint


async def test_a_wrong_token_or_an_outside_return_address_gets_nothing(
    app: httpx.AsyncClient,
) -> None:
    wrong = await sign_in(app, "wrong-token-0123456789")
    assert wrong.headers["location"].startswith("/login")
    assert (await app.get("/")).status_code == 303  # still signed out
    assert "not valid" in (await app.get("/login")).text

    outside = await sign_in(app, VIEWER, next_page="//evil.example/")
    assert outside.headers["location"] == "/"


async def test_without_tokens_the_sign_in_page_says_how_to_add_one(redis_url: str) -> None:
    async with client_for(make_config(redis_url)) as client:
        page = await client.get("/login")

    assert "[[api.tokens]]" in page.text and "STAGINGBOT_API_TOKENS" in page.text


async def test_the_list_shows_each_staging_with_its_links_and_refreshes_itself(
    app: httpx.AsyncClient, redis_url: str
) -> None:
    await with_staging(app, redis_url)
    await sign_in(app, VIEWER)

    page = await app.get("/")

    assert page.status_code == 200
    html = page.text
    assert '<meta http-equiv="refresh"' in html
    assert 'class="badge running"' in html
    assert 'href="https://hello-world-pr-2.staging.example.com/"' in html  # the staging
    assert f'href="https://github.com/{REPO}/pull/2"' in html  # the pull request
    assert f"/pull/2/commits/{SHA1}" in html  # the commit
    assert f'href="{PAGE}"' in html and "changes" in html and "Codertocat" in html


async def test_search_and_filters_narrow_the_list_and_archived_ones_have_their_own_section(
    app: httpx.AsyncClient, redis_url: str
) -> None:
    await with_staging(app, redis_url)
    await sign_in(app, VIEWER)

    found = await app.get("/", params={"q": "readme"})
    missed = await app.get("/", params={"q": "no-such-thing"})
    by_state = await app.get("/", params={"state": "failed", "sort": "repo"})

    assert f'href="{PAGE}"' in found.text
    assert f'href="{PAGE}"' not in missed.text and f'href="{PAGE}"' not in by_state.text

    await running(redis_url, phase="archived")
    archived = (await app.get("/")).text
    assert archived.index(f'href="{PAGE}"') > archived.index("<h2>Archived</h2>")


async def test_the_detail_shows_history_and_overrides_never_a_secret_value(
    app: httpx.AsyncClient, redis_url: str
) -> None:
    await with_staging(app, redis_url)
    await app.post(
        f"/api/stagings/{quote(REF, safe='')}/redeploy",
        headers={"Authorization": f"Bearer {OPERATOR}"},
    )
    await sign_in(app, OPERATOR)

    page = await app.get(PAGE)

    html = page.text
    assert page.status_code == 200
    assert "redeploy via API" in html and ">ci<" in html  # the history table
    assert "GREETING" in html and "hello" in html
    assert "STRIPE_KEY" in html and "**********" in html
    assert "staging-hello-world-pr-2" in html  # namespace (show_details is on)
    assert SECRET_VALUE not in html and SECRET_VALUE not in (await app.get("/")).text


@pytest.mark.parametrize("token", [VIEWER, QA])
async def test_viewers_see_no_buttons_and_cannot_post_a_form(
    app: httpx.AsyncClient, redis_url: str, token: str
) -> None:
    await with_staging(app, redis_url)
    await sign_in(app, token)

    page = await app.get(PAGE)
    posted = await app.post(f"{PAGE}/archive", data={"csrf": csrf_of(page.text)})

    assert "<button" in page.text  # the sign-out one (and QA's sign-off for the qa role)
    assert "Destroy" not in page.text and "Redeploy" not in page.text
    forms = re.findall(rf'(?<!form)action="{re.escape(PAGE)}/([^"]+)"', page.text)
    assert forms == ([] if token == VIEWER else ["qa-pass"])
    assert posted.status_code == 403
    assert plan.DECISION not in await fields(redis_url)


async def test_an_operator_acts_through_a_form_with_its_csrf_token(
    app: httpx.AsyncClient, redis_url: str
) -> None:
    await with_staging(app, redis_url)
    await sign_in(app, OPERATOR)
    page = await app.get(PAGE)
    assert f'action="{PAGE}/destroy"' in page.text and 'name="confirm"' in page.text

    posted = await app.post(f"{PAGE}/archive", data={"csrf": csrf_of(page.text)})

    assert posted.status_code == 303 and posted.headers["location"] == PAGE
    stored = await fields(redis_url)
    assert stored[plan.DECISION] == plan.ARCHIVE and stored[plan.DECISION_BY] == "ci"
    entry = (await history(redis_url))[0]
    assert entry["action"] == "archive via dashboard" and entry["by"] == "ci"
    assert "archive: accepted" in (await app.get(PAGE)).text


async def test_a_form_without_the_csrf_token_is_refused(
    app: httpx.AsyncClient, redis_url: str
) -> None:
    await with_staging(app, redis_url)
    await sign_in(app, OPERATOR)
    generation = (await fields(redis_url))["generation"]

    missing = await app.post(f"{PAGE}/archive", data={})
    wrong = await app.post(f"{PAGE}/archive", data={"csrf": "forged"})
    logout = await app.post("/logout", data={})

    assert missing.status_code == 403 and wrong.status_code == 403 and logout.status_code == 403
    assert "CSRF" in missing.text
    assert (await fields(redis_url))["generation"] == generation


async def test_destroy_needs_its_confirmation_and_refusals_are_shown(
    app: httpx.AsyncClient, redis_url: str
) -> None:
    await with_staging(app, redis_url)
    await sign_in(app, OPERATOR)
    csrf = csrf_of((await app.get(PAGE)).text)

    await app.post(f"{PAGE}/destroy", data={"csrf": csrf})
    unconfirmed = (await app.get(PAGE)).text
    await app.post(f"{PAGE}/restore", data={"csrf": csrf})
    not_archived = (await app.get(PAGE)).text
    await app.post(f"{PAGE}/destroy", data={"csrf": csrf, "confirm": "yes"})

    assert "tick the confirmation box" in unconfirmed
    assert "not archived" in not_archived
    assert (await fields(redis_url))[plan.DECISION] == plan.DESTROY


async def test_overrides_are_set_and_removed_from_the_page(
    app: httpx.AsyncClient, redis_url: str
) -> None:
    await with_staging(app, redis_url)
    await sign_in(app, OPERATOR)
    csrf = csrf_of((await app.get(PAGE)).text)

    await app.post(f"{PAGE}/overrides", data={"csrf": csrf, "key": "COLOR", "value": "blue"})
    await app.post(f"{PAGE}/overrides/delete", data={"csrf": csrf, "key": "GREETING"})
    await app.post(f"{PAGE}/overrides", data={"csrf": csrf, "key": "bad key", "value": "x"})

    values = plan.overrides(await fields(redis_url))
    assert values["COLOR"] == "blue" and "GREETING" not in values
    assert "not a valid key" in (await app.get(PAGE)).text


async def test_sign_out_ends_the_session_and_a_removed_token_ends_it_too(
    redis_url: str,
) -> None:
    config: Config = api_config(redis_url)
    async with client_for(config) as client:
        await sign_in(client, OPERATOR)
        page = await client.get("/")
        assert page.status_code == 200
        await client.post("/logout", data={"csrf": csrf_of(page.text)})
        assert (await client.get("/")).status_code == 303
        await sign_in(client, OPERATOR)
        cookies = dict(client.cookies)

    async with client_for(replace(config, api=ApiConfig(()))) as client:
        client.cookies.update(cookies)
        assert (await client.get("/")).status_code == 303
