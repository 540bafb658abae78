"""One control-script step: real processes, killed with their children, output capped and masked."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from bot.provision.steps import LEFT_OPEN, run_step, tail_lines

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def script(folder: Path, name: str, body: str) -> str:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for an init that may never reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def pids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()]


def written(path: Path) -> bool:
    return path.exists() and bool(path.read_text().split())


async def wait_for_file(path: Path) -> None:
    for _ in range(200):
        if written(path):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} was not written")


def kill_all(path: Path) -> None:
    for pid in pids(path) if path.exists() else []:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def test_a_step_runs_its_argv_without_a_shell_and_reports_how_it_ended(
    tmp_path: Path,
) -> None:
    program = script(tmp_path, "say.sh", 'printf "%s\\n" "$@"; echo oops >&2; exit 3\n')

    result = await run_step(
        [program, "one two", "$(id)"], env=ENV, cwd=str(tmp_path), time_limit=10, limit=4096
    )

    assert result.code == 3 and not result.ok
    assert result.stdout == "one two\n$(id)\n"
    assert result.stderr == "oops\n"
    assert result.ending().startswith("exit 3 after ")
    assert result.transcript().splitlines()[:4] == [
        f"$ {program} one two $(id)",
        "one two\n$(id)".splitlines()[0],
        "$(id)",
        "oops",
    ]


async def test_a_hanging_step_is_killed_with_its_children_and_says_it_timed_out(
    tmp_path: Path,
) -> None:
    # One child sleeps, one ignores SIGTERM (ignored signals survive exec): both must go.
    program = script(
        tmp_path,
        "hang.sh",
        "sleep 300 &\necho $! >> children\n"
        "(trap '' TERM; exec sleep 300) &\necho $! >> children\n"
        "sleep 300\n",
    )
    children = tmp_path / "children"
    try:
        started = time.monotonic()
        result = await run_step(
            [program], env=ENV, cwd=str(tmp_path), time_limit=0.5, limit=4096, grace=0.5
        )
        assert time.monotonic() - started < 5
        assert result.timed_out and not result.ok
        assert result.ending() == "timed out after 0.5 s"
        assert len(pids(children)) == 2
        for _ in range(100):  # init reaps the orphans a moment later
            if all(gone(pid) for pid in pids(children)):
                break
            await asyncio.sleep(0.02)
        assert [gone(pid) for pid in pids(children)] == [True, True]
    finally:
        kill_all(children)


async def test_a_cancelled_step_leaves_no_process_behind(tmp_path: Path) -> None:
    program = script(tmp_path, "hang.sh", "sleep 300 &\necho $! > children\nsleep 300\n")
    children = tmp_path / "children"
    task = asyncio.ensure_future(
        run_step([program], env=ENV, cwd=str(tmp_path), time_limit=60, limit=4096)
    )
    try:
        await wait_for_file(children)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):
            if gone(pids(children)[0]):
                break
            await asyncio.sleep(0.02)
        assert gone(pids(children)[0])
    finally:
        kill_all(children)


async def test_a_background_process_holding_the_output_does_not_hold_the_step(
    tmp_path: Path,
) -> None:
    program = script(tmp_path, "serve.sh", "sleep 300 &\necho $! > children\necho started\n")
    children = tmp_path / "children"
    try:
        started = time.monotonic()
        result = await run_step([program], env=ENV, cwd=str(tmp_path), time_limit=10, limit=4096)
        assert time.monotonic() - started < 5
        assert result.ok and result.stdout == "started\n"
        assert result.note == LEFT_OPEN
        assert not gone(pids(children)[0])  # a step that succeeded keeps what it started
    finally:
        kill_all(children)


async def test_only_the_end_of_a_long_output_is_kept(tmp_path: Path) -> None:
    program = script(tmp_path, "loud.sh", "seq 1 50000\n")

    result = await run_step([program], env=ENV, cwd=str(tmp_path), time_limit=10, limit=2048)

    first, *rest = result.stdout.splitlines()
    assert first.startswith("[") and first.endswith(" bytes before this cut]")
    assert rest[-1] == "50000"
    assert len("\n".join(rest).encode()) <= 2048


async def test_secrets_are_masked_before_the_output_is_cut_so_no_part_survives(
    tmp_path: Path,
) -> None:
    secret = "S3cr3t-VALUE-42"
    filler = "B" * 1030  # the kept window (limit + longest secret) starts inside the secret
    program = script(tmp_path, "leak.sh", f'printf "%s%s" "$1" "{filler}"\necho "x$1" >&2\n')

    result = await run_step(
        [program, secret],
        env=ENV,
        cwd=str(tmp_path),
        time_limit=10,
        limit=1024,
        secrets=[secret, ""],
    )

    assert "VALUE" not in result.stdout and "42" not in result.stdout
    assert result.stderr == "x**********\n"


async def test_a_program_that_cannot_start_says_why(tmp_path: Path) -> None:
    result = await run_step(["./missing.sh"], env=ENV, cwd=str(tmp_path), time_limit=10, limit=4096)

    assert result.code is None and not result.ok
    assert result.ending() == "cannot run ./missing.sh: No such file or directory"


def test_a_reason_is_the_last_non_blank_lines() -> None:
    assert tail_lines("a\n\nb\n  \nc\nd\n", 2) == "c\nd"
