"""The `command` provisioner: the operator's own programs build, check and remove stagings.

Each lifecycle step is an argv list from `[command]` (helm, docker compose, a script), run
without a shell in the configured folder with the staging's variables in its environment
(see docs/provisioners.md for the contract). Exit 0 is success, 75 (EX_TEMPFAIL) means
"try again later", anything else fails the staging with the end of the step's output.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields, is_dataclass

from bot.config import CommandConfig, Config, Secret
from bot.errors import ArchiveFailed, ArchiveRefused, ClusterError, PermanentError
from bot.model import ClusterStaging, Phase, Rollout, StagingKey, Target
from bot.provision.base import Link, StepOutput
from bot.provision.command_config import INHERITED
from bot.provision.decision_file import DecisionFile
from bot.provision.decisions import Decision
from bot.provision.steps import KILL_GRACE, StepResult, run_step, tail_lines

log = logging.getLogger("stagingbot.provision")

# `check`, `info` and `notify` are asked often or in passing: a minute each at most.
AUX_LIMIT = 60.0
AUX_STEPS = frozenset({"check", "info", "notify"})
TEMPORARY_EXIT = 75  # EX_TEMPFAIL in sysexits.h: "try again later"
KEPT_RUNS = 4  # runs remembered per staging until the reconcile takes them for the history
MAX_LINKS = 20
REASON_LINES = 5
HEALTH_CONCURRENCY = 4  # `check`s the sweep runs at once
KEY = re.compile(r"[A-Z_][A-Z0-9_]*")
NOT_ARCHIVABLE = "archiving is not configured for the command provisioner"
MAKE_ARCHIVABLE = "set command.archive and command.restore in the bot's configuration"
# What a failed archive program left: only the program knows.
ARCHIVE_LEFT = (
    "the archive program may have changed part of the staging before it failed (its output "
    "is in the staging's history): it is still taken as running"
)


class CommandProvisioner:
    """Runs the configured programs; keeps what they print until `take_output` asks for it."""

    def __init__(
        self,
        settings: CommandConfig,
        *,
        secrets: Iterable[str] = (),
        secret_keys: Iterable[str] = (),
        base_env: Mapping[str, str] | None = None,
        grace: float = KILL_GRACE,
    ) -> None:
        self._settings = settings
        # Resolved once: a later chdir in the bot must not move where the scripts run.
        self._workdir = os.path.abspath(settings.workdir or os.getcwd())
        self._secrets = tuple(secret for secret in secrets if secret)
        self._secret_keys = frozenset(secret_keys)
        self._base = dict(base_env or {})
        self._grace = grace
        self._runs: dict[StagingKey, deque[str]] = {}
        self._links: dict[StagingKey, tuple[Link, ...]] = {}
        self._decisions = DecisionFile(settings.state_dir)

    @classmethod
    def from_config(cls, config: Config, environ: Mapping[str, str]) -> CommandProvisioner:
        names = (*INHERITED, *config.command.pass_env)
        return cls(
            config.command,
            secrets=config_secrets(config),
            secret_keys=config.commands.secret_keys,
            base_env={name: environ[name] for name in names if name in environ},
        )

    async def apply(self, target: Target) -> None:
        """`create`, or `update` for a staging built before; then `info` for extra links."""
        step = "update" if target.built else "create"
        self._raise_if_failed(step, await self._run(step, target))
        if self._settings.info is not None:
            info = await self._run("info", target)
            if info.ok:
                self._links[target.key] = parse_links(info.stdout)
            else:  # the links are extras: the staging is built all the same
                log.warning("info for %s failed: %s", target.key, info.ending())

    async def status(self, target: Target) -> Rollout:
        """`check`: exit 0 ready; anything else not ready yet, its stdout saying why.

        A check that keeps saying no becomes a failure at `kubernetes.rollout_deadline`,
        decided by the reconcile job. Only a check that cannot run at all fails at once.
        """
        if self._settings.check is None:
            return Rollout(ready=True)
        result = await self._run("check", target)
        if result.ok:
            return Rollout(ready=True)
        if result.error:
            return Rollout(ready=False, failed=True, reason=f"check: {result.ending()}")
        said = tail_lines(result.stdout, REASON_LINES)
        if result.timed_out:
            return Rollout(ready=False, reason=f"check {result.ending()}")
        return Rollout(ready=False, reason=said or f"check: {result.ending()}")

    async def archive(self, target: Target) -> None:
        if self._settings.archive is None:
            raise ArchiveRefused(NOT_ARCHIVABLE, MAKE_ARCHIVABLE)
        result = await self._run("archive", target)
        try:
            self._raise_if_failed("archive", result)  # exit 75: a ClusterError, tried again
        except PermanentError as exc:  # its output masked of secrets by run_step
            raise ArchiveFailed(exc.reason, ARCHIVE_LEFT) from exc

    async def restore(self, target: Target) -> None:
        if self._settings.restore is not None:  # unset only with archive unset: never archived
            self._raise_if_failed("restore", await self._run("restore", target))

    async def destroy(self, target: Target) -> bool:
        """`destroy`; done once it exits 0 (a step that must wait for deletion waits itself)."""
        self._raise_if_failed("destroy", await self._run("destroy", target))
        self._links.pop(target.key, None)
        return True

    async def health(self, instance: str, running: Sequence[Target]) -> dict[StagingKey, str]:
        """`check` once per running staging (a few at a time): the sweep's cost grows with
        the number of stagings, unlike Kubernetes' two list calls. No `check`: all healthy."""
        if self._settings.check is None:
            return {}
        limit = asyncio.Semaphore(HEALTH_CONCURRENCY)

        async def one(target: Target) -> tuple[StagingKey, str]:
            async with limit:
                try:
                    result = await self._run("check", target, keep=False)
                except PermanentError as exc:
                    return target.key, f"check: {exc.reason}"
            if result.ok:
                return target.key, ""
            said = tail_lines(result.stdout, REASON_LINES)
            return target.key, said or f"check {result.ending()}"

        answers = await asyncio.gather(*(one(target) for target in running))
        return {key: reason for key, reason in answers if reason}

    async def remember_decision(self, instance: str, decision: Decision) -> None:
        """In `command.state_dir`/decisions.json; not kept at all when it is unset."""
        await self._decisions.remember(decision)

    async def forget_decision(self, instance: str, key: StagingKey) -> None:
        await self._decisions.forget(key)

    async def decisions(self, instance: str) -> dict[StagingKey, Decision]:
        return await self._decisions.read()

    async def list_stagings(self, instance: str) -> list[ClusterStaging]:
        """Always empty: the bot cannot see what the programs built, so the sweep can't either.

        The sweep then works from Redis and the Git hosts alone: it finds no orphans, rebuilds
        no record after a Redis wipe (an open request gets `create` again, so it must be
        idempotent), and a closed request's staging is still destroyed by its reconcile job.
        """
        return []

    def take_output(self, target: Target) -> StepOutput:
        runs = self._runs.pop(target.key, None)
        return StepOutput("\n\n".join(runs or ()), self._links.pop(target.key, None))

    async def notify(self, target: Target, phase: Phase, reason: str) -> None:
        """`notify` with STAGING_STATE and STAGING_REASON; a failure is logged, nothing more."""
        if self._settings.notify is None:
            return
        extra = {"STAGING_STATE": phase.value, "STAGING_REASON": reason.replace("\0", "")}
        try:
            result = await self._run("notify", target, extra)
        except PermanentError as exc:
            log.warning("notify for %s not run: %s", target.key, exc.reason)
            return
        if not result.ok:
            log.warning("notify for %s failed: %s", target.key, result.ending())

    # running

    async def _run(
        self,
        step: str,
        target: Target,
        extra: Mapping[str, str] | None = None,
        keep: bool = True,  # False: the sweep's health check, not the staging's history
    ) -> StepResult:
        settings = self._settings
        argv = getattr(settings, step) or (settings.create if step == "update" else None)
        assert argv, f"command.{step} is not configured"
        limit = min(settings.timeout, AUX_LIMIT) if step in AUX_STEPS else settings.timeout
        env = {**self.environment(target, step), **(extra or {})}
        result = await run_step(
            argv,
            env=env,
            cwd=self._workdir,
            time_limit=limit,
            limit=settings.output_limit,
            secrets=self._secrets_of(target),
            grace=self._grace,
        )
        log.info("%s %s: %s", step, target.key, result.ending())
        if keep:
            kept = self._runs.setdefault(target.key, deque(maxlen=KEPT_RUNS))
            kept.append(f"{step}:\n{result.transcript()}")
        return result

    def environment(self, target: Target, step: str) -> dict[str, str]:
        """What a step sees: a few inherited variables, the overrides, the staging's data."""
        env = dict(self._base)
        every = (*target.overrides, *target.secret_overrides)  # the secret ones win
        for key, value in every:
            if not KEY.fullmatch(key) or "\0" in value:  # the command parser refuses both
                raise PermanentError(f"override {key!r} cannot be passed to a program")
            env[self._settings.env_prefix + key] = value
        env.update(
            {
                "STAGING_STEP": step,
                "STAGING_NAME": target.name,
                "STAGING_NAMESPACE": target.namespace,
                "STAGING_HOST": target.hostname,
                "STAGING_URL": target.url,
                "STAGING_SHA": target.sha,
                "STAGING_BRANCH": target.branch,
                "STAGING_PR": str(target.number),
                "STAGING_REPO": target.repo,
                "STAGING_HOST_KIND": target.key.host,
                "STAGING_IMAGE": target.image,
                "STAGING_OVERRIDE_KEYS": " ".join(sorted({key for key, _ in every})),
                "STAGING_OVERRIDE_PREFIX": self._settings.env_prefix,
            }
        )
        return env

    def _secrets_of(self, target: Target) -> tuple[str, ...]:
        shown = (value for key, value in target.overrides if key in self._secret_keys)
        return (*self._secrets, *shown, *(value for _, value in target.secret_overrides))

    @staticmethod
    def _raise_if_failed(step: str, result: StepResult) -> None:
        if result.ok:
            return
        said = tail_lines(result.stderr, REASON_LINES) or tail_lines(result.stdout, REASON_LINES)
        reason = f"{step} {result.ending()}" + (f": {said}" if said else "")
        if result.code == TEMPORARY_EXIT:  # "try again later": say, the cluster is unreachable
            raise ClusterError(reason, shown=f"{step} {result.ending()}")
        raise PermanentError(reason)


def parse_links(text: str) -> tuple[Link, ...]:
    """`name,url` lines, as `info` prints them; anything else (and non-http URLs) skipped."""
    links = []
    for line in text.splitlines():
        name, comma, url = (part.strip() for part in line.partition(","))
        if comma and name and url.startswith(("https://", "http://")) and " " not in url:
            links.append(Link(name[:100], url[:2000]))
    return tuple(links[:MAX_LINKS])


def config_secrets(config: object) -> list[str]:
    """Every secret value in the configuration: masked wherever a program prints it."""
    found: list[str] = []
    if not is_dataclass(config) or isinstance(config, type):
        return found
    for item in fields(config):
        value = getattr(config, item.name)
        if isinstance(value, Secret):
            found += [value.reveal()] if value else []
        else:
            found += config_secrets(value)
    return found
