"""A burst of pushes: 100 `synchronize` deliveries for one PR within one second, each a new
head SHA (FakeGitHub's head moved to each one just before its delivery, so it reports the last
as head at the end). Counts the server-side applies of the Deployment `web` that reach
FakeKube (PATCH .../deployments/web with an apply-patch content type) and checks that the
Deployment ends at the last SHA. Target: at most 3 applies, final image tag = last SHA.

    .venv/bin/python bench/burst.py [--pushes 100] [--window 1.0] [--rounds 3]

Each round uses its own PR, opened first and waited for until its staging is running (those
applies are not counted). Web app + arq worker in-process with FakeGitHub/FakeKube, as the
end-to-end test runs them. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from _botenv import bot_env, completed, deliver, namespace_of, pr_body, sha_for, web_image
from _common import RedisServer, machine, median

from tests.helpers import REPO  # noqa: E402


async def quiet(env, within: float, still: float = 1.0) -> None:  # type: ignore[no-untyped-def]
    """Wait until neither fake has seen a request for `still` seconds (bounded by `within`)."""
    deadline = time.monotonic() + within
    last = (len(env.github.requests), len(env.kube.requests))
    since = time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        now = (len(env.github.requests), len(env.kube.requests))
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= still:
            return


async def one_round(env, number: int, args: argparse.Namespace) -> dict[str, object]:  # type: ignore[no-untyped-def]
    base = sha_for("burst-open", number)
    env.github.add_pull(REPO, number, base, branch=f"burst-{number}")
    assert await deliver(env.bot, pr_body("opened", number, base)) == 202
    deadline = time.monotonic() + 30
    while not completed(env.github, base) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    await quiet(env, 10)
    namespace = namespace_of(env.kube, number)
    web_path = f"/namespaces/{namespace}/deployments/web"
    applies_before = env.kube.count("PATCH", web_path, "apply-patch")
    checks_before = len(env.github.calls("POST", r"/check-runs$"))

    shas = [sha_for("burst", number, i) for i in range(args.pushes)]
    statuses: list[int] = []
    last_post = [0.0]

    async def push(i: int, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        env.github.set_head(REPO, number, shas[i])
        before = shas[i - 1] if i else base
        last_post[0] = max(last_post[0], time.monotonic())
        statuses.append(await deliver(env.bot, pr_body("synchronize", number, shas[i], before)))

    start = time.monotonic() + 0.05
    step = args.window / args.pushes
    await asyncio.gather(*(push(i, start + i * step) for i in range(args.pushes)))
    sent_all = time.monotonic()
    deadline = sent_all + 60
    while not completed(env.github, shas[-1]) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    done_at = time.monotonic()
    await quiet(env, 20)
    applies = env.kube.count("PATCH", web_path, "apply-patch") - applies_before
    image = web_image(env.kube, number)
    run = completed(env.github, shas[-1])
    return {
        "applies": applies,
        "final_ok": image.endswith(":" + shas[-1]),
        "image_tag": image.rsplit(":", 1)[-1][:12],
        "sent_s": last_post[0] - start,
        "acked_s": sent_all - start,
        "settle_ms": (done_at - sent_all) * 1000 if run else None,
        "conclusion": run["conclusion"] if run else "no completed check run on the last SHA",
        "check_runs_created": len(env.github.calls("POST", r"/check-runs$")) - checks_before,
        "non202": sum(1 for s in statuses if s != 202),
    }


async def measure(args: argparse.Namespace) -> None:
    results = []
    with RedisServer() as redis_server:
        async with bot_env(redis_server.url) as env:
            for r in range(args.rounds):
                results.append(await one_round(env, 300 + r, args))
    print(
        f"\nMachine: {machine()}. {args.pushes} synchronize deliveries for one PR within "
        f"{args.window:g} s, {args.rounds} rounds (one PR each).\n"
    )
    print(
        "| round | last POST sent after (s) | last 202 after (s) | applies of Deployment web "
        "| final image = last SHA | last 202 → check run on last SHA completed (ms) "
        "| check runs created | non-202 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for i, res in enumerate(results, 1):
        settle = f"{res['settle_ms']:.0f}" if res["settle_ms"] is not None else "never"
        print(
            f"| {i} | {res['sent_s']:.2f} | {res['acked_s']:.2f} | {res['applies']} | "
            f"{'yes' if res['final_ok'] else 'NO (' + str(res['image_tag']) + ')'} | {settle} "
            f"({res['conclusion']}) | {res['check_runs_created']} | {res['non202']} |"
        )
    applies = [int(r["applies"]) for r in results]  # type: ignore[call-overload]
    met = max(applies) <= 3 and all(r["final_ok"] for r in results)
    print(
        f"\nMedian applies: {median(applies):g} (max {max(applies)}). Target ≤ 3 applies and final "
        f"SHA = last: {'met' if met else 'NOT met'}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pushes", type=int, default=100)
    parser.add_argument(
        "--window", type=float, default=1.0, help="seconds the pushes are spread over"
    )
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
