"""`stagingbot worker` with test-sized arq timeouts, for the reliability suite.

In production a reconcile job may run 5 minutes and a sweep 10, and arq keeps a started
job's "in progress" mark for the longest of them plus 10 s: a job held by a worker that was
killed is taken up by another worker only after that (about ten minutes). Here a job may
run `JOB_TIMEOUT` seconds and the mark lasts one second more, so a killed worker's jobs
come back within seconds. Everything else is the real command.
"""

from __future__ import annotations

import sys
from typing import Any

from arq.worker import Worker

from bot import worker
from bot.cli import entry
from tests.reliability.harness import JOB_TIMEOUT

_make_worker = worker.make_worker


def make_worker(*args: Any, **kwargs: Any) -> Worker:
    built = _make_worker(*args, **kwargs)
    # arq's default is the longest function timeout + 10 s; longer than any job may run,
    # so no job is ever taken by a second worker while the first still runs it.
    built.in_progress_timeout_s = JOB_TIMEOUT + 1
    return built


if __name__ == "__main__":
    worker.JOB_TIMEOUT = JOB_TIMEOUT  # type: ignore[misc]
    worker.SWEEP_TIMEOUT = JOB_TIMEOUT  # type: ignore[misc]
    worker.make_worker = make_worker  # type: ignore[assignment]
    sys.argv = ["stagingbot", "worker", *sys.argv[1:]]
    entry()
