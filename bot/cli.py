"""The `stagingbot` command line: run the bot (web, worker or both) and check a config."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence

from bot import __version__
from bot.config import Config, ConfigError, load_config, redacted

USAGE = """\
stagingbot run            web server and worker in one process (small installs)
stagingbot web            the webhook receiver only
stagingbot worker         the reconcile worker only
stagingbot check-config   validate the configuration and print it with secrets masked
stagingbot sweep          compare cluster, Git hosts and Redis once, repair, say what it did
"""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="stagingbot",
        description="One staging environment per pull request.",
        epilog=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"stagingbot {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (
        ("run", "web server and worker in one process"),
        ("web", "the webhook receiver only"),
        ("worker", "the reconcile worker only"),
        ("check-config", "validate the configuration and print it, secrets masked"),
        ("sweep", "run one sweep now, in this process, and print what it found and did"),
    ):
        command = sub.add_parser(name, help=text, description=text)
        command.add_argument(
            "--config",
            metavar="PATH",
            help="TOML configuration file (default: $STAGINGBOT_CONFIG)",
        )
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = load_config(args.config, os.environ)
    except ConfigError as exc:
        print(f"stagingbot: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(json.dumps(redacted(config), indent=2, sort_keys=True))
        print("configuration is valid", file=sys.stderr)
        return 0
    if args.command == "sweep":
        return asyncio.run(sweep_once(config))
    from bot.serve import serve

    return asyncio.run(
        serve(config, web=args.command in ("run", "web"), worker=args.command in ("run", "worker"))
    )


async def sweep_once(config: Config) -> int:
    """One sweep with the worker's clients: 0 when every source answered, else 1 and why."""
    from redis.exceptions import RedisError

    from bot import logs
    from bot.errors import PermanentError, TemporaryError
    from bot.serve import safe_url
    from bot.sweep import sweep
    from bot.web import redis_client
    from bot.worker import build_services, close_services

    logs.setup(config.log.level, config.log.format)
    redis = redis_client(config)
    try:
        services = await build_services(config, redis)
        try:
            report = await sweep(services)
        finally:
            await close_services(services)
    except (RedisError, OSError) as exc:
        where = safe_url(config.redis.url)
        print(f"stagingbot: sweep failed: Redis at {where}: {exc}", file=sys.stderr)
        return 1
    except (TemporaryError, PermanentError, ConfigError) as exc:
        print(f"stagingbot: sweep failed: {exc}", file=sys.stderr)
        return 1
    finally:
        await redis.aclose(close_connection_pool=True)
    for line in report.lines():
        print(line)
    return 1 if report.failed else 0


def entry() -> None:  # pragma: no cover - console script shim
    sys.exit(main())


__all__ = ["Config", "entry", "main"]
