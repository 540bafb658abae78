"""The container image's HEALTHCHECK: `python -m bot.healthcheck` asks the running bot.

Docker runs it beside the bot in the same container, so it reads what the bot was started
as (PID 1's arguments: `stagingbot web`, `worker` or `run`) and the same configuration:
- `web` and `run` answer on `server.port`: `/healthz` must say 200;
- `worker` serves HTTP only with `metrics.worker_port` set: its `/metrics` must answer
  then; without it there is nothing to ask, and the check passes (the container stops
  when the worker does). Kubernetes ignores HEALTHCHECK and uses the probes in
  `manifests/bot/`.
Exit 0 healthy, 1 unhealthy, with one line saying why (Docker keeps it in `docker inspect`).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from bot.config import Config, ConfigError, load_config

PROC_CMDLINE = "/proc/1/cmdline"
TIMEOUT = 4.0  # below the Dockerfile's --timeout=5s
MODES = ("run", "web", "worker")
ANY_ADDRESS = {"", "0.0.0.0", "::"}  # noqa: S104 - a listen address, not a bind


def started_as(cmdline: Sequence[str]) -> str:
    """`run`, `web` or `worker` from a `stagingbot ...` command line; "" when it is none."""
    for arg in cmdline[1:]:
        if arg in MODES:
            return arg
        name = os.path.basename(arg)
        if not arg.startswith("-") and name != "stagingbot" and not name.startswith("python"):
            break  # another command (check-config, demo-event, ...)
    return ""


def read_cmdline(path: str = PROC_CMDLINE) -> list[str]:
    try:
        raw = Path(path).read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def probe_url(config: Config, mode: str) -> str:
    """The URL that tells whether the process started as `mode` is alive; "" for none."""
    host = config.server.host
    host = "127.0.0.1" if host in ANY_ADDRESS else host
    host = f"[{host}]" if ":" in host else host
    if mode in ("web", "run"):
        return f"http://{host}:{config.server.port}/healthz"
    if mode == "worker" and config.metrics.worker_port:
        return f"http://{host}:{config.metrics.worker_port}/metrics"
    return ""


def ask(url: str, timeout: float = TIMEOUT) -> str:
    """ "" when `url` answers 200, else what went wrong."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - our own URL
            return "" if answer.status == 200 else f"{url} answered {answer.status}"
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url} did not answer: {getattr(exc, 'reason', exc)}"


def check(cmdline: Sequence[str], environ: Mapping[str, str]) -> tuple[int, str]:
    """The exit code and the line to print."""
    mode = started_as(cmdline)
    if not mode:
        return 0, "not a web or worker process: nothing to check"
    try:
        config = load_config(None, environ)
    except ConfigError as exc:
        return 1, f"configuration error: {str(exc).splitlines()[0]}"
    url = probe_url(config, mode)
    if not url:
        return 0, f"{mode}: no HTTP endpoint (set metrics.worker_port to check it); running"
    problem = ask(url)
    return (1, f"{mode}: {problem}") if problem else (0, f"{mode}: ok ({url})")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bot.healthcheck [stagingbot web]`: arguments stand in for PID 1's."""
    args = list(sys.argv[1:] if argv is None else argv)
    cmdline = ["stagingbot", *args] if args else read_cmdline()
    code, line = check(cmdline, os.environ)
    print(line, file=sys.stdout if code == 0 else sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover - the container's HEALTHCHECK
    sys.exit(main())
