"""Git-host API budget of one PR's life: open → 3 pushes → close, each step waited for
(check run completed on the head; after close: namespace gone, comment says gone, deployment
inactive), then every request FakeGitHub answered, grouped by kind (method + path template).
Target: at most 30 requests in all, one comment created, no listing of comments once the
sticky comment's id is known.

    .venv/bin/python bench/api_budget.py [--pushes 3] [--rounds 3]

Each round is a fresh bot (fresh caches, fresh Redis), so the installation look-up and token
are counted every round, as for a bot's first PR after a restart. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter

from _botenv import (
    bot_env,
    completed,
    deliver,
    eventually,
    namespace_of,
    pr_body,
    sha_for,
    template,
)
from _common import RedisServer, machine, median

from tests.helpers import REPO  # noqa: E402

NUMBER = 2


async def one_round(args: argparse.Namespace, r: int) -> tuple[Counter[str], dict[str, int]]:
    with RedisServer() as redis_server:
        async with bot_env(redis_server.url) as env:
            gh = env.github
            head = sha_for("budget", r, 0)
            gh.add_pull(REPO, NUMBER, head, branch="budget")
            assert await deliver(env.bot, pr_body("opened", NUMBER, head)) == 202
            await eventually(lambda: completed(gh, head), "check run completed after open")
            await eventually(
                lambda: any("running" in c["body"] for c in gh.comments(REPO, NUMBER)),
                "comment says running",
            )
            for p in range(1, args.pushes + 1):
                before, head = head, sha_for("budget", r, p)
                gh.set_head(REPO, NUMBER, head)
                assert await deliver(env.bot, pr_body("synchronize", NUMBER, head, before)) == 202
                await eventually(
                    lambda head=head: completed(gh, head), f"check run completed after push {p}"
                )
                await eventually(
                    lambda head=head: any(
                        head[:7] in c["body"] and "running" in c["body"]
                        for c in gh.comments(REPO, NUMBER)
                    ),
                    f"comment shows push {p} running",
                )
            gh.close_pull(REPO, NUMBER)
            assert await deliver(env.bot, pr_body("closed", NUMBER, head)) == 202
            await eventually(lambda: namespace_of(env.kube, NUMBER) is None, "namespace deleted")
            await eventually(lambda: "gone" in gh.comments(REPO, NUMBER)[0]["body"], "comment gone")
            await eventually(
                lambda: (
                    (d := max(gh.deployments(REPO), key=lambda d: d["id"]))
                    and gh.deployment_statuses(d["id"])
                    and gh.deployment_statuses(d["id"])[-1]["state"] == "inactive"
                ),
                "deployment inactive",
            )
            await asyncio.sleep(1.0)  # anything still in flight after the last visible effect
            requests = list(gh.requests)
    kinds = Counter(f"{q.method} {template(q.path)}" for q in requests)
    created = [
        i
        for i, q in enumerate(requests)
        if q.method == "POST" and q.path.endswith(f"/issues/{NUMBER}/comments")
    ]
    lists_after = sum(
        1
        for i, q in enumerate(requests)
        if created
        and i > created[0]
        and q.method == "GET"
        and q.path.endswith(f"/issues/{NUMBER}/comments")
    )
    facts = {
        "total": len(requests),
        "comments_created": len(created),
        "comments_listed_after_sticky": lists_after,
        "comments_listed_total": sum(
            1
            for q in requests
            if q.method == "GET" and q.path.endswith(f"/issues/{NUMBER}/comments")
        ),
        "errors": sum(1 for q in requests if q.status >= 400),
    }
    return kinds, facts


async def measure(args: argparse.Namespace) -> None:
    rounds = [await one_round(args, r) for r in range(args.rounds)]
    all_kinds = sorted(set().union(*(k for k, _ in rounds)))
    print(
        f"\nMachine: {machine()}. open → {args.pushes} pushes → close, each step waited for; "
        f"{args.rounds} rounds, each with a fresh bot and Redis.\n"
    )
    print("| request kind | " + " | ".join(f"round {i + 1}" for i in range(args.rounds)) + " |")
    print("|---|" + "---|" * args.rounds)
    for kind in all_kinds:
        print(f"| `{kind}` | " + " | ".join(str(k[kind]) for k, _ in rounds) + " |")
    for name in (
        "total",
        "comments_created",
        "comments_listed_total",
        "comments_listed_after_sticky",
        "errors",
    ):
        print(
            f"| **{name.replace('_', ' ')}** | "
            + " | ".join(str(f[name]) for _, f in rounds)
            + " |"
        )
    totals = [f["total"] for _, f in rounds]
    ok = (
        max(totals) <= 30
        and all(f["comments_created"] == 1 for _, f in rounds)
        and all(f["comments_listed_after_sticky"] == 0 for _, f in rounds)
    )
    print(
        f"\nMedian total: {median(totals):g}. Target ≤ 30, one comment, no comment listing once "
        f"the sticky one is known: {'met' if ok else 'NOT met'}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pushes", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
