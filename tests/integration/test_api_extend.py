"""`POST /api/stagings/{ref}/extend` through the real app and a real Redis."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from bot import lifecycle, queue
from tests.integration.test_api import (
    OPERATOR,
    PATH,
    PREFIX,
    REF,
    VIEWER,
    api_config,
    auth,
    client_for,
    fields,
    opened,
    running,
)
from tests.integration.test_dashboard import PAGE, csrf_of, sign_in

DAY = 86400.0


@pytest.fixture
async def bot(redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(api_config(redis_url)) as client:
        yield client


async def test_extend_pushes_the_idle_deadline_and_says_until_when(
    bot: httpx.AsyncClient, redis_url: str
) -> None:
    await opened(bot)
    await running(redis_url, deployed_at=str(time.time()))
    before, active = time.time(), (await fields(redis_url))[lifecycle.ACTIVE_AT]

    response = await bot.post(f"{PATH}/extend", headers=auth(OPERATOR), json={"duration": "5d"})

    assert response.status_code == 202, response.text
    answer = response.json()
    assert (answer["ref"], answer["action"], answer["accepted"]) == (REF, "extend", True)
    assert before + 5 * DAY - 1 <= answer["until"] <= time.time() + 5 * DAY
    stored = await fields(redis_url)
    assert float(stored[lifecycle.EXTENDED_UNTIL]) == answer["until"]
    assert stored[lifecycle.EXTENDED_BY] == "ci"
    assert stored[lifecycle.ACTIVE_AT] == active  # it sets its own deadline, nothing more
    jobs = await _queued(redis_url)
    assert jobs == 1


async def test_extend_without_a_body_gives_a_whole_idle_period(
    bot: httpx.AsyncClient, redis_url: str
) -> None:
    await opened(bot)
    await running(redis_url, deployed_at=str(time.time() - DAY))
    response = await bot.post(f"{PATH}/extend", headers=auth(OPERATOR))
    assert response.status_code == 202, response.text
    assert response.json()["until"] == pytest.approx(time.time() + 3 * DAY, abs=5)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"duration": "forever"}, 422, 'duration must be a string like "12h"'),
        ({"duration": 3600}, 422, 'duration must be a string like "12h"'),
        ({"duration": "30d"}, 422, "at most 14 days (staging.max_extend), not 30 days"),
    ],
)
async def test_a_bad_duration_is_refused_with_the_reason(
    bot: httpx.AsyncClient, redis_url: str, body: dict[str, object], status: int, message: str
) -> None:
    await opened(bot)
    await running(redis_url)
    response = await bot.post(f"{PATH}/extend", headers=auth(OPERATOR), json=body)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert lifecycle.EXTENDED_UNTIL not in await fields(redis_url)


async def test_nothing_to_extend_before_the_staging_exists(
    bot: httpx.AsyncClient, redis_url: str
) -> None:
    await opened(bot)
    response = await bot.post(f"{PATH}/extend", headers=auth(OPERATOR))
    assert response.status_code == 409
    assert response.json()["error"] == "there is no staging to extend"


async def test_a_viewer_may_not_extend(bot: httpx.AsyncClient, redis_url: str) -> None:
    await opened(bot)
    await running(redis_url)
    response = await bot.post(f"{PATH}/extend", headers=auth(VIEWER))
    assert response.status_code == 403


async def test_other_actions_count_as_activity(bot: httpx.AsyncClient, redis_url: str) -> None:
    await opened(bot)
    await running(redis_url)
    before = time.time()
    response = await bot.post(f"{PATH}/redeploy", headers=auth(OPERATOR))
    assert response.status_code == 202
    assert float((await fields(redis_url))[lifecycle.ACTIVE_AT]) >= before - 1


async def _queued(redis_url: str) -> int:
    redis = Redis.from_url(redis_url)
    try:
        return int(await redis.zcard(queue.queue_name(PREFIX)))
    finally:
        await redis.aclose()


async def test_an_operator_extends_from_the_dashboard_for_a_chosen_time(
    bot: httpx.AsyncClient, redis_url: str
) -> None:
    await opened(bot)
    await running(redis_url, deployed_at=str(time.time()))
    await sign_in(bot, OPERATOR)
    csrf = csrf_of((page := await bot.get(PAGE)).text)
    assert f'action="{PAGE}/extend"' in page.text and 'name="duration"' in page.text

    wrong = await bot.post(f"{PAGE}/extend", data={"csrf": csrf, "duration": "soon"})
    assert wrong.status_code == 303
    assert "duration must be a string like" in (await bot.get(PAGE)).text
    posted = await bot.post(f"{PAGE}/extend", data={"csrf": csrf, "duration": "10d"})

    assert posted.status_code == 303
    until = float((await fields(redis_url))[lifecycle.EXTENDED_UNTIL])
    assert until == pytest.approx(time.time() + 10 * DAY, abs=5)
    assert "extend: accepted: kept until" in (await bot.get(PAGE)).text


async def test_the_detail_says_when_the_staging_sleeps_and_the_dashboard_shows_it(
    bot: httpx.AsyncClient, redis_url: str
) -> None:
    await opened(bot)
    deployed = time.time() - DAY
    await running(redis_url, deployed_at=str(deployed), active_at=str(deployed))
    shown = (await bot.get(PATH, headers=auth(VIEWER))).json()
    assert shown["idle_until"] == pytest.approx(deployed + 3 * DAY)
    assert shown["removed_at"] is None and shown["queue_position"] is None
    await sign_in(bot, OPERATOR)
    assert "in 1 d, unless there is a push or an extend" in (await bot.get(PAGE)).text
