"""The arq worker: reconcile jobs, with the clients built once at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
from typing import Any

from arq import cron, func
from arq.connections import ArqRedis
from arq.cron import CronJob
from arq.worker import Worker

from bot import metrics, queue
from bot.config import Config, uses_github, uses_gitlab
from bot.errors import TemporaryError
from bot.hosts.base import GitHost
from bot.provision.base import Provisioner
from bot.provision.lazy import LazyProvisioner
from bot.schedule import cron_fields
from bot.services import Services
from bot.store import Store
from bot.sweep import sweep_job
from handlers.reconcile import reconcile

log = logging.getLogger("stagingbot.worker")

# Poll often: a queued job's wait is the bot's first-feedback latency (arq's default is 0.5 s).
POLL_DELAY = 0.05
# Retries are the job's own Retry(defer=...) for rollout checks and backoff: never give up on them.
MAX_TRIES = 1_000_000
# arq keeps a started job marked in progress for the longest function timeout + 10 s, and
# no other worker takes it until then: a worker killed mid-job (OOM, a node lost) delays its
# stagings by that much. Rounds take well under a second; keep the timeouts short.
JOB_TIMEOUT = 120
# Jobs are short (a rollout is never waited for in a job): let running ones finish on shutdown.
SHUTDOWN_GRACE = 20.0
# A sweep lists every repository's open requests (1,000 stagings: about 2 s, see
# docs/benchmarks.md); longer would only lengthen the in-progress mark above.
SWEEP_TIMEOUT = 120


async def build_services(config: Config, redis: ArqRedis) -> Services:
    """Every client a job needs, built once. Kubernetes connects on first use (and says
    clearly when it cannot), so the bot starts before a cluster is reachable."""
    from bot.hosts.github import GitHubHost
    from bot.provision import access
    from bot.provision.kubernetes import KubernetesProvisioner

    async def connect() -> Provisioner:
        provisioner = await KubernetesProvisioner.create(
            config.kubernetes.kubeconfig,
            config.kubernetes.context,
            state_namespace=config.kubernetes.state_namespace,
            access=access.from_config(
                config.kubernetes.staging_role, config.kubernetes.service_account
            ),
        )
        return provisioner

    provisioner: Provisioner
    if config.staging.provisioner == "command":
        from bot.provision.command import CommandProvisioner

        provisioner = CommandProvisioner.from_config(config, os.environ)
    else:
        provisioner = LazyProvisioner(connect, "Kubernetes")
        await warn_if_unreachable(provisioner)
    store = Store(redis, config.redis.key_prefix)
    hosts: dict[str, GitHost] = {}
    if config.offline:
        from bot.hosts.offline import OfflineHost

        hosts = {name: OfflineHost(store) for name in ("github", "gitlab")}
    if uses_github(config) and not config.offline:
        hosts["github"] = GitHubHost.from_config(config.github)
    if uses_gitlab(config) and not config.offline:
        from bot.hosts.gitlab import GitLabHost

        hosts["gitlab"] = GitLabHost.from_config(config.gitlab)
    return Services(config, store, redis, hosts, provisioner)


async def warn_if_unreachable(provisioner: LazyProvisioner) -> None:
    """Connect once at start-up, so a missing cluster is in the log from the first second."""
    with contextlib.suppress(TemporaryError):
        await provisioner.connect()


async def close_services(services: Services) -> None:
    for client in (services.provisioner, *services.hosts.values(), services.registry):
        close = getattr(client, "close", None)
        if close is not None:
            result = close()
            if inspect.isawaitable(result):
                await result


async def requeue_if_needed(ctx: dict[str, Any]) -> None:
    """After a job ends (and arq dropped its id), queue it again if an event came in meanwhile.

    An event whose enqueue was refused because this job still existed is picked up here:
    it bumped the generation before the refusal, and the job id is free now.
    """
    key = queue.key_of_job(ctx.get("job_id", ""))
    services: Services = ctx["services"]
    if key is not None and await services.store.needs_work(key):
        # Not expedited: a job that asked for a backoff (Retry) still exists, deferred, and
        # must keep its delay; only a job that really ended leaves the id free to queue.
        await queue.enqueue_reconcile(
            services.queue, services.config.redis.key_prefix, key, expedite=False
        )


def make_worker(
    config: Config,
    redis: ArqRedis,
    services: Services,
    *,
    burst: bool = False,
    handle_signals: bool = True,
    max_jobs: int = 10,
) -> Worker:
    """An arq worker over `redis` (which it closes when it closes) running reconcile jobs."""
    return Worker(
        [
            func(
                metrics.reconcile_job(reconcile),
                name=queue.RECONCILE,
                keep_result=0,
                max_tries=MAX_TRIES,
                timeout=job_timeout(config),
            ),
            # A sweep asked for through the API (the cron job of that name replaces this
            # one when the periodic sweep is on; both run under one fixed job id).
            func(
                sweep_job,
                name=queue.SWEEP,
                keep_result=0,
                max_tries=1,
                timeout=SWEEP_TIMEOUT,
            ),
        ],
        cron_jobs=sweep_schedule(config),
        queue_name=queue.queue_name(config.redis.key_prefix),
        redis_pool=redis,
        ctx={"services": services},
        after_job_end=requeue_if_needed,
        keep_result=0,  # with one job id per staging, a kept result would refuse the next enqueue
        poll_delay=POLL_DELAY,
        max_jobs=max_jobs,
        job_timeout=job_timeout(config),
        max_tries=MAX_TRIES,
        handle_signals=handle_signals,
        burst=burst,
        health_check_key=f"{config.redis.key_prefix}:health-check",
    )


def job_timeout(config: Config) -> float:
    """A reconcile round may run the `command` provisioner's restore, update, info and notify
    back to back: a job must outlast them, or it would be cancelled and run them again."""
    if config.staging.provisioner != "command":
        return JOB_TIMEOUT
    return JOB_TIMEOUT + 3 * config.command.timeout


def sweep_schedule(config: Config) -> list[CronJob]:
    """The sweep every `sweep.interval` on the clock, or nothing when it is 0.

    One fixed job id: however many workers there are, one sweep is queued at a time, and
    one still running when the next is due makes that one skip (arq refuses the id).
    """
    fields = cron_fields(config.sweep.interval)
    if fields is None:
        return []
    job = cron(
        sweep_job,
        name=queue.SWEEP,
        job_id=queue.sweep_job_id(config.redis.key_prefix),
        timeout=SWEEP_TIMEOUT,
        max_tries=1,
        keep_result=0,
        **fields,  # type: ignore[arg-type]  # second/minute/hour sets, checked by the loader
    )
    return [job]


async def stop_worker(
    worker: Worker, running: asyncio.Task[None], grace: float = SHUTDOWN_GRACE
) -> None:
    """Stop taking jobs, let running ones finish within `grace`, then close the worker.

    arq's own `close()` cancels running jobs and then fails on their cancellation; a job
    still running after `grace` is cancelled here instead, and arq runs it again later
    (every step of a reconcile is idempotent).
    """
    worker.allow_pick_jobs = False
    # A poll iteration already under way may be inside a Redis pipeline taking a job:
    # cancelled there, it leaves the pipeline's connection dangling. With picking off,
    # the next iterations open none, so one poll interval later cancelling is clean.
    await asyncio.sleep(worker.poll_delay_s + 0.1)
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    pending = [task for task in worker.tasks.values() if not task.done()]
    if pending:
        _, late = await asyncio.wait(pending, timeout=grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
    worker.tasks.clear()
    await worker.close()
