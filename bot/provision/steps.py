"""One control-script step: no shell, its own process group, a timeout, capped and redacted output.

The `command` provisioner's only contact with the operating system. A step's argv comes from
the operator's config; the staging's data (branch, overrides) only ever reaches it as
environment values, which no shell reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# Between SIGTERM and SIGKILL to a timed-out step's process group: time to clean up.
KILL_GRACE = 5.0
# After a step exits, how long its output may stay open: a background process it started
# (say, a local server) holds the pipes until it exits, and must not hold the bot too.
PIPE_GRACE = 1.0
CHUNK = 65536
EXIT_POLL = 0.02
MASK = b"**********"
LEFT_OPEN = "[output left open by a background process: redirect its output to a file]"


@dataclass(frozen=True)
class StepResult:
    """How one run of a step ended, and what it printed (capped, secrets masked)."""

    argv: tuple[str, ...]
    code: int | None  # exit status (negative: killed by that signal); None: never started
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    timed_out: bool = False
    error: str = ""  # why it could not start, in words
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 0 and not self.timed_out

    def transcript(self) -> str:
        """The run as kept in the history: the command, its output, how it ended."""
        parts = [f"$ {' '.join(self.argv)}"]
        parts += [text.rstrip("\n") for text in (self.stdout, self.stderr) if text]
        parts += [f"[{self.note}]"] if self.note else []
        parts.append(f"[{self.ending()}]")
        return "\n".join(parts)

    def ending(self) -> str:
        if self.error:
            return f"cannot run {self.argv[0]}: {self.error}"
        if self.timed_out:
            return f"timed out after {duration(self.seconds)}"
        if self.code is not None and self.code < 0:
            return f"killed by signal {-self.code} after {duration(self.seconds)}"
        return f"exit {self.code} after {duration(self.seconds)}"


class _Tail:
    """The last `keep` bytes of a stream, and how many came before them."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        excess = len(self.data) - self.keep
        if excess > 0:
            del self.data[:excess]
            self.dropped += excess


async def run_step(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str,
    time_limit: float,
    limit: int,
    secrets: Iterable[str] = (),
    grace: float = KILL_GRACE,
) -> StepResult:
    """Run `argv` (no shell) in a new session; on timeout or cancellation kill its whole group.

    At most `limit` bytes of output are kept (the end, where errors are), every secret in
    `secrets` masked before anything is cut, so no part of one survives.
    """
    masks = sorted({s.encode() for s in secrets if s}, key=len, reverse=True)
    shown = tuple(_mask(arg.encode(), masks).decode() for arg in argv)  # as the history shows it
    margin = max((len(s) for s in masks), default=0)
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,  # its own process group: a timeout kills its children too
        )
    except OSError as exc:
        return StepResult(shown, None, error=exc.strerror or str(exc))
    out, err = _Tail(limit + margin), _Tail(limit + margin)
    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        asyncio.ensure_future(_pump(s, t)) for s, t in ((proc.stdout, out), (proc.stderr, err))
    ]
    timed_out, note = False, ""
    try:
        try:
            await asyncio.wait_for(_exited(proc), time_limit)
        except TimeoutError:
            timed_out = True
            await _kill_group(proc, grace)
        _, open_readers = await asyncio.wait(readers, timeout=PIPE_GRACE)
        if open_readers:
            note = LEFT_OPEN
    except BaseException:  # cancelled (a shutdown, the job's own timeout): leave nothing behind
        _signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(BaseException):  # reap it; a second cancel changes nothing
            await asyncio.wait_for(_exited(proc), grace)
        raise
    finally:
        for reader in readers:
            reader.cancel()
        _let_go(proc)
    seconds = time_limit if timed_out else time.monotonic() - started
    stdout, stderr = _shown(out, err, masks, margin, limit)
    return StepResult(shown, proc.returncode, stdout, stderr, seconds, timed_out, note=note)


async def _pump(stream: asyncio.StreamReader, tail: _Tail) -> None:
    while chunk := await stream.read(CHUNK):
        tail.add(chunk)


async def _exited(proc: asyncio.subprocess.Process) -> None:
    """Until the process exits. Not `proc.wait()`: before Python 3.12 that also waits for
    the pipes to close, which a background process the step started may never do."""
    while proc.returncode is None:  # noqa: ASYNC110 - no public event for "exited"
        await asyncio.sleep(EXIT_POLL)


def _let_go(proc: asyncio.subprocess.Process) -> None:
    """Close our ends of the pipes, which a background process may still hold open.

    asyncio has no public call for it; without it the transport stays open (and warns).
    """
    transport = getattr(proc, "_transport", None)
    if transport is not None:
        transport.close()


async def _kill_group(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM to the whole group, then SIGKILL to whatever is left of it after `grace`."""
    _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.returncode is not None and not _group_alive(proc.pid):
            return
        await asyncio.sleep(EXIT_POLL)
    _signal_group(proc.pid, signal.SIGKILL)
    await _exited(proc)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _shown(out: _Tail, err: _Tail, masks: list[bytes], margin: int, limit: int) -> tuple[str, str]:
    """Both streams masked, then cut to `limit` bytes together; stderr keeps at least half."""
    (out_text, out_dropped), (err_text, err_dropped) = (
        _masked(t, masks, margin) for t in (out, err)
    )
    keep_err = min(len(err_text), max(limit // 2, limit - len(out_text)))
    keep_out = min(len(out_text), limit - keep_err)
    return _cut(out_text, keep_out, out_dropped), _cut(err_text, keep_err, err_dropped)


def _masked(tail: _Tail, masks: list[bytes], margin: int) -> tuple[bytes, int]:
    """The kept bytes with every secret masked, and how many bytes came before them."""
    data = _mask(bytes(tail.data), masks)
    if not tail.dropped:
        return data, 0
    # A secret cut by the start of what was kept is shorter than `margin`: drop that much.
    return data[margin:], tail.dropped + min(margin, len(data))


def _mask(data: bytes, masks: list[bytes]) -> bytes:
    for secret in masks:  # longest first: a secret containing another is masked whole
        data = data.replace(secret, MASK)
    return data


def _cut(data: bytes, keep: int, dropped: int) -> str:
    skipped = dropped + len(data) - keep
    text = data[len(data) - keep :].decode("utf-8", "replace") if keep else ""
    return f"[{skipped} bytes before this cut]\n{text}" if skipped > 0 else text


def tail_lines(text: str, count: int = 10, width: int = 2000) -> str:
    """The last `count` non-blank lines, at most `width` characters: a failure's reason."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    return "\n".join(lines[-count:])[-width:]


def duration(seconds: float) -> str:
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:.3g} s" if seconds < 10 else f"{seconds:.0f} s"
