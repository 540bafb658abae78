"""The JSON API through the real app and a real Redis: auth, every status, effects in the store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from redis.asyncio import Redis

from bot import queue
from bot.config import ApiConfig, ApiToken, CommandsConfig, Config, DashboardConfig, Secret
from bot.model import StagingKey
from bot.store import Store
from bot.web import create_app
from handlers import plan
from tests.helpers import REPO, REPO_ID, body_of, make_config, pr_payload, signed_headers

OPERATOR = "operator-token-0123456789"
VIEWER = "viewer-token-0123456789"
QA = "qa-token-0123456789abc"
TOKENS = (
    ApiToken("ci", Secret(OPERATOR), "operator"),
    ApiToken("product", Secret(VIEWER), "viewer"),
    ApiToken("qa-team", Secret(QA), "qa"),
)
SHA1 = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
KEY = StagingKey("github", REPO_ID, 2)
REF = f"github:{REPO}#2"
PATH = "/api/stagings/" + quote(REF, safe="")
SECRET_VALUE = "sk_live_never-show-this-42"
PREFIX = "stagingbot-test"


def api_config(redis_url: str, **sections: Any) -> Config:
    config = make_config(
        redis_url,
        api=ApiConfig(TOKENS),
        commands=CommandsConfig(secret_keys=("STRIPE_KEY",)),
    )
    return replace(config, **sections)


@pytest.fixture
async def bot(redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(api_config(redis_url)) as client:
        yield client


class client_for:  # noqa: N801 - used like a function
    """The real app, its lifespan run, behind an httpx client."""

    def __init__(self, config: Config) -> None:
        self.app = create_app(config)

    async def __aenter__(self) -> httpx.AsyncClient:
        self.lifespan = self.app.router.lifespan_context(self.app)
        await self.lifespan.__aenter__()
        transport = httpx.ASGITransport(app=self.app)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://bot")
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
        await self.lifespan.__aexit__(None, None, None)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def opened(client: httpx.AsyncClient, payload: dict[str, Any] | None = None) -> None:
    body = body_of(payload or pr_payload("opened"))
    response = await client.post(
        "/webhooks/github", content=body, headers=signed_headers(body, "pull_request")
    )
    assert response.status_code == 202, response.text


async def store_of(redis_url: str) -> tuple[Redis, Store]:
    redis = Redis.from_url(redis_url)
    return redis, Store(redis, PREFIX)


async def running(redis_url: str, **fields: str) -> None:
    """What the worker writes once the staging runs."""
    redis, store = await store_of(redis_url)
    await store.update(
        KEY,
        {
            "phase": "running",
            "sha": SHA1,
            "staging_url": "https://hello-world-pr-2.staging.example.com/",
            "namespace": "staging-hello-world-pr-2",
            **fields,
        },
    )
    await redis.aclose()


async def fields(redis_url: str) -> dict[str, str]:
    redis, store = await store_of(redis_url)
    record = await store.load(KEY)
    await redis.aclose()
    assert record is not None
    return dict(record.fields)


async def history(redis_url: str) -> list[dict[str, Any]]:
    redis, store = await store_of(redis_url)
    entries = await store.history(KEY)
    await redis.aclose()
    return entries


async def queued_jobs(redis_url: str) -> set[str]:
    redis = Redis.from_url(redis_url)
    jobs = {member.decode() for member in await redis.zrange(queue.queue_name(PREFIX), 0, -1)}
    await redis.aclose()
    return jobs


# --- authentication ----------------------------------------------------------------------


async def test_without_tokens_everything_but_the_description_is_401_saying_how_to_add_one(
    redis_url: str,
) -> None:
    async with client_for(make_config(redis_url)) as client:
        listed = await client.get("/api/stagings", headers=auth(OPERATOR))
        described = await client.get("/api/openapi.json")

    assert listed.status_code == 401
    assert "[[api.tokens]]" in listed.json()["error"]
    assert listed.headers["www-authenticate"] == "Bearer"
    assert described.status_code == 200 and described.json()["openapi"] == "3.1.0"


@pytest.mark.parametrize(
    "headers",
    [{}, auth("wrong-token-0123456789"), {"Authorization": f"Basic {OPERATOR}"}, auth("")],
)
async def test_a_missing_or_wrong_token_is_401_with_a_json_error(
    bot: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await bot.get("/api/stagings", headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "bearer token" in response.json()["error"]


@pytest.mark.parametrize("token", [VIEWER, QA])
async def test_viewers_and_qa_may_read_but_not_act(
    bot: httpx.AsyncClient, redis_url: str, token: str
) -> None:
    await opened(bot)
    assert (await bot.get(PATH, headers=auth(token))).status_code == 200
    for method, path in [
        ("POST", f"{PATH}/deploy"),
        ("PUT", f"{PATH}/overrides/FOO"),
        ("DELETE", f"{PATH}/overrides/FOO"),
        ("POST", "/api/sweep"),
    ]:
        response = await bot.request(method, path, headers=auth(token), json={"value": "x"})
        assert response.status_code == 403, (method, path)
        assert "operator role" in response.json()["error"]
    assert plan.DECISION not in await fields(redis_url)


# --- reading -----------------------------------------------------------------------------


async def test_the_list_is_filtered_by_host_repository_state_and_search(
    bot: httpx.AsyncClient, redis_url: str
) -> None:
    await opened(bot)
    await running(redis_url)

    async def refs(**params: str) -> list[str]:
        response = await bot.get("/api/stagings", params=params, headers=auth(VIEWER))
        assert response.status_code == 200
        return [item["ref"] for item in response.json()["stagings"]]

    assert await refs() == [REF]
    assert await refs(host="github", repo=REPO.lower(), state="running") == [REF]
    assert await refs(q="changes") == [REF]  # the branch
    assert await refs(q="readme") == [REF]  # the title
    assert await refs(host="gitlab") == []
    assert await refs(state="failed") == []
    assert await refs(q="no-such-branch") == []


async def test_a_staging_shows_its_summary_overrides_with_secrets_masked_and_history(
    bot: httpx.AsyncClient, redis_url: str
) -> None:
    await opened(bot)
    overrides = plan.encode_overrides({"GREETING": "hello", "STRIPE_KEY": SECRET_VALUE})
    await running(redis_url, **{plan.OVERRIDES: overrides})
    await bot.post(f"{PATH}/redeploy", headers=auth(OPERATOR))
    await bot.post(f"{PATH}/archive", headers=auth(OPERATOR))

    response = await bot.get(PATH, headers=auth(VIEWER))

    staging = response.json()
    assert response.status_code == 200
    assert {k: staging[k] for k in ("ref", "host", "repo", "number", "state", "sha")} == {
        "ref": REF,
        "host": "github",
        "repo": REPO,
        "number": 2,
        "state": "running",
        "sha": SHA1,
    }
    assert staging["url"] == "https://hello-world-pr-2.staging.example.com/"
    assert staging["pr_url"] == f"https://github.com/{REPO}/pull/2"
    assert staging["branch"] == "changes" and staging["author"] == "Codertocat"
    assert isinstance(staging["updated_at"], float)
    assert staging["overrides"] == {"GREETING": "hello", "STRIPE_KEY": "**********"}
    assert [e["action"] for e in staging["history"]] == ["archive via API", "redeploy via API"]
    assert staging["namespace"] == "staging-hello-world-pr-2"
    assert SECRET_VALUE not in response.text


async def test_hidden_details_are_shown_to_operators_only(redis_url: str) -> None:
    config = api_config(redis_url, dashboard=DashboardConfig(show_details=False))
    async with client_for(config) as client:
        await opened(client)
        await running(redis_url, reason="image cannot be pulled: registry.internal/x")
        as_viewer = (await client.get(PATH, headers=auth(VIEWER))).json()
        as_operator = (await client.get(PATH, headers=auth(OPERATOR))).json()

    assert as_viewer["namespace"] is None and as_viewer["reason"] is None
    assert as_operator["namespace"] == "staging-hello-world-pr-2"
    assert "registry.internal" in as_operator["reason"]


async def test_hidden_details_include_the_output_of_control_scripts(redis_url: str) -> None:
    config = api_config(redis_url, dashboard=DashboardConfig(show_details=False))
    async with client_for(config) as client:
        await opened(client)
        redis, store = await store_of(redis_url)
        entry = {"at": 1.0, "action": "deploy", "result": "failed", "sha": SHA1, "by": "x"}
        await store.add_history(KEY, {**entry, "output": "db password=hunter2-internal"})
        await redis.aclose()
        as_viewer = await client.get(PATH, headers=auth(VIEWER))
        as_operator = (await client.get(PATH, headers=auth(OPERATOR))).json()

    assert "hunter2-internal" not in as_viewer.text
    assert any("hunter2-internal" in e.get("output", "") for e in as_operator["history"])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/stagings/" + quote(f"github:{REPO}#3", safe="")),
        ("GET", "/api/stagings/" + quote("github:someone/else#2", safe="")),
        ("GET", "/api/stagings/" + quote(f"gitlab:{REPO}!2", safe="")),
        ("GET", "/api/stagings/not-a-ref"),
        ("POST", "/api/stagings/" + quote(f"github:{REPO}#3", safe="") + "/deploy"),
        ("POST", "/api/stagings/" + quote(f"github:{REPO}#2", safe="") + "/frobnicate"),
        ("GET", "/api/nothing-here"),
    ],
)
async def test_an_unknown_staging_or_endpoint_is_404_json(
    bot: httpx.AsyncClient, method: str, path: str
) -> None:
    await opened(bot)
    response = await bot.request(method, path, headers=auth(OPERATOR))

    assert response.status_code == 404
    assert "error" in response.json()


async def test_a_reference_is_found_by_its_repository_name_in_any_case_and_unencoded_slash(
    bot: httpx.AsyncClient,
) -> None:
    await opened(bot)
    path = "/api/stagings/github:" + REPO.upper() + "%232"

    response = await bot.get(path, headers=auth(VIEWER))

    assert response.status_code == 200 and response.json()["ref"] == REF


# --- actions -----------------------------------------------------------------------------


async def test_deploy_writes_the_desired_state_bumps_the_generation_queues_and_records_who(
    bot: httpx.AsyncClient, redis_url: str
) -> None:
    await opened(bot)
    before = int((await fields(redis_url))["generation"])

    response = await bot.post(f"{PATH}/deploy", headers=auth(OPERATOR))

    assert response.status_code == 202
    assert response.json() == {"ref": REF, "action": "deploy", "accepted": True}
    after = await fields(redis_url)
    assert after[plan.DECISION] == "" and int(after["generation"]) == before + 1
    assert plan.FORCED not in after  # the rules give this request a staging anyway
    assert queue.job_id(KEY) in await queued_jobs(redis_url)
    (entry, *_) = await history(redis_url)
    assert entry["by"] == "ci" and entry["action"] == "deploy via API"
    assert entry["result"] == "accepted" and entry["sha"] == SHA1


def fork_opened() -> dict[str, Any]:
    payload = pr_payload("opened")
    payload["pull_request"]["head"]["repo"] = {
        **payload["pull_request"]["head"]["repo"],
        "id": 99,
        "full_name": "mallory/Hello-World",
    }
    return payload


async def test_an_operators_deploy_of_a_fork_approves_its_head(
    bot: httpx.AsyncClient, redis_url: str
) -> None:
    await opened(bot, fork_opened())
    assert (await fields(redis_url))["fork"] == "1"

    response = await bot.post(f"{PATH}/deploy", headers=auth(OPERATOR))

    assert response.status_code == 202
    stored = await fields(redis_url)
    assert stored[plan.APPROVED_SHA] == SHA1 and stored[plan.APPROVED_BY] == "ci"
    assert (await history(redis_url))[0]["result"] == f"approved via API by ci ({SHA1[:7]})"


async def test_saying_a_fork_commit_is_built_does_not_approve_it(
    bot: httpx.AsyncClient, redis_url: str
) -> None:
    # `deploy --sha` is what CI calls after building, and CI builds a fork's code too.
    await opened(bot, fork_opened())
    generation = (await fields(redis_url))["generation"]

    response = await bot.post(f"{PATH}/deploy", headers=auth(OPERATOR), json={"sha": SHA1})

    assert response.status_code == 409
    assert "comes from a fork and is not approved" in response.json()["error"]
    stored = await fields(redis_url)
    assert plan.APPROVED_SHA not in stored and stored["generation"] == generation
    approved = await bot.post(f"{PATH}/deploy", headers=auth(OPERATOR))
    assert approved.status_code == 202
    built = await bot.post(f"{PATH}/deploy", headers=auth(OPERATOR), json={"sha": SHA1})
    assert built.status_code == 202  # approved first: now its build may deploy it
    assert (await fields(redis_url))["built_sha"] == SHA1


async def test_a_deploy_naming_another_commit_is_refused_as_a_rollback(
    bot: httpx.AsyncClient, redis_url: str
) -> None:
    await opened(bot)
    generation = (await fields(redis_url))["generation"]

    other = await bot.post(f"{PATH}/deploy", headers=auth(OPERATOR), json={"sha": "b" * 40})
    short = await bot.post(f"{PATH}/deploy", headers=auth(OPERATOR), json={"sha": SHA1[:7]})
    broken = await bot.post(f"{PATH}/deploy", headers=auth(OPERATOR), content=b"{not json")

    assert other.status_code == 409 and "never rolls back" in other.json()["error"]
    assert short.status_code == 422 and "40 hexadecimal" in short.json()["error"]
    assert broken.status_code == 400 and broken.json()["error"] == "body is not valid JSON"
    assert (await fields(redis_url))["generation"] == generation
    assert await history(redis_url) == []


async def test_deploy_overrides_the_rules_only_when_they_skip_the_request(
    redis_url: str,
) -> None:
    config = api_config(redis_url)
    config = replace(config, staging=replace(config.staging, require_label="staging"))
    async with client_for(config) as client:
        await opened(client)
        response = await client.post(f"{PATH}/deploy", headers=auth(OPERATOR))

    assert response.status_code == 202
    assert (await fields(redis_url))[plan.FORCED] == "1"


async def test_archive_restore_and_destroy_follow_the_staging_state(
    bot: httpx.AsyncClient, redis_url: str
) -> None:
    await opened(bot)

    nothing = await bot.post(f"{PATH}/archive", headers=auth(OPERATOR))
    not_archived = await bot.post(f"{PATH}/restore", headers=auth(OPERATOR))
    assert nothing.status_code == 409 and "no staging to archive" in nothing.json()["error"]
    assert not_archived.status_code == 409 and "not archived" in not_archived.json()["error"]

    await running(redis_url)
    assert (await bot.post(f"{PATH}/archive", headers=auth(OPERATOR))).status_code == 202
    stored = await fields(redis_url)
    assert stored[plan.DECISION] == plan.ARCHIVE and stored[plan.DECISION_BY] == "ci"
    assert (await bot.post(f"{PATH}/restore", headers=auth(OPERATOR))).status_code == 202
    assert (await fields(redis_url))[plan.DECISION] == ""

    assert (await bot.post(f"{PATH}/destroy", headers=auth(OPERATOR))).status_code == 202
    stored = await fields(redis_url)
    assert stored[plan.DECISION] == plan.DESTROY and stored[plan.DECISION_SHA] == SHA1
    assert [e["action"] for e in await history(redis_url)] == [
        "destroy via API",
        "restore via API",
        "archive via API",
    ]


async def test_redeploy_sets_a_new_token_each_time(bot: httpx.AsyncClient, redis_url: str) -> None:
    await opened(bot)
    await bot.post(f"{PATH}/redeploy", headers=auth(OPERATOR))
    first = (await fields(redis_url))[plan.REDEPLOY_TOKEN]
    await bot.post(f"{PATH}/redeploy", headers=auth(OPERATOR))

    assert first.startswith("api-") and (await fields(redis_url))[plan.REDEPLOY_TOKEN] != first


async def test_a_closed_request_cannot_be_deployed(bot: httpx.AsyncClient) -> None:
    await opened(bot)
    await opened(bot, pr_payload("closed"))

    response = await bot.post(f"{PATH}/deploy", headers=auth(OPERATOR))

    assert response.status_code == 409 and "closed" in response.json()["error"]


# --- overrides ---------------------------------------------------------------------------


async def test_an_override_is_set_and_removed_through_the_desired_state(
    bot: httpx.AsyncClient, redis_url: str
) -> None:
    await opened(bot)
    generation = int((await fields(redis_url))["generation"])

    put = await bot.put(f"{PATH}/overrides/GREETING", headers=auth(OPERATOR), json={"value": "hi"})

    assert put.status_code == 200 and put.json() == {"key": "GREETING", "secret": False}
    stored = await fields(redis_url)
    assert plan.overrides(stored) == {"GREETING": "hi"}
    assert int(stored["generation"]) == generation + 1
    assert queue.job_id(KEY) in await queued_jobs(redis_url)
    entry = (await history(redis_url))[0]
    assert entry["action"] == "set GREETING via API" and entry["by"] == "ci"

    deleted = await bot.delete(f"{PATH}/overrides/GREETING", headers=auth(OPERATOR))
    again = await bot.delete(f"{PATH}/overrides/GREETING", headers=auth(OPERATOR))

    assert deleted.status_code == 204 and deleted.content == b""
    assert plan.overrides(await fields(redis_url)) == {}
    assert again.status_code == 404 and "GREETING is not set" in again.json()["error"]


@pytest.mark.parametrize(
    ("key", "body", "status", "error"),
    [
        ("lower", {"value": "x"}, 422, "keys are upper case"),
        ("1ABC", {"value": "x"}, 422, "not a valid key"),
        ("GREETING", {"value": "two\nlines"}, 422, "control character U+000A"),
        ("GREETING", {"value": "x" * 1025}, 422, "at most 1024"),
        ("GREETING", {"value": 3}, 422, '{"value": "<text>"}'),
        ("GREETING", {}, 422, '{"value": "<text>"}'),
        ("GREETING", [1], 400, "JSON object"),
    ],
)
async def test_an_invalid_override_is_refused_with_the_reason_and_changes_nothing(
    bot: httpx.AsyncClient,
    redis_url: str,
    key: str,
    body: object,
    status: int,
    error: str,
) -> None:
    await opened(bot)

    response = await bot.put(f"{PATH}/overrides/{key}", headers=auth(OPERATOR), json=body)

    assert response.status_code == status
    assert error in response.json()["error"]
    assert SECRET_VALUE not in response.text
    assert plan.OVERRIDES not in await fields(redis_url)


# --- sweep, description, failures ----------------------------------------------------------


async def test_a_sweep_is_queued_once_under_the_crons_job_id(
    bot: httpx.AsyncClient, redis_url: str
) -> None:
    first = await bot.post("/api/sweep", headers=auth(OPERATOR))
    second = await bot.post("/api/sweep", headers=auth(OPERATOR))

    assert first.status_code == 202 and first.json() == {"queued": True, "already_queued": False}
    assert second.status_code == 202 and second.json()["already_queued"] is True
    assert await queued_jobs(redis_url) == {queue.sweep_job_id(PREFIX)}


async def test_the_description_lists_exactly_the_routes_and_methods(
    bot: httpx.AsyncClient, redis_url: str
) -> None:
    """Every operation described answers (no 404 for a missing route, no 405), and every
    method not described is 405, so the description and the routes cannot drift apart."""
    await opened(bot)
    await running(redis_url)
    spec = (await bot.get("/api/openapi.json")).json()
    values = {"{ref}": quote(REF, safe=""), "{action}": "extend", "{key}": "GREETING"}
    for template, operations in spec["paths"].items():
        path = template
        for name, value in values.items():
            path = path.replace(name, value)
        for method in ("get", "post", "put", "delete", "patch"):
            response = await bot.request(method, path, headers=auth(OPERATOR), json={"value": "x"})
            if method in operations:
                documented = operations[method]["responses"]
                assert str(response.status_code) in documented, (method, template, response.text)
            else:
                assert response.status_code == 405, (method, template)
                assert "error" in response.json()


async def test_redis_down_is_503_json_never_500(redis_url: str) -> None:
    config = api_config("redis://127.0.0.1:1/0")
    async with client_for(config) as client:
        listed = await client.get("/api/stagings", headers=auth(VIEWER))
        shown = await client.get(PATH, headers=auth(VIEWER))
        swept = await client.post("/api/sweep", headers=auth(OPERATOR))

    for response in (listed, shown, swept):
        assert response.status_code == 503
        assert "unavailable" in response.json()["error"]


async def test_no_body_ever_holds_a_token_or_a_secret_value(
    bot: httpx.AsyncClient, redis_url: str
) -> None:
    await opened(bot)
    await running(redis_url, **{plan.OVERRIDES: json.dumps({"STRIPE_KEY": SECRET_VALUE})})
    texts = [
        (await bot.get("/api/stagings", headers=auth(OPERATOR))).text,
        (await bot.get(PATH, headers=auth(OPERATOR))).text,
        (await bot.get("/api/stagings", headers=auth("wrong-token-0123456789"))).text,
        (await bot.post(f"{PATH}/extend", headers=auth(OPERATOR))).text,
    ]
    for text in texts:
        for secret in (OPERATOR, VIEWER, QA, SECRET_VALUE):
            assert secret not in text
