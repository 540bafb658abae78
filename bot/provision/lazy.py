"""A provisioner that connects on first use, so the bot starts (and says why) without a cluster."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from bot.errors import ClusterError
from bot.model import ClusterStaging, Phase, Rollout, StagingKey, Target
from bot.provision.base import Provisioner, StepOutput
from bot.provision.decisions import Decision

log = logging.getLogger("stagingbot.provision")

RETRY_CONNECT = 30.0
NOT_CONNECTED = "the bot could not connect to it"  # on the request: never the details


class LazyProvisioner:
    """Builds the real provisioner when first needed, and again after a failed attempt.

    Until it can, every call raises `ClusterError` (temporary): stagings wait, retried with
    backoff, and the log says what is missing instead of the bot refusing to start.
    """

    def __init__(self, factory: Callable[[], Awaitable[Provisioner]], what: str) -> None:
        self._factory = factory
        self._what = what
        self._real: Provisioner | None = None
        self._failed_at = float("-inf")
        self._problem = ""
        self._lock = asyncio.Lock()

    async def connect(self) -> Provisioner:
        async with self._lock:
            if self._real is not None:
                return self._real
            if time.monotonic() - self._failed_at < RETRY_CONNECT:
                raise ClusterError(self._problem, RETRY_CONNECT, NOT_CONNECTED)
            try:
                self._real = await self._factory()
            except Exception as exc:  # noqa: BLE001 - config loaders raise many kinds
                self._failed_at = time.monotonic()
                self._problem = f"{self._what} is not configured or not reachable: {exc}"
                log.error(
                    "%s. Webhooks are accepted; stagings wait, retrying, until it is.",
                    self._problem,
                )
                raise ClusterError(self._problem, RETRY_CONNECT, NOT_CONNECTED) from None
            return self._real

    async def apply(self, target: Target) -> None:
        await (await self.connect()).apply(target)

    async def status(self, target: Target) -> Rollout:
        return await (await self.connect()).status(target)

    async def archive(self, target: Target) -> None:
        await (await self.connect()).archive(target)

    async def restore(self, target: Target) -> None:
        await (await self.connect()).restore(target)

    async def destroy(self, target: Target) -> bool:
        return await (await self.connect()).destroy(target)

    def take_output(self, target: Target) -> StepOutput:
        return self._real.take_output(target) if self._real is not None else StepOutput()

    async def notify(self, target: Target, phase: Phase, reason: str) -> None:
        if self._real is not None:  # best effort: never connects just to say this
            await self._real.notify(target, phase, reason)

    async def list_stagings(self, instance: str) -> list[ClusterStaging]:
        return await (await self.connect()).list_stagings(instance)

    async def health(self, instance: str, running: Sequence[Target]) -> dict[StagingKey, str]:
        return await (await self.connect()).health(instance, running)

    async def remember_decision(self, instance: str, decision: Decision) -> None:
        await (await self.connect()).remember_decision(instance, decision)

    async def forget_decision(self, instance: str, key: StagingKey) -> None:
        await (await self.connect()).forget_decision(instance, key)

    async def decisions(self, instance: str) -> dict[StagingKey, Decision]:
        return await (await self.connect()).decisions(instance)

    async def close(self) -> None:
        close = getattr(self._real, "close", None)
        if close is not None:
            await close()
