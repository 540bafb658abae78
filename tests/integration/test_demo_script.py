"""`scripts/demo`, the README's first command: a running trial bot, and nothing left behind.

Runs the real script (its .venv is the one running these tests) with its own folder and
port: it starts a private redis-server and `stagingbot run` in offline mode; a
`demo-event` (GitHub's, and GitLab's) makes a local staging app; stopping the script stops
all of them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, free_port

STARTUP = 60.0  # the script may have to (re)install into .venv first


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def pids(folder: Path) -> list[int]:
    files = [folder / "redis.pid", *folder.glob("stagings/*/pid")]
    return [int(f.read_text().strip()) for f in files if f.exists() and f.read_text().strip()]


@contextlib.contextmanager
def demo_script(folder: Path, port: int) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """The script running (its output in a log file beside its folder), stopped after."""
    env = {**os.environ, "STAGINGBOT_DEMO_DIR": str(folder), "STAGINGBOT_DEMO_PORT": str(port)}
    env = {k: v for k, v in env.items() if not k.startswith("STAGINGBOT_") or "DEMO" in k}
    log = folder.with_name("demo.log")
    with open(log, "wb") as output:
        script = subprocess.Popen(  # noqa: S603
            [str(ROOT / "scripts" / "demo")],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started: list[int] = []
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: answers(f"{base}/readyz"), "the bot answering /readyz", STARTUP, log)
        started = pids(folder)
        yield script, log
    finally:
        if script.poll() is None:
            script.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                script.wait(timeout=30)
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
            script.wait()
        for pid in [*started, *pids(folder)]:  # whatever a failed run left
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def wait_for(probe: Callable[[], object], what: str, within: float, log: Path) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.05)
    output = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    pytest.fail(f"never happened: {what}; the script said:\n{output}")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310 - local
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def test_the_demo_script_runs_a_trial_bot_and_leaves_nothing_running(tmp_path: Path) -> None:
    folder, port = tmp_path / "demo", free_port()
    with demo_script(folder, port) as (script, log):
        config = folder / "config.toml"
        (token,) = [t["token"] for t in tomllib.loads(config.read_text())["api"]["tokens"]]
        said = log.read_text()
        assert f"sign in with the token  {token}" in said
        assert 'OFFLINE MODE (mode = "offline"): no Git host is called.' in said
        headers = {"Authorization": f"Bearer {token}"}
        stagings = f"http://127.0.0.1:{port}/api/stagings/"
        for host, ref in [
            ("github", "github%3ACodertocat%2FHello-World%233"),
            ("gitlab", "gitlab%3Agitlabhq%2Fgitlab-test%213"),  # the trial serves both hosts
        ]:
            sent = subprocess.run(  # noqa: S603
                [str(Path(sys.executable).parent / "stagingbot"), "demo-event", "opened"]
                + ["--pr", "3", "--host", host, "--config", str(config)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert sent.returncode == 0, sent.stderr

            def app_url(api: str = stagings + ref) -> str:
                shown = httpx.get(api, headers=headers).json()
                links = shown.get("links") or []
                return str(links[0]["url"]) if shown.get("state") == "running" and links else ""

            wait_for(app_url, f"the {host} staging running with its app link", 30, log)
            assert answers(app_url())
        running = pids(folder)
        assert len(running) == 3  # the private Redis and the two stagings' apps

        script.send_signal(signal.SIGTERM)  # as Ctrl-C does (the script traps both)
        assert script.wait(timeout=30) is not None
        stopped = lambda: not any(alive(pid) for pid in running)  # noqa: E731
        wait_for(stopped, "redis and the app stopped", 10, log)
        assert not (folder / "stagings").exists()
