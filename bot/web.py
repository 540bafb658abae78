"""The webhook receiver: verify, parse, store the desired state, enqueue, answer 202.

It never calls a Git host or Kubernetes: the reconcile job does that.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator

from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot import build_intake, commands, metrics, metrics_scrape, queue, replies
from bot.config import Config
from bot.events import Event, Kind, MalformedPayload, decode_json
from bot.hosts import github_sansio, gitlab_sansio
from bot.store import Store, Update
from handlers.pull_request import desired_fields, first_fields

log = logging.getLogger("stagingbot.web")

MAX_DELIVERY_ID = 128  # GitHub sends a GUID; the id becomes part of a Redis key


class BodyTooLarge(Exception):
    pass


def error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def redis_client(config: Config) -> ArqRedis:
    pool = ConnectionPool.from_url(config.redis.url)
    return ArqRedis(pool, default_queue_name=queue.queue_name(config.redis.key_prefix))


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused past `limit` bytes (by Content-Length when given, else while read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def limited_body(request: Request, config: Config) -> bytes | Response:
    """The body, or the answer refusing it (413 past `server.max_body_bytes`)."""
    try:
        return await read_body(request, config.server.max_body_bytes)
    except BodyTooLarge:
        return error(413, f"body larger than {config.server.max_body_bytes} bytes")
    except ClientDisconnect:
        return error(400, "client disconnected")


async def github_webhook(request: Request) -> Response:
    config: Config = request.app.state.config
    body = await limited_body(request, config)
    if isinstance(body, Response):
        return body
    secret = config.github.webhook_secret.reveal().encode()
    if not github_sansio.verify_signature(secret, body, request.headers.get("x-hub-signature-256")):
        return error(401, "missing or invalid X-Hub-Signature-256")
    event_name = request.headers.get("x-github-event", "")
    delivery_id = request.headers.get("x-github-delivery", "")
    if not event_name or not delivery_id:
        return error(400, "X-GitHub-Event and X-GitHub-Delivery headers are required")
    if len(delivery_id) > MAX_DELIVERY_ID or len(event_name) > MAX_DELIVERY_ID:
        return error(
            400, f"X-GitHub-Event and X-GitHub-Delivery are limited to {MAX_DELIVERY_ID} characters"
        )
    try:
        payload = github_sansio.decode_body(body, request.headers.get("content-type", ""))
        delivery = github_sansio.parse_delivery(event_name, payload)
    except MalformedPayload as exc:
        return error(400, f"{event_name}: {exc}")
    if delivery.ping:
        return JSONResponse({"ok": True, "pong": True})
    if delivery.ignored:
        return JSONResponse({"ignored": delivery.ignored}, status_code=202)
    if delivery.builds:
        return await build_intake.accept(request, delivery_id, delivery.builds)
    return await accept(request, delivery_id, delivery.events)


async def gitlab_webhook(request: Request) -> Response:
    """GitLab: 401 for a wrong token, 400 for a body that is not JSON; anything else
    authentic is answered 2xx (with the reason when unused), as GitLab disables a hook
    that keeps failing."""
    config: Config = request.app.state.config
    body = await limited_body(request, config)
    if isinstance(body, Response):
        return body
    secret = config.gitlab.webhook_secret.reveal().encode()
    if not gitlab_sansio.verify_token(secret, request.headers.get("x-gitlab-token")):
        return error(401, "missing or invalid X-Gitlab-Token")
    hook = request.headers.get("x-gitlab-event", "")
    if not hook or len(hook) > MAX_DELIVERY_ID:
        return error(400, "X-Gitlab-Event header is required")
    try:
        payload = decode_json(body)
    except MalformedPayload as exc:
        return error(400, str(exc))
    try:
        delivery = gitlab_sansio.parse_delivery(hook, payload)
    except MalformedPayload as exc:
        log.warning("unusable GitLab delivery", extra={"hook": hook, "reason": str(exc)})
        return JSONResponse({"ignored": f"{hook}: {exc}"}, status_code=202)
    if delivery.ignored:
        return JSONResponse({"ignored": delivery.ignored}, status_code=202)
    identity = gitlab_sansio.delivery_id(request.headers, payload)[: MAX_DELIVERY_ID * 2]
    if delivery.builds:
        return await build_intake.accept(
            request, identity or f"none:{uuid.uuid4()}", delivery.builds
        )
    # Without Idempotency-Key or an event UUID, each delivery is new: the reconcile job
    # is idempotent, so a repeat costs a look at the merge request, never a second effect.
    return await accept(request, identity or f"none:{uuid.uuid4()}", delivery.events)


def unused(event: Event, config: Config) -> str:
    """Why the bot has nothing to do with this event, or "" when it does."""
    if config.repo(event.repo.host, event.repo.full_name) is None:
        return f"{event.repo.full_name} is not a repository this bot serves"
    if event.kind is Kind.COMMENT_CREATED:
        if replies.written_by_bot(event.comment_body):
            return "comment written by stagingbot"
        parsed = commands.parse(event.comment_body, config.commands.prefix)
        if not parsed.commands and not parsed.problems:
            return "comment holds no command"
    return ""


def update_for(event: Event, now: float, delivery: str = "") -> Update:
    """The desired state an event writes, and for a comment the command it queues.

    The delivery id is kept so the reconcile job's log lines name the webhook behind them.
    """
    command = None
    if event.kind is Kind.COMMENT_CREATED:
        command = {
            "id": str(event.comment_id),
            "body": event.comment_body,
            "author": event.sender,
            "sha": event.sha,  # GitLab says which head the comment saw; else the last known
            "at": f"{now:.3f}",
        }
    fields = desired_fields(event, now)
    if delivery:
        fields["last_delivery"] = delivery
    return Update(event.key, fields, command, first_fields(event))


async def accept(request: Request, delivery_id: str, events: tuple[Event, ...]) -> Response:
    """Store the desired state of the events this bot serves, then enqueue their reconciles."""
    config: Config = request.app.state.config
    served, ignored = [], []
    for event in events:
        reason = unused(event, config)
        if reason:
            ignored.append(reason)
        else:
            served.append(event)
    if not served:
        return JSONResponse({"ignored": "; ".join(ignored)}, status_code=202)
    store: Store = request.app.state.store
    now = time.time()
    updates = [update_for(event, now, delivery_id) for event in served]
    redis: ArqRedis = request.app.state.redis
    # Stored and enqueued in one script: the 202 means both. Enqueued for a duplicate too
    # (it expedites a waiting job); enqueueing is idempotent and coalesces.
    jobs = queue.reconcile_jobs(
        config.redis.key_prefix, [e.key for e in served], redis.job_serializer
    )
    try:
        fresh = await store.record_delivery(delivery_id, config.server.delivery_ttl, updates, jobs)
        if not fresh:
            return JSONResponse({"duplicate": delivery_id}, status_code=202)
    except RedisError as exc:
        log.error(
            "redis unavailable, delivery %s not accepted: %s",
            delivery_id,
            type(exc).__name__,
            extra={"delivery": delivery_id},
        )
        return error(503, "state store unavailable, redeliver later", **{"Retry-After": "10"})
    log.info(
        "accepted delivery",
        extra={
            "delivery": delivery_id,
            "staging": ",".join(str(e.key) for e in served),
            "events": ",".join(f"{e.kind}:{e.key}" for e in served),
        },
    )
    return JSONResponse({"accepted": [str(e.key) for e in served]}, status_code=202)


async def healthz(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def readyz(request: Request) -> Response:
    try:
        await request.app.state.redis.ping()
    except (RedisError, OSError) as exc:
        return error(503, f"redis unreachable: {type(exc).__name__}")
    return JSONResponse({"ok": True, "redis": "ok"})


def create_app(config: Config, redis: ArqRedis | None = None) -> Starlette:
    """The web app; `redis` is shared with an in-process worker when given, else built here."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = redis if redis is not None else redis_client(config)
        app.state.redis = client
        app.state.store = Store(client, config.redis.key_prefix)
        try:
            yield
        finally:
            if redis is None:
                await client.aclose(close_connection_pool=True)

    from bot import api, dashboard  # imported here: both build on this module

    app = Starlette(
        routes=[
            Route(
                "/webhooks/github",
                metrics.counted_delivery("github", github_webhook),
                methods=["POST"],
            ),
            Route(
                "/webhooks/gitlab",
                metrics.counted_delivery("gitlab", gitlab_webhook),
                methods=["POST"],
            ),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_scrape.endpoint, methods=["GET"]),
            *api.routes(),
            *dashboard.routes(),
        ],
        middleware=dashboard.middleware(config),
        exception_handlers=api.EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.config = config
    return app
