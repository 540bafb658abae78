"""Sweep at scale: one sweep over 100 and over 1,000 stagings, side by side in one run.

    .venv/bin/python bench/sweep.py [--sizes 100 1000] [--rounds 5]

For each size N: FakeGitHub with N open pull requests in one repository, FakeKube with N
staging namespaces labelled and annotated as the bot leaves them, each holding a ready
Deployment `web` and StatefulSet `db` with the bot's labels, and Redis records in step with
both (written by one sweep run here against the empty Redis, whose queued jobs are then
dropped and marked handled). Then a real `stagingbot worker` per size (production settings,
info logs, its own key prefix) runs the sweeps: each round queues one sweep per size (the
order alternating), waits for it, and reads

- its wall time, from arq's own "← sweep" log line in the worker (start to end of the job);
- every request FakeKube and FakeGitHub answered meanwhile, list calls apart;
- what the sweep said it did (steady state: "done: 0 to reconcile").

After the rounds, the resident memory of each worker (VmRSS, and VmHWM: the peak). Both
fakes run on threads of this process, so the worker processes have their cores to
themselves apart from the fakes' answers. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import _common  # noqa: F401  (puts the repo on sys.path)
from _common import RedisServer, machine, median, rss_mb
from arq.connections import ArqRedis

from bot import naming, queue
from bot.config import load_config
from bot.model import StagingKey
from bot.sweep import sweep
from bot.web import redis_client
from bot.worker import build_services, close_services
from tests.fakes.github import FakeGitHub
from tests.fakes.kube import FakeKube
from tests.helpers import REPO, REPO_ID
from tests.reliability.harness import config_text

LIST_KUBE = re.compile(r"^/api/v1/(namespaces|configmaps|secrets)$|^/apis/apps/v1/\w+$")
DONE = re.compile(r"(\d+\.\d+)s ← sweep:\S+ ● '(.*)'")


def sha(number: int) -> str:
    return f"{number:08x}".ljust(40, "c")


def namespace(number: int) -> dict[str, object]:
    key = StagingKey("github", REPO_ID, number)
    name = f"staging-hello-world-pr-{number}-0085"
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {**naming.selector_labels(key, "default"), naming.LABEL_SHA: sha(number)},
            "annotations": {
                naming.ANNOTATION_REPO: REPO,
                naming.ANNOTATION_KEY: str(key),
                naming.ANNOTATION_URL: f"https://hello-world-pr-{number}.staging.example.com/",
            },
        },
    }


def workload(kind: str, number: int) -> dict[str, object]:
    key = StagingKey("github", REPO_ID, number)
    labels = {**naming.selector_labels(key, "default"), "app": kind.lower()}
    spec: dict[str, object] = {
        "replicas": 1,
        "selector": {"matchLabels": {"app": kind.lower()}},
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "app", "image": f"registry.example.com/h:{sha(1)}"}]},
        },
    }
    if kind == "StatefulSet":
        spec["serviceName"] = "db"
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {
            "name": "web" if kind == "Deployment" else "db",
            "namespace": f"staging-hello-world-pr-{number}-0085",
            "labels": labels,
        },
        "spec": spec,
    }


class SeededKube(FakeKube):
    """FakeKube that schema-validates the first object of each kind only: the bench seeds
    thousands of objects of the same three shapes, and validation is the slow part."""

    _validated: set[str]

    def _validate(self, res, name, obj, old):  # type: ignore[no-untyped-def]
        seen = self.__dict__.setdefault("_validated", set())
        if res.kind not in seen:
            seen.add(res.kind)
            super()._validate(res, name, obj, old)


READY = {
    "Deployment": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1},
    "StatefulSet": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1},
}


@dataclass
class Size:
    n: int
    github: FakeGitHub
    kube: FakeKube
    config: Path
    prefix: str
    log: Path
    worker: subprocess.Popen[bytes] | None = None
    walls: list[float] = field(default_factory=list)
    kube_calls: list[Counter[str]] = field(default_factory=list)
    host_calls: list[Counter[str]] = field(default_factory=list)
    said: list[str] = field(default_factory=list)


def populate(n: int, github: FakeGitHub, kube: FakeKube) -> None:
    github.add_repo(REPO, REPO_ID, installation_id=1)
    for number in range(1, n + 1):
        github.add_pull(REPO, number, sha(number), branch=f"feature-{number}")
        kube.add(namespace(number))
        for kind in ("Deployment", "StatefulSet"):
            obj = workload(kind, number)
            kube.add(obj)
            kube.set_status(
                kind,
                obj["metadata"]["namespace"],
                obj["metadata"]["name"],
                {  # type: ignore[index]
                    "observedGeneration": 1,
                    **READY[kind],
                },
            )


async def in_step(size: Size) -> None:
    """Records as the bot keeps them for running stagings: one sweep rebuilds them from the
    cluster (as `deploying`); the reconcile jobs it queues are dropped and the records
    marked handled and `running`, as those jobs would have left them (every seeded workload
    is ready)."""
    config = load_config(str(size.config), {})
    redis = redis_client(config)
    services = await build_services(config, redis)
    try:
        report = await sweep(services)
        assert len(report.actions) == size.n, report.lines()[-1]
        await redis.delete(queue.queue_name(size.prefix))
        async for job in redis.scan_iter(match="arq:job:reconcile:*"):
            await redis.delete(job)
        for key in await services.store.keys():
            record = await services.store.load(key)
            assert record is not None
            await services.store.update(key, {"handled": record.generation, "phase": "running"})
    finally:
        await close_services(services)
        await redis.aclose(close_connection_pool=True)


def start_worker(size: Size) -> None:
    with size.log.open("wb") as out:
        size.worker = subprocess.Popen(  # noqa: S603
            [sys.executable, "-c", "from bot.cli import entry; entry()", "worker"]
            + ["--config", str(size.config)],
            cwd=_common.ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while "worker started" not in size.log.read_text():
        if time.monotonic() > deadline or size.worker.poll() is not None:
            raise RuntimeError(f"worker did not start: {size.log.read_text()[-2000:]}")
        time.sleep(0.05)


def template(path: str) -> str:
    path = re.sub(r"/repos/[^/]+/[^/]+", "/repos/{owner}/{repo}", path)
    path = re.sub(r"/namespaces/[^/]+", "/namespaces/{ns}", path)
    return re.sub(r"/\d+(?=/|$)", "/{n}", path)


def kind_of(method: str, path: str, kube: bool) -> str:
    if kube:
        return (
            "list" if method == "GET" and LIST_KUBE.search(path) else f"{method} {template(path)}"
        )
    return "list" if method == "GET" and path.endswith("/pulls") else f"{method} {template(path)}"


async def one_sweep(size: Size, redis: ArqRedis) -> None:
    kube_before, host_before = len(size.kube.requests), len(size.github.requests)
    done_before = len(DONE.findall(size.log.read_text(errors="replace")))
    assert await queue.enqueue_sweep(redis, size.prefix), "a sweep was already queued"
    deadline = time.monotonic() + 300
    while True:
        found = DONE.findall(size.log.read_text(errors="replace"))
        if len(found) > done_before:
            wall, said = found[-1]
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"sweep over {size.n} did not end")
        await asyncio.sleep(0.05)
    job = queue.sweep_job_id(size.prefix)
    while await redis.exists(f"arq:job:{job}", f"arq:in-progress:{job}"):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    size.walls.append(float(wall))
    size.said.append(said)
    size.kube_calls.append(
        Counter(kind_of(r.method, r.path, True) for r in size.kube.requests[kube_before:])
    )
    size.host_calls.append(
        Counter(kind_of(r.method, r.path, False) for r in size.github.requests[host_before:])
    )


def medians(counts: list[Counter[str]]) -> dict[str, float]:
    kinds = sorted({k for c in counts for k in c})
    return {k: median([c.get(k, 0) for c in counts]) for k in kinds}


def table(sizes: list[Size]) -> str:
    base = sizes[0]
    rows = [
        "| stagings | sweep wall time, median (min–max) | ratio to "
        f"{base.n} | Kubernetes calls per sweep (list / other) | host calls per sweep "
        "(list pages / other) | worker RSS after / peak (MB) | sweep said |",
        "|---|---|---|---|---|---|---|",
    ]
    for size in sizes:
        kube, host = medians(size.kube_calls), medians(size.host_calls)
        pid = size.worker.pid if size.worker else 0
        rss, peak = rss_mb(pid), _hwm(pid)
        rows.append(
            f"| {size.n:,} | {median(size.walls):.2f} s ({min(size.walls):.2f}–"
            f"{max(size.walls):.2f}) | {median(size.walls) / median(base.walls):.1f}× | "
            f"{kube.get('list', 0):g} / {sum(v for k, v in kube.items() if k != 'list'):g} | "
            f"{host.get('list', 0):g} / {sum(v for k, v in host.items() if k != 'list'):g} | "
            f"{rss or 0:.0f} / {peak:.0f} | {Counter(size.said).most_common(1)[0][0]} |"
        )
    return "\n".join(rows)


def _hwm(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return math.nan


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with (
        RedisServer() as server,
        tempfile.TemporaryDirectory() as tmp,
        contextlib.ExitStack() as stack,
    ):
        sizes: list[Size] = []
        for n in args.sizes:
            github = stack.enter_context(FakeGitHub())
            # A slow controller tick: every workload is ready already, nothing to roll out.
            kube = stack.enter_context(SeededKube(tick=1.0))
            started = time.monotonic()
            populate(n, github, kube)
            workdir = Path(tmp) / str(n)
            workdir.mkdir()
            text = config_text(server.url, github, kube, workdir, 8080)
            prefix = f"bench-sweep-{n}"
            text = text.replace('key_prefix = "stagingbot-rel"', f'key_prefix = "{prefix}"')
            text = text.replace('level = "debug"', 'level = "info"')
            config = workdir / "stagingbot.toml"
            config.write_text(text)
            size = Size(n, github, kube, config, prefix, workdir / "worker.log")
            await in_step(size)
            print(f"{n} stagings ready in {time.monotonic() - started:.1f} s", flush=True)
            sizes.append(size)
        for size in sizes:
            start_worker(size)
            assert size.worker is not None
            print(f"worker for {size.n}: pid {size.worker.pid}", flush=True)
        redis = redis_client(load_config(str(sizes[0].config), {}))
        try:
            for round_ in range(args.rounds):
                order = sizes if round_ % 2 == 0 else sizes[::-1]
                for size in order:
                    await one_sweep(size, redis)
                print(
                    f"round {round_ + 1}: "
                    + ", ".join(f"{s.n}: {s.walls[-1]:.2f} s" for s in sizes),
                    flush=True,
                )
            print()
            print(table(sizes))
            for size in sizes:
                print(f"\n{size.n}: Kubernetes calls by kind (median): {medians(size.kube_calls)}")
                print(f"{size.n}: host calls by kind (median): {medians(size.host_calls)}")
        finally:
            await redis.aclose(close_connection_pool=True)
            for size in sizes:
                if size.worker is not None:
                    _common.stop_process(size.worker)


if __name__ == "__main__":
    asyncio.run(main())
