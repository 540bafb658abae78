"""QA sign-off through the JSON API and the dashboard: roles, the note, the stored verdict."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from handlers import plan
from tests.integration.test_api import (
    OPERATOR,
    PATH,
    QA,
    SHA1,
    VIEWER,
    api_config,
    auth,
    client_for,
    fields,
    history,
    opened,
    queued_jobs,
    running,
)
from tests.integration.test_dashboard import PAGE, csrf_of, sign_in


@pytest.fixture
async def bot(redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(api_config(redis_url)) as client:
        yield client


async def test_a_qa_token_passes_the_running_staging_with_a_note(
    bot: httpx.AsyncClient, redis_url: str
) -> None:
    await opened(bot)
    await running(redis_url)
    response = await bot.post(f"{PATH}/qa-pass", headers=auth(QA), json={"note": "checkout works"})
    assert response.status_code == 202, response.text
    assert response.json()["action"] == "qa-pass"

    stored = await fields(redis_url)
    assert (stored[plan.QA], stored[plan.QA_SHA], stored[plan.QA_BY]) == ("passed", SHA1, "qa-team")
    assert stored[plan.QA_NOTE] == "checkout works"
    (entry, *_) = await history(redis_url)
    assert (entry["action"], entry["result"]) == ("qa-pass via API", "QA passed: checkout works")
    assert await queued_jobs(redis_url)  # the worker sets staging/qa

    shown = (await bot.get(PATH, headers=auth(VIEWER))).json()["qa"]
    assert shown["verdict"] == "passed" and shown["by"] == "qa-team" and shown["current"] is True


@pytest.mark.parametrize(("token", "status"), [(VIEWER, 403), (QA, 202), (OPERATOR, 202)])
async def test_only_the_qa_and_operator_roles_sign_off(
    bot: httpx.AsyncClient, redis_url: str, token: str, status: int
) -> None:
    await opened(bot)
    await running(redis_url)
    response = await bot.post(f"{PATH}/qa-fail", headers=auth(token), json={"note": "broken"})
    assert response.status_code == status, response.text
    assert (await fields(redis_url)).get(plan.QA, "") == ("failed" if status == 202 else "")


@pytest.mark.parametrize(
    ("action", "body", "message"),
    [
        ("qa-fail", {}, "qa-fail needs a reason"),
        ("qa-fail", {"note": "   "}, "qa-fail needs a reason"),
        ("qa-pass", {"note": 42}, 'the body must be {"note": "<text>"}'),
        ("qa-pass", {"note": "x" * 501}, "at most 500"),
    ],
)
async def test_a_bad_note_is_422_and_changes_nothing(
    bot: httpx.AsyncClient, redis_url: str, action: str, body: dict[str, object], message: str
) -> None:
    await opened(bot)
    await running(redis_url)
    response = await bot.post(f"{PATH}/{action}", headers=auth(QA), json=body)
    assert response.status_code == 422
    assert message in response.json()["error"]
    assert plan.QA not in await fields(redis_url)


async def test_a_staging_not_running_the_head_cannot_be_signed_off(
    bot: httpx.AsyncClient, redis_url: str
) -> None:
    await opened(bot)  # the head is known, nothing is deployed yet
    response = await bot.post(f"{PATH}/qa-pass", headers=auth(QA))
    assert response.status_code == 409
    assert "does not run the head commit yet" in response.json()["error"]


async def test_the_dashboard_offers_qa_its_sign_off_and_records_it(
    bot: httpx.AsyncClient, redis_url: str
) -> None:
    await opened(bot)
    await running(redis_url)
    await sign_in(bot, QA)
    page = await bot.get(PAGE)
    assert "QA passed" in page.text and "QA failed" in page.text
    assert "nobody has signed off yet" in page.text

    posted = await bot.post(
        f"{PAGE}/qa-fail", data={"csrf": csrf_of(page.text), "note": "the cart <b>empties</b>"}
    )
    assert posted.status_code == 303
    stored = await fields(redis_url)
    assert (stored[plan.QA], stored[plan.QA_BY]) == ("failed", "qa-team")
    after = await bot.get(PAGE)
    assert "qa-fail: recorded" in after.text
    assert "<strong>failed</strong> by qa-team" in after.text
    assert "the cart &lt;b&gt;empties&lt;/b&gt;" in after.text  # escaped, never markup


async def test_a_viewer_cannot_post_a_sign_off_from_the_dashboard(
    bot: httpx.AsyncClient, redis_url: str
) -> None:
    await opened(bot)
    await running(redis_url)
    await sign_in(bot, VIEWER)
    page = await bot.get(PAGE)
    assert "QA passed" not in page.text
    posted = await bot.post(f"{PAGE}/qa-pass", data={"csrf": csrf_of(page.text)})
    assert posted.status_code == 403
    assert plan.QA not in await fields(redis_url)
