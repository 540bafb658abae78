"""The local trial's configuration (written by `scripts/demo`): offline mode, the `command`
provisioner with `examples/local/`, one repository on each Git host (the ones of the hosts'
example payloads, which `stagingbot demo-event` sends), fresh webhook secrets and an
operator token for the dashboard.

`python -m bot.trial --root R --config FILE --port P --redis-url URL` writes FILE (mode
600) and prints the dashboard token; the configuration is checked by the real loader
before it is written, so a trial never starts on a file the bot would refuse.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bot.config import ConfigError, load_config

LOCAL_EXAMPLE = Path("examples") / "local" / "stagingbot.toml"
TRIAL_REPO = "Codertocat/Hello-World"  # the repository of GitHub's example payloads
TRIAL_PROJECT = "gitlabhq/gitlab-test"  # the project of GitLab's example merge request
HEADER = """\
# The local trial, written by scripts/demo (python -m bot.trial). Offline mode: no Git host
# is called, signed webhooks are trusted, reports go to the log and the dashboard. Every
# staging is examples/local/app.py on a free local port with its own SQLite file.
# Do not use this file for a real installation: see "Using it for real" in README.md.
"""


def trial_settings(
    root: Path,
    port: int,
    redis_url: str,
    token: str,
    *,
    secret: str,
    key: str,
    gitlab_secret: str,
) -> dict[str, Any]:
    """The trial's configuration as TOML tables (examples/local's [command] part merged in).

    `secret` is GitHub's webhook secret, `gitlab_secret` GitLab's (its X-Gitlab-Token)."""
    example = tomllib.loads((root / LOCAL_EXAMPLE).read_text())
    command = {**example["command"], "workdir": str(root)}
    return {
        "mode": "offline",
        "server": {"host": "127.0.0.1", "port": port},
        "redis": {"url": redis_url, "key_prefix": "stagingbot-trial"},
        "github": {"webhook_secret": secret},
        "gitlab": {"webhook_secret": gitlab_secret},
        "staging": {
            **example["staging"],
            "base_domain": "staging.localhost",
            "secret_key": key,
            "url_scheme": "http",
        },
        "command": command,
        "kubernetes": {"rollout_poll": "1s", "rollout_deadline": "2m"},
        "log": {"format": "text"},
        "repos": [
            {"host": "github", "repo": TRIAL_REPO},
            {"host": "gitlab", "repo": TRIAL_PROJECT},
        ],
        "api": {"tokens": [{"name": "trial", "token": token, "role": "operator"}]},
    }


def to_toml(settings: Mapping[str, Any]) -> str:
    """TOML for the few shapes the trial uses: strings, numbers, lists of strings, tables,
    and lists of tables. JSON's string escapes are valid in TOML basic strings."""
    lines = [HEADER]
    scalars = {k: v for k, v in settings.items() if not isinstance(v, dict | list)}
    lines += [f"{k} = {json.dumps(v)}" for k, v in scalars.items()]
    for name, value in settings.items():
        if isinstance(value, list):  # [[repos]]
            for entry in value:
                lines += ["", f"[[{name}]]", *_pairs(entry)]
        elif isinstance(value, dict) and value and all(map(_tables, value.values())):
            for sub, entries in value.items():  # [[api.tokens]]
                for entry in entries:
                    lines += ["", f"[[{name}.{sub}]]", *_pairs(entry)]
        elif isinstance(value, dict):
            lines += ["", f"[{name}]", *_pairs(value)]
    return "\n".join(lines) + "\n"


def _tables(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _pairs(table: Mapping[str, Any]) -> list[str]:
    return [f"{key} = {json.dumps(value)}" for key, value in table.items()]


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.trial", description=__doc__)
    parser.add_argument("--root", required=True, type=Path, help="the stagingbot checkout")
    parser.add_argument("--config", required=True, type=Path, help="the file to write")
    parser.add_argument("--port", required=True, type=int, help="the bot's HTTP port")
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args(argv)
    token = secrets.token_urlsafe(24)
    settings = trial_settings(
        args.root.resolve(),
        args.port,
        args.redis_url,
        token,
        secret=secrets.token_hex(20),
        key=secrets.token_hex(32),
        gitlab_secret=secrets.token_hex(20),
    )
    write(args.config, to_toml(settings))
    try:
        load_config(str(args.config), {})
    except ConfigError as exc:
        print(f"the trial configuration is invalid (a bug):\n{exc}", file=sys.stderr)
        return 1
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
