"""Secret overrides end to end: set through the API, kept sealed in Redis, applied as a
bot-owned Kubernetes Secret by a real worker against the fake cluster, masked everywhere.

The leak check reads what each audience can see (API, dashboard, the sticky comment and
replies on the fake GitHub, every Redis key, the log records) for the value itself.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from redis.asyncio import Redis

from bot import sealed
from bot.config import ApiConfig, ApiToken, CommandsConfig, Config, Secret
from bot.errors import PermanentError
from bot.model import PullRequest, RepoRef
from bot.provision import overrides
from bot.targets import build_target
from handlers import actions, plan
from tests.fakes.github import FakeGitHub
from tests.fakes.kube import FakeKube
from tests.helpers import REPO, REPO_ID, pr_payload
from tests.integration.test_api import KEY, OPERATOR, api_config, client_for, fields, opened
from tests.integration.test_api import VIEWER as API_VIEWER
from tests.integration.test_dashboard import csrf_of, sign_in
from tests.integration.test_end_to_end import (
    NAMESPACE,
    SHA1,
    bot_config,
    completed,
    deliver,
    eventually,
    running_bot,
    settled,
)

TOKEN = "operator-token-0123456789"
VIEWER = "viewer-token-0123456789"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
REF = f"github:{REPO}#2"
PATH = "/api/stagings/" + quote(REF, safe="")
PAGE = "/stagings/" + quote(REF, safe="")
VALUE = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
NEW_VALUE = "sk_live_rotated-51H8nQ2eZvKYlo2C"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.add_repo(REPO, REPO_ID, installation_id=1)
        fake.add_pull(REPO, 2, SHA1, branch="changes")
        yield fake


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube() as fake:
        yield fake


def secret_config(redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path) -> Config:
    config = bot_config(redis_url, github, kube, tmp_path, app=True)
    tokens = (
        ApiToken("ci", Secret(TOKEN), "operator"),
        ApiToken("product", Secret(VIEWER), "viewer"),
    )
    return replace(
        config,
        api=ApiConfig(tokens),
        commands=CommandsConfig(secret_keys=("STRIPE_KEY",)),
    )


def secret_data(kube: FakeKube) -> dict[str, str]:
    found = kube.get("Secret", NAMESPACE, overrides.SECRET) or {}
    return dict(found.get("data") or {})


def web_pod(kube: FakeKube) -> dict[str, object]:
    deployment = kube.get("Deployment", NAMESPACE, "web") or {}
    return dict(deployment.get("spec", {}).get("template", {}))


def checksum(kube: FakeKube) -> str:
    annotations = web_pod(kube).get("metadata", {}).get("annotations", {})  # type: ignore[union-attr]
    return str(annotations.get(overrides.ANNOTATION_CHECKSUM, ""))


async def redis_dump(redis_url: str) -> str:
    """Every key and value in Redis, as text: hashes, lists, sorted sets and strings."""
    redis = Redis.from_url(redis_url)
    parts = []
    async for name in redis.scan_iter():
        kind = (await redis.type(name)).decode()
        if kind == "hash":
            parts.append(repr(await redis.hgetall(name)))
        elif kind == "list":
            parts.append(repr(await redis.lrange(name, 0, -1)))
        elif kind == "zset":
            parts.append(repr(await redis.zrange(name, 0, -1)))
        elif kind == "string":
            parts.append(repr(await redis.get(name)))
        parts.append(repr(name))
    await redis.aclose()
    return "\n".join(parts)


async def dashboard_detail(bot: httpx.AsyncClient, token: str) -> str:
    login = await bot.get("/login")
    await bot.post("/login", data={"token": token, "csrf": csrf_of(login.text)})
    page = await bot.get(PAGE)
    await bot.post("/logout", data={"csrf": csrf_of(page.text)})
    return page.text


async def test_a_secret_override_reaches_the_pods_through_a_secret_and_is_never_shown(
    redis_url: str,
    github: FakeGitHub,
    kube: FakeKube,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    config = secret_config(redis_url, github, kube, tmp_path)
    async with running_bot(config) as bot:
        await deliver(bot, pr_payload("opened"))
        await eventually(lambda: completed(github.check_runs(REPO, SHA1)), "staging running")
        assert kube.get("Secret", NAMESPACE, overrides.SECRET) is None  # none until one is set
        before = checksum(kube)

        put = await bot.put(f"{PATH}/overrides/STRIPE_KEY", headers=HEADERS, json={"value": VALUE})
        assert put.status_code == 200 and put.json() == {"key": "STRIPE_KEY", "secret": True}

        await eventually(lambda: checksum(kube) != before, "the pods restarted with it")
        assert secret_data(kube) == {"STRIPE_KEY": base64.b64encode(VALUE.encode()).decode()}
        stored = kube.get("Secret", NAMESPACE, overrides.SECRET) or {}
        assert stored["type"] == "Opaque"
        assert stored["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "stagingbot"
        assert (kube.get("ConfigMap", NAMESPACE, overrides.CONFIGMAP) or {}).get("data") in (
            {},
            None,
        )
        pod = web_pod(kube)
        container = pod["spec"]["containers"][0]  # type: ignore[index]
        assert {"secretRef": {"name": overrides.SECRET, "optional": True}} in container["envFrom"]
        after = checksum(kube)

        # A new value restarts them again; the same value does not.
        await bot.put(f"{PATH}/overrides/STRIPE_KEY", headers=HEADERS, json={"value": NEW_VALUE})
        new_data = base64.b64encode(NEW_VALUE.encode()).decode()
        await eventually(lambda: checksum(kube) not in (before, after), "restarted again")
        assert secret_data(kube)["STRIPE_KEY"] == new_data

        shown = (await bot.get(PATH, headers=HEADERS)).json()
        assert shown["overrides"] == {"STRIPE_KEY": "**********"}
        assert shown["secret_overrides"] == ["STRIPE_KEY"]
        entries = [entry for entry in shown["history"] if entry["by"] == "ci"]
        assert [entry["action"] for entry in entries][:2] == [
            "set STRIPE_KEY via API",
            "set STRIPE_KEY via API",
        ]
        await eventually(
            lambda: any("STRIPE_KEY" in c["body"] for c in github.comments(REPO, 2)),
            "the sticky comment lists the override",
        )

        seen = [
            (await bot.get("/api/stagings", headers=HEADERS)).text,
            (await bot.get(PATH, headers=HEADERS)).text,
            await dashboard_detail(bot, TOKEN),
            await dashboard_detail(bot, VIEWER),
            *(comment["body"] for comment in github.comments(REPO, 2)),
            await redis_dump(redis_url),
            *(record.getMessage() + repr(record.__dict__) for record in caplog.records),
        ]
        assert any("`STRIPE_KEY` = `**********`" in c["body"] for c in github.comments(REPO, 2))
        for text in seen:
            assert VALUE not in text and NEW_VALUE not in text
            assert base64.b64encode(VALUE.encode()).decode() not in text

        # Removing it removes the Secret (pruned) and the pods' reference to it.
        assert (
            await bot.delete(f"{PATH}/overrides/STRIPE_KEY", headers=HEADERS)
        ).status_code == 204
        await eventually(
            lambda: kube.get("Secret", NAMESPACE, overrides.SECRET) is None, "the Secret pruned"
        )
        assert checksum(kube) == before  # back to no overrides at all
        container = web_pod(kube)["spec"]["containers"][0]  # type: ignore[index]
        assert all("secretRef" not in source for source in container["envFrom"])


async def test_a_secret_override_survives_a_redis_wipe_sealed_again_from_the_cluster(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    config = secret_config(redis_url, github, kube, tmp_path)
    async with running_bot(config) as bot:
        await deliver(bot, pr_payload("opened"))
        await eventually(lambda: completed(github.check_runs(REPO, SHA1)), "staging running")
        await bot.put(f"{PATH}/overrides/STRIPE_KEY", headers=HEADERS, json={"value": VALUE})
        await eventually(lambda: secret_data(kube), "the secret overrides Secret applied")
        await settled(config)  # a job running through the wipe would write

        redis = Redis.from_url(redis_url)
        await redis.flushdb()
        await redis.aclose()
        assert (await bot.post("/api/sweep", headers=HEADERS)).status_code == 202

        async def rebuilt() -> dict[str, str]:
            response = await bot.get(PATH, headers=HEADERS)
            return dict(response.json()) if response.status_code == 200 else {}

        detail: dict[str, object] = {}
        deadline = time.monotonic() + 20
        while not detail and time.monotonic() < deadline:
            detail = await rebuilt()
            await asyncio.sleep(0.05)
        assert detail["overrides"] == {"STRIPE_KEY": "**********"}
        assert VALUE not in await redis_dump(redis_url)
        # and the job the sweep queued keeps the Secret as it was (once it has run)
        await settled(config)
        assert secret_data(kube) == {"STRIPE_KEY": base64.b64encode(VALUE.encode()).decode()}


def test_a_sealed_value_opens_only_with_the_same_secret_key() -> None:
    entry = sealed.seal("key-one", "STRIPE_KEY", VALUE)

    assert VALUE not in repr(entry)
    assert sealed.open_all("key-one", {"STRIPE_KEY": entry}) == {"STRIPE_KEY": VALUE}
    with pytest.raises(sealed.Unreadable) as refused:
        sealed.open_all("key-two", {"STRIPE_KEY": entry})
    assert "STRIPE_KEY" in str(refused.value) and "staging.secret_key changed" in str(refused.value)
    assert sealed.fingerprint("key-one", "STRIPE_KEY", VALUE) == entry["fp"]
    assert sealed.fingerprint("key-two", "STRIPE_KEY", VALUE) != entry["fp"]


def test_the_shown_overrides_mask_sealed_keys_even_when_no_longer_listed_as_secret() -> None:
    fields = {
        plan.OVERRIDES: plan.encode_overrides({"GREETING": "hi"}),
        plan.SECRET_OVERRIDES: sealed.encode({"OLD_KEY": sealed.seal("k", "OLD_KEY", VALUE)}),
    }

    assert plan.shown_overrides(fields, ()) == [("GREETING", "hi"), ("OLD_KEY", "**********")]


# --- the web app alone: API and dashboard ---------------------------------------------------


async def test_asking_for_a_secret_on_a_plain_key_is_refused_before_anything_is_kept(
    redis_url: str,
) -> None:
    async with client_for(api_config(redis_url)) as client:
        await opened(client)
        response = await client.put(
            f"{PATH}/overrides/GREETING",
            headers={"Authorization": f"Bearer {OPERATOR}"},
            json={"value": VALUE, "secret": True},
        )

        assert response.status_code == 422
        assert "GREETING is not one of commands.secret_keys" in response.json()["error"]
        assert VALUE not in response.text and VALUE not in await redis_dump(redis_url)


async def test_an_operator_sets_a_secret_with_the_dashboards_password_field(
    redis_url: str,
) -> None:
    async with client_for(api_config(redis_url)) as client:
        await opened(client)
        await sign_in(client, OPERATOR, PAGE)
        page = await client.get(PAGE)
        assert (
            'type="password" name="value"' in page.text
            and "<option>STRIPE_KEY</option>" in page.text
        )

        posted = await client.post(
            f"{PAGE}/overrides",
            data={"csrf": csrf_of(page.text), "key": "STRIPE_KEY", "value": VALUE},
            follow_redirects=True,
        )

        assert "STRIPE_KEY set (secret): the staging restarts with it" in posted.text
        assert '<code>**********</code> <span class="muted">(secret)</span>' in posted.text
        assert VALUE not in posted.text and VALUE not in await redis_dump(redis_url)
        stored = plan.secret_overrides(await fields(redis_url))
        secret_key = api_config(redis_url).staging.secret_key.reveal()
        assert sealed.open_all(secret_key, stored) == {"STRIPE_KEY": VALUE}

        await client.post("/logout", data={"csrf": csrf_of(posted.text)})
        await sign_in(client, API_VIEWER, PAGE)
        viewed = await client.get(PAGE)
        assert "**********" in viewed.text and 'type="password"' not in viewed.text


# --- pure pieces ----------------------------------------------------------------------------


def test_setting_a_key_in_the_open_or_unsetting_it_drops_its_sealed_value() -> None:
    state = actions.set_secret({}, "STRIPE_KEY", sealed.seal("k", "STRIPE_KEY", VALUE)).changes
    assert plan.secret_overrides(state).keys() == {"STRIPE_KEY"}

    plain = actions.set_overrides(state, [("STRIPE_KEY", "public")]).changes
    assert plan.secret_overrides(plain) == {} and plan.overrides(plain) == {"STRIPE_KEY": "public"}

    removed = actions.unset_overrides(state, ["STRIPE_KEY"])
    assert removed.unknown == () and plan.secret_overrides(removed.changes) == {}
    assert VALUE not in repr(state)


def test_a_value_sealed_under_another_secret_key_fails_the_staging_naming_only_the_key(
    redis_url: str,
) -> None:
    config = api_config(redis_url)
    entry = sealed.seal("the-key-before-rotation", "STRIPE_KEY", VALUE)
    pr = PullRequest(RepoRef("github", REPO_ID, REPO), 2, SHA1, "changes", "t", "a", "", open=True)

    with pytest.raises(PermanentError) as failure:
        build_target(config, config.repos[0], KEY, pr, secret_overrides={"STRIPE_KEY": entry})

    assert "STRIPE_KEY cannot be read: staging.secret_key changed" in failure.value.reason
    assert VALUE not in failure.value.reason
    good = sealed.seal(config.staging.secret_key.reveal(), "STRIPE_KEY", VALUE)
    target = build_target(config, config.repos[0], KEY, pr, secret_overrides={"STRIPE_KEY": good})
    assert target.secret_overrides == (("STRIPE_KEY", VALUE),) and VALUE not in repr(target)
