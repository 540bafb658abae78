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
    from bot.serve import serve

    return asyncio.run(
        serve(config, web=args.command in ("run", "web"), worker=args.command in ("run", "worker"))
    )


def entry() -> None:  # pragma: no cover - console script shim
    sys.exit(main())


__all__ = ["Config", "entry", "main"]
