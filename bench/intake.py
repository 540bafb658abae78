"""Webhook intake throughput: stagingbot's real web app vs a bare Starlette endpoint.

    .venv/bin/python bench/intake.py [--rounds 6] [--connections 32] [--duration 10]

Starts a private redis-server, the stagingbot web app (bench/bot_app.py) and a bare
Starlette app (bench/bare_app.py), each uvicorn (uvloop + httptools, one process, no access
log) pinned to core 1; drives both with the same `wrk` + bench/signed.lua (the real 28 KB
pull_request.opened fixture, a valid X-Hub-Signature-256, a new X-GitHub-Delivery per
request), wrk and redis pinned to core 0, alternating the two servers for N rounds.
Then p99 latency at a fixed rate of half stagingbot's median max (wrk's Lua delay(): see
--help), RSS of both server processes, and a check that every 202 was really stored
(staging generation and delivery keys in Redis vs the 202 count).
--baseline-tree DIR adds a third server, the web app of another copy of the source tree,
in the same rounds (rotating order), for a before/after measured under the same load.
Prints a markdown table. No timing is asserted: the numbers are for reading.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    FIXTURE,
    ROOT,
    RedisServer,
    free_port,
    machine,
    median,
    pinned,
    rss_mb,
    stop_process,
    wait_port,
)
from redis import Redis  # noqa: E402  (after _common put the repo on sys.path)

from tests.helpers import WEBHOOK_SECRET  # noqa: E402

PREFIX = "stagingbot-test"  # make_config's key prefix
LUA = ROOT / "bench" / "signed.lua"
BENCH_LINE = re.compile(r"^BENCH (.*)$", re.M)


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    rps: list[float] = field(default_factory=list)
    p99_full_ms: list[float] = field(default_factory=list)
    p50_full_ms: list[float] = field(default_factory=list)
    rate_rps: list[float] = field(default_factory=list)
    p99_rate_ms: list[float] = field(default_factory=list)
    p50_rate_ms: list[float] = field(default_factory=list)
    errors: int = 0
    non202: int = 0
    accepted: int = 0


def run_wrk(
    port: int, args: argparse.Namespace, env: dict[str, str], duration: float, delay_ms: float = 0.0
) -> dict[str, int]:
    run_env = {
        **os.environ,
        **env,
        "BENCH_RUN": uuid.uuid4().hex[:12],
        "BENCH_DELAY_MS": f"{delay_ms:.3f}",
    }
    cmd = pinned(
        [
            "wrk",
            f"-t{args.threads}",
            f"-c{args.connections}",
            f"-d{duration:g}s",
            "--timeout",
            "5s",
            "-s",
            str(LUA),
            f"http://127.0.0.1:{port}/webhooks/github",
        ],
        args.wrk_core,
    )
    out = subprocess.run(  # noqa: S603
        cmd, env=run_env, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    match = BENCH_LINE.search(out.stdout)
    if match is None:
        raise RuntimeError(f"wrk gave no BENCH line:\n{out.stdout}\n{out.stderr}")
    return {k: int(v) for k, v in (kv.split("=") for kv in match.group(1).split())}


def rotated(servers: list[Server], round_no: int) -> list[Server]:
    """The order of one round: alternating for two servers, rotating for three."""
    shift = round_no % len(servers)
    return servers[shift:] + servers[:shift]


def stored(redis: Redis) -> tuple[int, int]:
    """(sum of staging generations, number of delivery keys) under the bench prefix."""
    generation = 0
    for key in redis.scan_iter(f"{PREFIX}:staging:*", count=1000):
        generation += int(redis.hget(key, "generation") or 0)
    deliveries = sum(1 for _ in redis.scan_iter(f"{PREFIX}:delivery:*", count=10000))
    return generation, deliveries


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds (default 6)")
    parser.add_argument("--threads", type=int, default=1, help="wrk -t (default 1)")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    parser.add_argument("--duration", type=float, default=10, help="seconds per run (default 10)")
    parser.add_argument("--warmup", type=float, default=2, help="warm-up seconds per server")
    parser.add_argument(
        "--rate-rounds",
        type=int,
        default=3,
        help="rounds of the fixed-rate latency run (0 to skip; default 3)",
    )
    parser.add_argument("--server-core", type=int, default=1)
    parser.add_argument("--wrk-core", type=int, default=0, help="core for wrk and redis-server")
    parser.add_argument(
        "--no-log",
        action="store_true",
        help="stagingbot without its JSON info log line per delivery",
    )
    parser.add_argument(
        "--baseline-tree",
        metavar="DIR",
        help="also run the web app of another copy of the source tree (its bench/bot_app.py,"
        " importing its bot/), as a third server in the same rounds: before/after in one run",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")

    body = FIXTURE.read_bytes()
    signature = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    workdir = tempfile.mkdtemp(prefix="bench-intake-")
    body_file = os.path.join(workdir, "body.json")
    with open(body_file, "wb") as out:
        out.write(body)
    env = {"BENCH_BODY_FILE": body_file, "BENCH_SIGNATURE": signature}
    python = sys.executable

    with RedisServer(core=args.wrk_core) as redis_server:
        redis = Redis.from_url(redis_server.url)
        servers: list[Server] = []
        try:
            bare_port, bot_port = free_port(), free_port()
            bare = subprocess.Popen(  # noqa: S603
                pinned(
                    [python, str(ROOT / "bench" / "bare_app.py"), "--port", str(bare_port)],
                    args.server_core,
                ),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            servers.append(Server("bare Starlette (read body, 202)", bare, bare_port))
            bot_cmd = [
                python,
                str(ROOT / "bench" / "bot_app.py"),
                "--port",
                str(bot_port),
                "--redis-url",
                redis_server.url,
            ] + (["--no-log"] if args.no_log else [])
            bot = subprocess.Popen(  # noqa: S603
                pinned(bot_cmd, args.server_core),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            servers.append(Server("stagingbot web (`bot.web.create_app`)", bot, bot_port))
            if args.baseline_tree:
                base_port = free_port()
                base_cmd = [*bot_cmd[:1], str(Path(args.baseline_tree) / "bench" / "bot_app.py")]
                base_cmd += ["--port", str(base_port), *bot_cmd[4:]]
                base = subprocess.Popen(  # noqa: S603
                    pinned(base_cmd, args.server_core),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                servers.append(Server("stagingbot web, baseline tree", base, base_port))
            for server in servers:
                wait_port(server.port, server.proc)
            bare_s, bot_s = servers[:2]
            bots = servers[1:]

            print(
                f"# intake bench: {machine()}; wrk -t{args.threads} -c{args.connections} "
                f"-d{args.duration:g}s, {args.rounds} rounds, log={'off' if args.no_log else 'on'}",
                file=sys.stderr,
            )
            for server in servers:  # warm-up, not counted
                run_wrk(server.port, args, env, args.warmup)

            for round_no in range(args.rounds):
                order = rotated(servers, round_no)
                for server in order:
                    is_bot = any(server is b for b in bots)
                    before = stored(redis) if is_bot else (0, 0)
                    result = run_wrk(server.port, args, env, args.duration)
                    rps = result["requests"] / (result["duration_us"] / 1e6)
                    server.rps.append(rps)
                    server.p50_full_ms.append(result["p50_us"] / 1000)
                    server.p99_full_ms.append(result["p99_us"] / 1000)
                    server.errors += sum(v for k, v in result.items() if k.startswith("err_"))
                    server.non202 += result["other"]
                    server.accepted += result["accepted"]
                    line = f"round {round_no + 1} {server.name[:10]:10} {rps:8.0f} req/s"
                    if is_bot:
                        time.sleep(0.5)  # requests cut off by wrk's end may still be finishing
                        after = stored(redis)
                        gen, dels = after[0] - before[0], after[1] - before[1]
                        line += (
                            f"  202s={result['accepted']} generation+={gen} delivery keys+={dels}"
                        )
                        if gen < result["accepted"] or dels < result["accepted"]:
                            line += "  !! a 202 was not stored"
                        server.stored_extra = getattr(server, "stored_extra", [])  # type: ignore[attr-defined]
                        server.stored_extra.append(min(gen, dels) - result["accepted"])  # type: ignore[attr-defined]
                    print(line, file=sys.stderr)

            target = median(bot_s.rps) / 2
            # Per-connection think time so c connections together send ~target req/s.
            delay_ms = args.connections * 1000 / target
            for round_no in range(args.rate_rounds):
                order = rotated(servers, round_no)
                for server in order:
                    result = run_wrk(server.port, args, env, args.duration, delay_ms=delay_ms)
                    server.rate_rps.append(result["requests"] / (result["duration_us"] / 1e6))
                    server.p50_rate_ms.append(result["p50_us"] / 1000)
                    server.p99_rate_ms.append(result["p99_us"] / 1000)
                    server.errors += sum(v for k, v in result.items() if k.startswith("err_"))
                    server.non202 += result["other"]
                    print(
                        f"rate round {round_no + 1} {server.name[:10]:10} "
                        f"{server.rate_rps[-1]:6.0f} req/s p99 {server.p99_rate_ms[-1]:.2f} ms",
                        file=sys.stderr,
                    )
            rss = {s.name: rss_mb(s.proc.pid) for s in servers}
        finally:
            for server in servers:
                stop_process(server.proc)
            redis.close()

    bare_rps = median(bare_s.rps)
    print()
    print(
        f"Machine: {machine()}. wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s, "
        f"medians of {args.rounds} alternating rounds; servers pinned to core {args.server_core}, "
        f"wrk and redis-server to core {args.wrk_core}; stagingbot log "
        f"{'off' if args.no_log else 'on (JSON, info)'}."
    )
    print()
    print(
        "| server | req/s (median) | min–max | relative to bare | p50 / p99 at full load (ms) "
        f"| p50 / p99 at ~{target:.0f} req/s (ms) | achieved rate | RSS after (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for s in servers:
        rate_cols = (
            f"{median(s.p50_rate_ms):.2f} / {median(s.p99_rate_ms):.2f}"
            if s.rate_rps
            else "not run"
        )
        achieved = f"{median(s.rate_rps):.0f}" if s.rate_rps else "–"
        mem = rss.get(s.name)
        print(
            f"| {s.name} | {median(s.rps):,.0f} | {min(s.rps):,.0f}–{max(s.rps):,.0f} "
            f"| {median(s.rps) / bare_rps:.2f} "
            f"| {median(s.p50_full_ms):.2f} / {median(s.p99_full_ms):.2f} | {rate_cols} "
            f"| {achieved} | {mem:.0f} |"
            if mem
            else "| ? |"
        )
    print()
    for bot_s in bots:
        extra = getattr(bot_s, "stored_extra", [])
        ok = all(e >= 0 for e in extra)
        print(
            f"Stored check ({bot_s.name}): {bot_s.accepted} deliveries answered 202 in the "
            f"counted rounds; every round stored at least as many (generation and delivery "
            f"keys): {'yes' if ok else 'NO'}; stored beyond the 202s wrk saw, per round "
            f"(requests in flight when wrk stopped): {extra}. "
            f"Non-202 answers: stagingbot {bot_s.non202}, bare {bare_s.non202}; "
            f"socket errors/timeouts: stagingbot {bot_s.errors}, bare {bare_s.errors}."
        )
        print()


if __name__ == "__main__":
    main()
