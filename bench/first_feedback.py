"""First feedback: from POSTing a signed pull_request.opened to FakeGitHub receiving the first
`POST .../check-runs` with status in_progress for that PR's head.

    .venv/bin/python bench/first_feedback.py                      # smoke: 60 PRs at 2/s
    .venv/bin/python bench/first_feedback.py --count 200 --rate 2 # the full run (100 s)

Runs the real web app (uvicorn, real port) and the real arq worker in this process, as
tests/integration/test_end_to_end.py does, against FakeGitHub and FakeKube (FakeGitHub on
threads in this process; FakeKube in its own process unless --kube-threads) and a private
redis-server. Each PR is a variant of the fixture
(`number`, `pull_request.number`, head SHA) added to FakeGitHub before it is opened.
The arrival time is taken when FakeGitHub records the request (bench/_botenv.py TimedLog).
One PR is opened first as a warm-up (installation token, Kubernetes discovery) and reported
apart. Target: p95 < 250 ms. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from _botenv import bot_env, deliver, pr_body, sha_for
from _common import RedisServer, machine, median, percentile

from tests.helpers import REPO  # noqa: E402


async def measure(args: argparse.Namespace) -> None:
    with RedisServer() as redis_server:
        async with bot_env(redis_server.url, args.rollout_poll, args.kube_process) as env:
            sent: dict[str, float] = {}
            acked: dict[str, float] = {}
            first: dict[str, float] = {}
            statuses: list[int] = []
            scanned = 0

            def scan() -> None:
                nonlocal scanned
                log = env.log
                end = len(log)
                for i in range(scanned, end):
                    r = log[i]
                    if (
                        r.method == "POST"
                        and r.path.endswith("/check-runs")
                        and isinstance(r.body, dict)
                        and r.body.get("status") == "in_progress"
                    ):
                        sha = r.body.get("head_sha", "")
                        if sha in sent and sha not in first:
                            first[sha] = log.times[i]
                scanned = end

            async def open_pr(number: int, at: float) -> None:
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                sha = sha_for("first-feedback", number)
                body = pr_body("opened", number, sha)
                t0 = time.monotonic()
                sent[sha] = t0
                statuses.append(await deliver(env.bot, body))
                acked[sha] = time.monotonic() - t0

            # Warm-up PR (cold caches: installation token, API discovery), reported apart.
            warm = 9000
            env.github.add_pull(REPO, warm, sha_for("first-feedback", warm), branch="warm")
            await open_pr(warm, 0)
            warm_sha = sha_for("first-feedback", warm)
            deadline = time.monotonic() + 30
            while warm_sha not in first and time.monotonic() < deadline:
                scan()
                await asyncio.sleep(0.01)
            cold = (first[warm_sha] - sent[warm_sha]) * 1000 if warm_sha in first else None
            sent.clear(), acked.clear()

            numbers = list(range(100, 100 + args.count))
            for n in numbers:
                env.github.add_pull(REPO, n, sha_for("first-feedback", n), branch=f"feature-{n}")
            start = time.monotonic() + 0.1
            tasks = [
                asyncio.create_task(open_pr(n, start + i / args.rate))
                for i, n in enumerate(numbers)
            ]
            bound = time.monotonic() + args.count / args.rate + args.settle
            while (not all(t.done() for t in tasks) or len(first) < args.count + 1) and (
                time.monotonic() < bound
            ):
                scan()
                await asyncio.sleep(0.01)
            scan()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    latencies = [(first[s] - t) * 1000 for s, t in sent.items() if s in first]
    in_order = [
        (first[s] - t) * 1000 for s, t in sorted(sent.items(), key=lambda kv: kv[1]) if s in first
    ]
    quarter = max(1, len(in_order) // 4)
    quarters = [in_order[i : i + quarter] for i in range(0, len(in_order), quarter)][:4]
    acks = [v * 1000 for v in acked.values()]
    missing = len(sent) - len(latencies)
    p95 = percentile(latencies, 95)
    print(
        f"\nMachine: {machine()}. {args.count} PRs opened at {args.rate:g}/s, rollout_poll "
        f"{args.rollout_poll:g} s; web app, arq worker and FakeGitHub in one process, FakeKube "
        f"{'in its own process' if args.kube_process else 'on threads in the same process'}; "
        "private redis-server.\n"
    )
    print("| measure | n | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) |")
    print("|---|---|---|---|---|---|")
    print(
        f"| delivery POST → first in_progress check run | {len(latencies)} | "
        f"{median(latencies):.1f} | {p95:.1f} | {percentile(latencies, 99):.1f} | "
        f"{max(latencies, default=float('nan')):.1f} |"
    )
    print(
        f"| delivery POST → 202 received | {len(acks)} | {median(acks):.1f} | "
        f"{percentile(acks, 95):.1f} | {percentile(acks, 99):.1f} | "
        f"{max(acks, default=float('nan')):.1f} |"
    )
    for i, part in enumerate(quarters, 1):
        print(
            f"| … PRs in quarter {i} of the run (in opening order) | {len(part)} | "
            f"{median(part):.1f} | {percentile(part, 95):.1f} | {percentile(part, 99):.1f} | "
            f"{max(part, default=float('nan')):.1f} |"
        )
    print()
    print(
        f"Warm-up PR (cold: installation token, discovery), not counted: "
        f"{f'{cold:.1f} ms' if cold is not None else 'no check run'}. "
        f"Non-202 answers: {sum(1 for s in statuses if s != 202)}. "
        f"PRs with no in_progress check run within the bound: {missing}. "
        f"Target p95 < 250 ms: {'met' if latencies and p95 < 250 and not missing else 'NOT met'}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=60, help="PRs to open (default 60; full: 200)")
    parser.add_argument("--rate", type=float, default=2.0, help="PRs opened per second (default 2)")
    parser.add_argument(
        "--rollout-poll",
        type=float,
        default=5.0,
        help="kubernetes.rollout_poll in seconds (default 5.0, the bot's default; "
        "the end-to-end test uses 0.05)",
    )
    parser.add_argument(
        "--kube-threads",
        dest="kube_process",
        action="store_false",
        help="run FakeKube on threads in this process, as the end-to-end test "
        "does (default: its own process, so its O(n²) control loop and schema "
        "validation do not share the bot's GIL)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=30.0,
        help="seconds to wait after the last open for missing check runs",
    )
    args = parser.parse_args()
    if args.count <= 0 or args.rate <= 0:
        sys.exit("--count and --rate must be positive")
    asyncio.run(measure(args))


if __name__ == "__main__":
    main()
