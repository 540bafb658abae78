#!/usr/bin/env python3
"""Control script for the local trial: each staging is app.py on a free port of this machine.

stagingbot's `command` provisioner runs it for every step (create, update, archive,
restore, check, destroy, info, notify), which it reads from STAGING_STEP. Each staging
gets a folder under $LOCAL_STAGINGS (default .stagingbot/stagings in the working
directory) holding its port, its process id, its log and its own SQLite database, which
survives updates and archiving and goes with destroy. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

APP = Path(__file__).resolve().with_name("app.py")
STOP_GRACE = 5.0


def folder() -> Path:
    root = Path(os.environ.get("LOCAL_STAGINGS", ".stagingbot/stagings"))
    name = os.environ["STAGING_NAME"]
    if not name or "/" in name or name.startswith("."):  # the bot's names are DNS labels
        sys.exit(f"unexpected staging name {name!r}")
    return root.resolve() / name


def read(path: Path) -> str:
    return path.read_text().strip() if path.exists() else ""


def free(port: int) -> bool:
    with socket.socket() as sock:
        # As the app binds (http.server sets SO_REUSEADDR): a connection of the previous
        # run still in TIME_WAIT does not keep the staging from its address.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_soon(port: int, within: float = 2.0) -> bool:
    """Whether the port is free, or frees itself shortly: a stopped app's process is gone
    from /proc a moment before the kernel closes its listening socket."""
    deadline = time.monotonic() + within
    while not free(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def new_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def running(here: Path) -> int | None:
    """The app's process id, when the one this folder started is still running."""
    pid = int(read(here / "pid") or 0)
    if not pid:
        return None
    proc = Path(f"/proc/{pid}")
    if proc.exists():  # Linux: make sure the id was not reused, and skip zombies
        alive = str(APP) in (proc / "cmdline").read_bytes().decode(errors="replace")
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        return pid if alive and state != "Z" else None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def start(here: Path) -> None:
    """Start the app (again) with this step's environment: the staging's SHA, overrides..."""
    here.mkdir(parents=True, exist_ok=True)
    port = int(read(here / "port") or 0)
    if not port or not free_soon(port):  # keep the address across updates when possible
        port = new_port()
    with open(here / "app.log", "ab") as log:
        app = subprocess.Popen(  # noqa: S603 - our own app, no shell
            [sys.executable, str(APP), "--port", str(port), "--db", str(here / "app.db")],
            stdin=subprocess.DEVNULL,
            stdout=log,  # never the step's own output: the bot stops reading when we exit
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this step, and a timeout of the next one
        )
    (here / "port").write_text(f"{port}\n")
    (here / "pid").write_text(f"{app.pid}\n")
    print(
        f"started {os.environ['STAGING_NAME']} at {os.environ['STAGING_SHA'][:7]}: "
        f"http://127.0.0.1:{port}/"
    )


def stop(here: Path) -> None:
    pid = running(here)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        while running(here) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if running(here) is not None:
            os.kill(pid, signal.SIGKILL)
        print(f"stopped process {pid}")
    (here / "pid").unlink(missing_ok=True)


def check(here: Path) -> int:
    port = read(here / "port")
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310 - our own app
            if answer.status == 200 and running(here) is not None:
                return 0
    except OSError:
        pass
    print(f"not answering on http://127.0.0.1:{port}/ yet")
    return 1


def main() -> int:
    step = os.environ["STAGING_STEP"]
    here = folder()
    if step in ("create", "update", "restore"):
        stop(here)
        start(here)
    elif step == "archive":
        stop(here)  # the database stays
    elif step == "destroy":
        stop(here)
        shutil.rmtree(here, ignore_errors=True)
        print(f"removed {here}")
    elif step == "check":
        return check(here)
    elif step == "info":
        if read(here / "port"):
            print(f"app,http://127.0.0.1:{read(here / 'port')}/")
    elif step == "notify":
        with contextlib.suppress(FileNotFoundError), open(here / "states.log", "a") as log:
            reason = os.environ.get("STAGING_REASON", "")
            log.write(f"{time.strftime('%H:%M:%S')} {os.environ['STAGING_STATE']} {reason}\n")
    else:
        print(f"unknown step {step!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
