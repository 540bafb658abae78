"""Running the bot: start-up checks that say clearly what is missing, then web and/or worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import uvicorn
from redis.exceptions import RedisError

from bot import logs, metrics
from bot.config import Config, uses_github, uses_gitlab
from bot.web import create_app, redis_client

log = logging.getLogger("stagingbot")


def safe_url(url: str) -> str:
    """A URL fit for a log line: any password in it replaced."""
    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:****@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: `serve` stops web and worker together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def check_redis(config: Config) -> bool:
    client = redis_client(config)
    try:
        await client.ping()
        return True
    except (RedisError, OSError) as exc:
        log.error(
            "Redis is not reachable at %s (%s). stagingbot keeps its queue and state there: "
            "start one (e.g. `redis-server`) or set redis.url / STAGINGBOT_REDIS_URL.",
            safe_url(config.redis.url),
            type(exc).__name__,
        )
        return False
    finally:
        await client.aclose(close_connection_pool=True)


def _reachable(url: str) -> str:
    try:
        urllib.request.urlopen(url, timeout=3).close()  # noqa: S310 - operator-configured URL
    except urllib.error.HTTPError:
        return ""  # it answered: reachable
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))
    return ""


async def check_hosts(config: Config) -> None:
    """Say at start-up which Git host cannot be reached (the bot still runs and retries)."""
    if config.offline:
        return  # no host is called
    hosts = []
    if uses_github(config):
        hosts.append(("GitHub API", config.github.api_url, "github.api_url for GitHub Enterprise"))
    if uses_gitlab(config):
        hosts.append(("GitLab", config.gitlab.url, "gitlab.url for a self-managed GitLab"))
    for name, url, setting in hosts:
        problem = await asyncio.to_thread(_reachable, url)
        if problem:
            log.warning(
                "%s not reachable at %s (%s): webhooks are accepted and stagings wait, "
                "retrying, until it is. Set %s.",
                name,
                url,
                problem,
                setting,
            )


def web_server_config(config: Config) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(config),
        host=config.server.host,
        port=config.server.port,
        log_config=None,
        access_log=False,
        server_header=False,
        # The peer address stays the connection's: dashboard.proxy_addresses is checked
        # against it, and X-Forwarded-For (anyone can send one) must never replace it.
        proxy_headers=False,
    )


async def serve(config: Config, *, web: bool, worker: bool) -> int:
    logs.setup(config.log.level, config.log.format)
    if config.offline:
        from bot.hosts.offline import STARTUP

        log.warning(STARTUP)
    if not await check_redis(config):
        return 1
    stop_metrics = None
    if worker and not web and config.metrics.worker_port:
        # A worker of its own has counters the web app cannot see (docs/metrics.md).
        stop_metrics = start_worker_metrics(config)
        if stop_metrics is None:
            return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks: list[asyncio.Task[None]] = []
    server: uvicorn.Server | None = None
    if web:
        server = _Server(web_server_config(config))
        tasks.append(asyncio.create_task(server.serve()))
        log.info(
            "webhook receiver on http://%s:%d/webhooks/github and /webhooks/gitlab",
            config.server.host,
            config.server.port,
        )
    if worker:
        tasks.append(asyncio.create_task(run_worker(config, stop)))
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([*tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    if stop_metrics is not None:
        stop_metrics()
    if server is not None:
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    waiter.cancel()
    return 0


def start_worker_metrics(config: Config) -> Callable[[], None] | None:
    """Serve the worker's metrics; None (and why, logged) when the port cannot be bound."""
    host, port = config.server.host, config.metrics.worker_port
    try:
        stop = metrics.serve_worker_metrics(host, port)
    except OSError as exc:
        log.error("cannot serve worker metrics on %s:%d (metrics.worker_port): %s", host, port, exc)
        return None
    log.info("worker metrics on http://%s:%d/metrics", host, port)
    return stop


async def run_worker(config: Config, stop: asyncio.Event) -> None:
    from bot.worker import build_services, close_services, make_worker, stop_worker

    await check_hosts(config)
    redis = redis_client(config)
    services = await build_services(config, redis)
    worker = make_worker(config, redis_client(config), services, handle_signals=False)
    task = asyncio.create_task(worker.async_run())
    log.info("worker started (queue %s)", worker.queue_name)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    await stop_worker(worker, task)
    await close_services(services)
    await redis.aclose(close_connection_pool=True)
