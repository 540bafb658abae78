"""The narrow interface the reconcile job uses to build and remove stagings."""

from __future__ import annotations

from typing import Protocol

from bot.model import Rollout, Target


class Provisioner(Protocol):
    """Drives one staging toward its desired state. Every call is idempotent.

    Errors are raised as `bot.errors.PermanentError` (e.g. an invalid manifest, with the
    reason in words) or `TemporaryError` (API server unreachable, 5xx, 429, a namespace
    still terminating).
    """

    async def apply(self, target: Target) -> None:
        """Create or update the staging at `target.sha`; returns once applied, not rolled out."""
        ...

    async def status(self, target: Target) -> Rollout:
        """Whether the staging's workloads are available, failed (and why), or still rolling."""
        ...

    async def destroy(self, target: Target) -> bool:
        """Start removing the staging; True once nothing of it is left."""
        ...
