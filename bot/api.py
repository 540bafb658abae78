"""The JSON API: list and show stagings, act on them, set overrides, queue a sweep.

Bearer tokens from the config decide who may do what (`bot.tokens`); every action takes
the desired-state path of webhooks and slash-commands (`bot.steering`). Every error is
JSON `{"error": ...}`; bad input is never a 500, and no body holds a secret value.
The routes are described in `bot.openapi` (tests keep the two in step).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, Route

from bot import openapi, queue, stagings, tokens
from bot.config import Config
from bot.lifecycle import EXTENDED_UNTIL
from bot.steering import ACTIONS, QA_ACTIONS, Refused, Steering, check_duration, check_sha
from bot.store import StagingRecord, Store
from bot.tokens import OPERATOR, QA, VIEWER, Caller
from bot.web import BodyTooLarge, error, read_body

log = logging.getLogger("stagingbot.api")

MAX_BODY = 1024 * 1024  # room for a value of commands.max_value_length (65536) escaped
_PATH = re.compile(r"(?P<ref>[^/]+?:.+?[#!]\d+)(?:/(?P<tail>.*))?", re.DOTALL)
UNKNOWN_STAGING = "no staging {ref}"
BAD_REF = "{ref} is not a staging reference like github:owner/repo#12 or gitlab:group/project!12"
REDIS_DOWN = "state store unavailable, try again later"
BAD_OVERRIDE = 'the body must be {"value": "<text>"}, optionally with "secret": true'
PLAIN_KEY = (
    "{key} is not one of commands.secret_keys: as a plain override any viewer could read it; "
    "add it to commands.secret_keys first"
)

Handler = Callable[[Request, StagingRecord, Caller], Awaitable[Response]]


def unauthorized(message: str) -> JSONResponse:
    return error(401, message, **{"WWW-Authenticate": "Bearer"})


def authenticate(request: Request, role: str) -> Caller | Response:
    """The caller, or the 401/403 answer refusing the request."""
    config: Config = request.app.state.config
    if not config.api.tokens:
        return unauthorized(tokens.NO_TOKENS)
    caller = tokens.caller_of(config, tokens.bearer(request.headers.get("authorization")))
    if caller is None:
        return unauthorized(tokens.BAD_TOKEN)
    if not caller.may(role):
        return error(403, tokens.NEEDS_ROLE.format(role=role, name=caller.name, has=caller.role))
    return caller


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object; an empty body is `{}`."""
    try:
        body = await read_body(request, MAX_BODY)
    except BodyTooLarge:
        raise Refused(413, f"body larger than {MAX_BODY} bytes") from None
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise Refused(400, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise Refused(400, "body must be a JSON object")
    return data


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi.SPEC)


async def list_stagings(request: Request) -> Response:
    caller = authenticate(request, VIEWER)
    if isinstance(caller, Response):
        return caller
    params = request.query_params
    wanted = [params.get(name, "") for name in ("host", "repo", "state", "q")]
    try:
        found = await stagings.load_all(request.app.state.store)
    except RedisError as exc:
        return redis_down(request, exc)
    return JSONResponse(
        {"stagings": [item for _, item in found if stagings.matches(item, *wanted)]}
    )


async def staging(request: Request) -> Response:
    """Everything under /api/stagings/{ref}: the path is split here, as a reference holds
    `/` (URL-encoded or not) and ends in `#N` or `!N`."""
    match = _PATH.fullmatch(request.path_params["rest"])
    if match is None:
        return error(404, BAD_REF.format(ref=json.dumps(request.path_params["rest"][:200])))
    tail, method = match["tail"], request.method
    if tail is None and method == "GET":
        return await _with_staging(request, match["ref"], VIEWER, _show)
    if tail in ACTIONS and method == "POST":
        return await _with_staging(request, match["ref"], OPERATOR, _act(tail))
    if tail in QA_ACTIONS and method == "POST":
        return await _with_staging(request, match["ref"], QA, _sign_off(tail))
    if tail is not None and tail.startswith("overrides/") and method in ("PUT", "DELETE"):
        return await _with_staging(request, match["ref"], OPERATOR, _override(tail[10:]))
    if tail is None or tail in ACTIONS or tail in QA_ACTIONS or tail.startswith("overrides/"):
        return error(405, f"{method} is not allowed here")
    return error(404, f"no such endpoint: {tail[:100]!r}")


def redis_down(request: Request, exc: RedisError) -> Response:
    log.error(
        "redis unavailable for %s %s: %s", request.method, request.url.path, type(exc).__name__
    )
    return error(503, REDIS_DOWN, **{"Retry-After": "10"})


async def _with_staging(request: Request, ref: str, role: str, handler: Handler) -> Response:
    caller = authenticate(request, role)
    if isinstance(caller, Response):
        return caller
    store: Store = request.app.state.store
    try:
        record = await stagings.resolve(store, ref)
        if record is None:
            if stagings.Ref.parse(ref) is None:
                return error(404, BAD_REF.format(ref=json.dumps(ref[:200])))
            return error(404, UNKNOWN_STAGING.format(ref=ref))
        response: Response = await handler(request, record, caller)
        return response
    except Refused as refused:
        return error(refused.status, refused.reason)
    except LookupError:
        return error(404, UNKNOWN_STAGING.format(ref=ref))
    except RedisError as exc:
        return redis_down(request, exc)


async def _show(request: Request, record: StagingRecord, caller: Caller) -> Response:
    store: Store = request.app.state.store
    history = await store.history(record.key)
    config: Config = request.app.state.config
    return JSONResponse(stagings.detail(record, history, config, operator=caller.operator))


def _act(action: str) -> Handler:
    async def handler(request: Request, record: StagingRecord, caller: Caller) -> Response:
        body = await json_body(request)
        sha = check_sha(body) if action == "deploy" else ""
        duration = check_duration(body) if action == "extend" else None
        decision = await steering_of(request).act(record.key, action, caller, sha, duration)
        ref = str(stagings.ref_of(record))
        answer: dict[str, Any] = {"ref": ref, "action": action, "accepted": True}
        if action == "extend":  # no idle sleep (archived: no removal) before then
            answer["until"] = float(decision.changes[EXTENDED_UNTIL])
        return JSONResponse(answer, status_code=202)

    return handler


def _sign_off(action: str) -> Handler:
    async def handler(request: Request, record: StagingRecord, caller: Caller) -> Response:
        note = (await json_body(request)).get("note")
        if note is not None and not isinstance(note, str):
            raise Refused(422, 'the body must be {"note": "<text>"}')
        await steering_of(request).sign_off(record.key, action, note or "", caller)
        ref = str(stagings.ref_of(record))
        return JSONResponse({"ref": ref, "action": action, "accepted": True}, status_code=202)

    return handler


def _override(key: str) -> Handler:
    async def handler(request: Request, record: StagingRecord, caller: Caller) -> Response:
        if request.method == "DELETE":
            await steering_of(request).override(record.key, key, None, caller)
            return Response(status_code=204)
        body = await json_body(request)
        value, wanted = body.get("value"), body.get("secret", False)
        if not isinstance(value, str) or not isinstance(wanted, bool):
            raise Refused(422, BAD_OVERRIDE)
        secret = key in request.app.state.config.commands.secret_keys
        if wanted and not secret:  # refused before the value is kept in the clear
            raise Refused(422, PLAIN_KEY.format(key=key))
        await steering_of(request).override(record.key, key, value, caller)
        return JSONResponse({"key": key, "secret": secret})

    return handler


def steering_of(request: Request) -> Steering:
    state = request.app.state
    return Steering(state.store, state.redis, state.config)


async def sweep(request: Request) -> Response:
    caller = authenticate(request, OPERATOR)
    if isinstance(caller, Response):
        return caller
    config: Config = request.app.state.config
    try:
        new = await queue.enqueue_sweep(request.app.state.redis, config.redis.key_prefix)
    except RedisError as exc:
        return redis_down(request, exc)
    log.info("sweep asked for by %s", caller.name, extra={"queued": new})
    return JSONResponse({"queued": True, "already_queued": not new}, status_code=202)


async def not_found(request: Request) -> Response:
    """The catch-all under /api/: 405 where another route has the path but not the method."""
    for route in request.app.router.routes:
        ours = isinstance(route, Route) and route.endpoint is not not_found
        if ours and route.matches(request.scope)[0] is Match.PARTIAL:
            return error(405, f"{request.method} is not allowed here")
    return error(404, f"no such endpoint: {request.url.path[:200]}")


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405: JSON under /api/, plain text elsewhere as before."""
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        return error(exc.status_code, exc.detail)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


def routes() -> list[BaseRoute]:
    every = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return [
        Route("/api/openapi.json", openapi_json, methods=["GET"]),
        Route("/api/stagings", list_stagings, methods=["GET"]),
        Route("/api/sweep", sweep, methods=["POST"]),
        Route("/api/stagings/{rest:path}", staging, methods=every),
        Route("/api/{rest:path}", not_found, methods=every),
    ]


EXCEPTION_HANDLERS = {HTTPException: http_error}
