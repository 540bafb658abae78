"""The narrow interface the reconcile job uses to build and remove stagings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.model import ClusterStaging, Phase, Rollout, StagingKey, Target
from bot.provision.decisions import Decision


@dataclass(frozen=True)
class Link:
    """An extra link a provisioner found for a staging (logs, a database console...)."""

    name: str
    url: str


@dataclass(frozen=True)
class StepOutput:
    """What a provisioner's own programs printed for one staging, for its history."""

    text: str = ""  # capped, secrets masked; "" when nothing ran
    links: tuple[Link, ...] | None = None  # None: not read this time, keep the known ones


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
        """Whether the staging's workloads are available, failed (and why), or still rolling.

        Meant for a staging that should be running: the caller does not poll an archived
        one. If it does, archived workloads are not waited for and never read as failed
        (all archived: ready, with a reason saying so).
        """
        ...

    async def archive(self, target: Target) -> None:
        """Stop running the staging but keep everything it has (data, volumes, Secrets).

        Nothing runs until `restore`; an `apply` meanwhile (a sweep, a new SHA) updates the
        staging but keeps it archived. Archiving twice changes nothing. A staging with
        nothing in the cluster (no namespace) is archived already: no error.
        """
        ...

    async def restore(self, target: Target) -> None:
        """Run the staging again as it was before `archive` (e.g. the same replica counts).

        Returns once the change is applied, not rolled out: follow with `apply` and `status`
        as for a deploy. Restoring a staging that is not archived changes nothing.
        """
        ...

    async def destroy(self, target: Target) -> bool:
        """Start removing the staging; True once nothing of it is left."""
        ...

    def take_output(self, target: Target) -> StepOutput:
        """The output of the programs run for `target` since the last call, then forgotten.

        Only the `command` provisioner runs programs; Kubernetes has nothing to say here.
        """
        ...

    async def notify(self, target: Target, phase: Phase, reason: str) -> None:
        """The staging entered `phase` (with `reason`, when failed). Best effort: never raises."""
        ...

    async def list_stagings(self, instance: str) -> list[ClusterStaging]:
        """Every staging of bot `instance` in the cluster, in O(1) list calls (the sweep).

        All or nothing: any failure raises `TemporaryError`, never a shorter list, so the
        sweep cannot take an outage for stagings that are gone.
        """
        ...

    async def health(self, instance: str, running: Sequence[Target]) -> dict[StagingKey, str]:
        """Why each of the stagings that should be running is not available (the sweep);
        a staging absent from the answer is healthy, an archived one always is.

        Kubernetes: two cluster-wide list calls whatever the number of stagings. The
        `command` provisioner runs `check` once per staging in `running`. Any failure to
        look raises `TemporaryError`: no answer is never taken for "unhealthy".
        """
        ...

    async def remember_decision(self, instance: str, decision: Decision) -> None:
        """Keep outside Redis that `decision.key` gets no staging until asked again.

        Idempotent. Raises `TemporaryError` when it cannot be kept: the caller then waits
        rather than remove a staging that a Redis wipe could bring back.
        """
        ...

    async def forget_decision(self, instance: str, key: StagingKey) -> None:
        """Drop the kept decision of `key`, if any (a push or a deploy asked again)."""
        ...

    async def decisions(self, instance: str) -> dict[StagingKey, Decision]:
        """Every decision kept for bot `instance`, in O(1) calls; all or nothing."""
        ...
