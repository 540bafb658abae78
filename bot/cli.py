"""The `stagingbot` command line: run the bot, check a config, and steer stagings through
the API (`bot.cli_remote`); this module only wires the arguments."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping, Sequence

from bot import __version__, cli_remote
from bot._configparse import Invalid, parse_duration
from bot.cli_remote import ACTIONS, TOKEN_ENV, URL_ENV, WAITABLE, Terminal
from bot.client import Exit
from bot.config import Config, ConfigError, load_config, redacted
from bot.demo import ACTIONS as DEMO_ACTIONS
from bot.demo import HOSTS as DEMO_HOSTS

USAGE = """\
stagingbot run            web server and worker in one process (small installs)
stagingbot web            the webhook receiver only
stagingbot worker         the reconcile worker only
stagingbot check-config   validate the configuration and print it with secrets masked
stagingbot sweep          queue a sweep on the server (--url), or run one here (--config)
stagingbot demo-event opened|synchronize|closed|comment --pr N [--host gitlab]
                          a signed sample webhook (the local trial, offline mode)

stagingbot list [--host H] [--repo R] [--state S] [--search TEXT]
stagingbot show REF | history REF
stagingbot deploy REF [--sha SHA] [--wait] | redeploy REF [--wait] | restore REF [--wait]
stagingbot archive REF | destroy REF | extend REF [--for DURATION]
stagingbot set REF KEY=VALUE... | unset REF KEY...
stagingbot qa-pass REF [--note TEXT] | qa-fail REF --reason TEXT

REF is github:owner/repo#12 or gitlab:group/project!12 (owner/repo#12 and group/project!12
work too). The server and token come from --url/--token or STAGINGBOT_URL/STAGINGBOT_TOKEN.
Exit codes: 0 ok, 1 server or network error, 2 usage or configuration error, 3 not
allowed (401/403), 4 not found, 5 refused (409/422), 6 --wait: failed, 7 --wait: timed out.
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
        ("sweep", "queue a sweep on the server, or with --config run one in this process"),
    ):
        parents = [remote_options()] if name == "sweep" else []
        command = sub.add_parser(name, help=text, description=text, parents=parents)
        command.add_argument(
            "--config",
            metavar="PATH",
            help="TOML configuration file (default: $STAGINGBOT_CONFIG)",
        )
    add_api_commands(sub)
    add_demo_command(sub)
    return top


def add_demo_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = (
        "send a signed, real-shaped webhook to the running bot (local trial): a pull request "
        "(GitHub) or merge request (GitLab) opened, pushed to or closed, or a comment on it"
    )
    demo = sub.add_parser("demo-event", help=text, description=text)
    demo.add_argument("action", choices=DEMO_ACTIONS)
    demo.add_argument("--pr", type=int, required=True, metavar="N", help="the request number")
    demo.add_argument(
        "--host",
        choices=DEMO_HOSTS,
        help="the Git host to play (default: github, or gitlab when only GitLab is served)",
    )
    demo.add_argument("--url", help="the bot's base URL (default: from server.host/port)")
    demo.add_argument("--config", metavar="PATH", help="default: $STAGINGBOT_CONFIG")
    demo.add_argument(
        "--repo",
        help="owner/name, or group/project on GitLab (default: the first one served there)",
    )
    demo.add_argument("--sha", help="the head commit (default: a new random one)")
    demo.add_argument("--branch", help="the source branch (default: feature/demo-N)")
    demo.add_argument(
        "--body",
        metavar="TEXT",
        help="comment only (GitLab): its text (default: `/staging status`, with the "
        "configured commands.prefix)",
    )


def remote_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--url", help=f"the bot's base URL (default: ${URL_ENV})")
    options.add_argument(
        "--token", help=f"an API token (default: ${TOKEN_ENV}, which keeps it out of `ps`)"
    )
    options.add_argument("--json", action="store_true", help="print the API's JSON")
    return options


def add_api_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def command(name: str, text: str, ref: bool = True) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=text, description=text, parents=[remote_options()])
        if ref:
            parser.add_argument(
                "ref", metavar="REF", help="github:owner/repo#12, gitlab:group/project!12"
            )
        return parser

    listing = command("list", "list the stagings, filtered", ref=False)
    listing.add_argument("--host", choices=("github", "gitlab"))
    listing.add_argument("--repo", help="owner/repo or group/project")
    listing.add_argument("--state", help="running, deploying, failed, archived, ...")
    listing.add_argument("--search", metavar="TEXT", help="in branch, title and request")
    command("show", "one staging: state, URL, request, overrides, recent history")
    command("history", "everything that happened to one staging, newest first")
    for action, text in (
        ("deploy", "deploy the staging (on a fork: approve the head)"),
        ("redeploy", "apply the current head again"),
        ("archive", "scale to zero, keep the data"),
        ("restore", "bring an archived staging back"),
        ("destroy", "remove the staging now"),
        ("extend", "keep the staging from idle sleep (archived: from removal) for longer"),
    ):
        parser = command(action, text)
        if action == "deploy":
            parser.add_argument(
                "--sha",
                help="the head, built: deploy it now without waiting for staging.wait_for "
                "(40 hex characters; never an unapproved fork commit)",
            )
        if action == "extend":
            parser.add_argument(
                "--for",
                dest="duration",
                metavar="DURATION",
                help="how long: 12h, 2d, 1w (default: the server's staging.idle_ttl)",
            )
        if action in WAITABLE:
            parser.add_argument(
                "--wait", action="store_true", help="follow it until running (exit 0) or failed (6)"
            )
            parser.add_argument(
                "--timeout",
                type=duration,
                default=cli_remote.DEFAULT_TIMEOUT,
                metavar="DURATION",
                help="how long --wait waits: 90s, 15m, 1h (default: 15m); then exit 7",
            )
    setter = command("set", "set environment variables of the staging (secret keys too)")
    setter.add_argument("assignments", nargs="*", metavar="KEY=VALUE")
    setter.add_argument(
        "--secret",
        metavar="KEY",
        help="also set KEY (one of the bot's commands.secret_keys) to a value read from "
        "standard input, or asked for without echo on a terminal: it stays out of the "
        "shell history and the process list",
    )
    unsetter = command("unset", "remove environment variables of the staging")
    unsetter.add_argument("keys", nargs="+", metavar="KEY")
    passing = command("qa-pass", "QA passed the staging at its head: staging/qa turns green")
    passing.add_argument("--note", default="", help="what QA says (shown on the check)")
    failing = command("qa-fail", "QA failed the staging at its head: staging/qa turns red")
    failing.add_argument("--reason", required=True, help="what is wrong (shown on the check)")


def duration(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except Invalid:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (90s, 15m, 1h)") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("the timeout must be more than 0")
    return seconds


REMOTE = frozenset({"list", "show", "history", "set", "unset", "qa-pass", "qa-fail", *ACTIONS})
BOTH_WAYS = "sweep: give --config (run one here) or --url (ask the server), not both"


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    terminal: Terminal | None = None,
) -> int:
    args = parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    if args.command == "sweep" and args.config and args.url:
        print(f"stagingbot: {BOTH_WAYS}", file=terminal.err if terminal else sys.stderr)
        return Exit.USAGE
    # `sweep` asks the server when one is named and no configuration file is given.
    asks_server = args.command == "sweep" and not args.config and (args.url or environ.get(URL_ENV))
    if args.command in REMOTE or asks_server:
        return cli_remote.run(args, environ, terminal or Terminal.real())
    try:
        config = load_config(args.config, environ)
    except ConfigError as exc:
        print(f"stagingbot: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "demo-event":
        return demo_event(args, config, terminal or Terminal.real())
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


def demo_event(args: argparse.Namespace, config: Config, terminal: Terminal) -> int:
    from bot import demo

    def usage(message: str) -> int:
        print(f"stagingbot: {message}", file=terminal.err)
        return Exit.USAGE

    if args.pr < 1:
        return usage("--pr must be a positive number")
    host = args.host or demo.default_host(config)
    if args.action not in demo.FILES[host]:
        return usage(f"demo-event {args.action}: only for GitLab merge requests (--host gitlab)")
    if args.body is not None and args.action != "comment":
        return usage("--body is the text of a `comment`")
    repo = args.repo or demo.default_repo(config, host)
    problem = demo.repo_problem(host, repo)
    if problem:
        return usage(f"--repo: {problem}")
    body = demo.default_comment(config) if args.body is None else args.body
    event = demo.Demo(args.action, args.pr, repo, args.sha or "", args.branch or "", host, body)
    url = args.url or demo.base_url(config)
    return demo.send(config, event, url, terminal.out, terminal.err)


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
