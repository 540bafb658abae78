"""Decisions kept in a JSON file (`command.state_dir`), for the `command` provisioner.

The `command` provisioner has no cluster to keep them in, so a folder on a persistent
volume does: `decisions.json`, rewritten whole (a temporary file renamed over it, so a
reader never sees half a file) under an exclusive lock (a web and a worker process may
share the folder). A file that cannot be read raises `TemporaryError`: an unreadable
file is never taken for "no decisions".
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from bot.errors import TemporaryError
from bot.model import StagingKey
from bot.provision import decisions
from bot.provision.decisions import Decision

FILE = "decisions.json"
LOCK = ".decisions.lock"


class DecisionFile:
    """`folder`/decisions.json; with `folder` "" nothing is kept (Redis only)."""

    def __init__(self, folder: str) -> None:
        self._folder = Path(folder) if folder else None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._folder is not None

    async def remember(self, decision: Decision) -> None:
        def change(found: dict[StagingKey, Decision]) -> None:
            found[decision.key] = decision

        await self._change(change)

    async def forget(self, key: StagingKey) -> None:
        def change(found: dict[StagingKey, Decision]) -> None:
            found.pop(key, None)

        await self._change(change)

    async def read(self) -> dict[StagingKey, Decision]:
        if self._folder is None:
            return {}
        return await asyncio.to_thread(self._locked_read)

    async def _change(self, change: Callable[[dict[StagingKey, Decision]], None]) -> None:
        if self._folder is None:
            return

        def work() -> None:
            with self._locked():
                found = self._read()
                before = dict(found)
                change(found)
                if found != before:
                    self._write(found)

        await asyncio.to_thread(work)

    def _locked_read(self) -> dict[StagingKey, Decision]:
        with self._locked():
            return self._read()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        assert self._folder is not None
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
            with self._lock, open(self._folder / LOCK, "a", encoding="utf-8") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                yield
        except OSError as exc:
            raise TemporaryError(f"cannot use command.state_dir {self._folder}: {exc}") from exc

    def _read(self) -> dict[StagingKey, Decision]:
        assert self._folder is not None
        path = self._folder / FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            return decisions.load(text)
        except ValueError as exc:
            raise TemporaryError(f"{path} is not a decisions file: {exc}") from exc

    def _write(self, found: dict[StagingKey, Decision]) -> None:
        assert self._folder is not None
        fd, temporary = tempfile.mkstemp(dir=self._folder, prefix=".decisions-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(decisions.dump(found))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self._folder / FILE)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
