"""stagingbot's real web app (`bot.web.create_app`) on uvicorn, one process, for the benches.

    python bench/bot_app.py --port 8002 --redis-url redis://127.0.0.1:6379/0 [--no-log]

The config is built like tests/helpers.py `make_config` (secret, repo Codertocat/Hello-World).
Logging is set up as `stagingbot run` does (JSON at info, one line per accepted delivery),
to stderr, unless --no-log.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn  # noqa: E402

from bot import logs  # noqa: E402
from bot.web import create_app  # noqa: E402
from tests.helpers import make_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--no-log", action="store_true")
    args = parser.parse_args()
    config = make_config(args.redis_url)
    if not args.no_log:
        logs.setup(config.log.level, config.log.format)
    uvicorn.run(
        create_app(config),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
