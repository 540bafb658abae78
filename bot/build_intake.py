"""The intake of finished builds: wake the stagings that wait for that commit's build.

A check run, check suite, status or workflow run (GitHub) or a pipeline (GitLab) names a
commit. The stagings waiting for it are found through `bot.build_index` (and the requests
a payload names), their generation bumped in the same Lua script as any delivery, and
their reconcile queued: the job asks the host whether the gate passed. The web app never
asks the host itself. Builds nobody waits for are answered 202 with the reason.
"""

from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot import build_index, queue
from bot.config import Config
from bot.events import BuildSignal
from bot.model import Phase, StagingKey
from bot.store import Store, Update

log = logging.getLogger("stagingbot.web")

WAITING = (Phase.WAITING_FOR_BUILD.value, Phase.BUILD_FAILED.value)


def unused(signal: BuildSignal, config: Config) -> str:
    """Why this build cannot open a gate of this bot, or "" when it may."""
    entry = config.repo(signal.repo.host, signal.repo.full_name)
    if entry is None:
        return f"{signal.repo.full_name} is not a repository this bot serves"
    wait_for = {name.casefold() for name in config.gate(entry).wait_for}
    if not wait_for:
        return f"{signal.event}: staging.wait_for is empty, no staging waits for a build"
    if signal.names and not wait_for & {name.casefold() for name in signal.names}:
        shown = ", ".join(signal.names[:5])
        return f"{signal.event}: {shown} is not in staging.wait_for"
    return ""


async def waiting(store: Store, signal: BuildSignal) -> list[StagingKey]:
    """The stagings waiting for the build of the signal's commit."""
    repo = signal.repo
    found = set(await build_index.waiting_on(store, repo.host, repo.id, signal.sha))
    named = [StagingKey(repo.host, repo.id, number) for number in signal.numbers]
    for key, record in (await store.load_many(named)).items():
        # Also when the index entry expired: the record says which commit it waits for.
        if record.get("phase") in WAITING and record.get(build_index.AWAITED_SHA) == signal.sha:
            found.add(key)
    return sorted(found)


async def accept(request: Request, delivery_id: str, signals: tuple[BuildSignal, ...]) -> Response:
    config: Config = request.app.state.config
    store: Store = request.app.state.store
    reasons = [reason for signal in signals if (reason := unused(signal, config))]
    wanted = [signal for signal in signals if not unused(signal, config)]
    now = time.time()
    try:
        updates = [
            Update(key, _fields(signal, now, delivery_id))
            for signal in wanted
            for key in await waiting(store, signal)
        ]
        if not updates:
            shas = ", ".join(signal.sha[:7] for signal in wanted)
            reasons += [f"no staging waits for the build of {shas}"] if wanted else []
            return JSONResponse({"ignored": "; ".join(reasons)}, status_code=202)
        jobs = queue.reconcile_jobs(
            config.redis.key_prefix,
            [update.key for update in updates],
            request.app.state.redis.job_serializer,
        )
        fresh = await store.record_delivery(delivery_id, config.server.delivery_ttl, updates, jobs)
    except RedisError as exc:
        log.error(
            "redis unavailable, build delivery %s not accepted: %s", delivery_id, type(exc).__name__
        )
        return JSONResponse(
            {"error": "state store unavailable, redeliver later"},
            status_code=503,
            headers={"Retry-After": "10"},
        )
    keys = [str(update.key) for update in updates]
    if not fresh:
        return JSONResponse({"duplicate": delivery_id}, status_code=202)
    log.info(
        "accepted build delivery",
        extra={"delivery": delivery_id, "staging": ",".join(keys), "events": wanted[0].event},
    )
    return JSONResponse({"accepted": keys}, status_code=202)


def _fields(signal: BuildSignal, now: float, delivery: str) -> dict[str, str]:
    """What a build writes: only that it happened (the job asks the host what it means)."""
    return {
        "last_event": signal.event,
        "last_sender": "",
        "event_at": f"{now:.3f}",
        "last_delivery": delivery,
    }
