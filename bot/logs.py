"""Structured log lines (one JSON object per line), with nothing secret in them.

`bound(staging=..., delivery=...)` adds fields to every line logged inside it, in this
task and the threads it starts with `asyncio.to_thread` (they copy the context): the
webhook receiver binds the delivery id, the reconcile job the staging id.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_STANDARD.add("color_message")  # uvicorn's ANSI-coloured copy of the message


_NOTHING: Mapping[str, str] = MappingProxyType({})
_CONTEXT: ContextVar[Mapping[str, str]] = ContextVar("stagingbot_log_context", default=_NOTHING)


@contextlib.contextmanager
def bound(**fields: str) -> Iterator[None]:
    """Every line logged inside carries `fields` (empty values are left out)."""
    token = _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def bind(**fields: str) -> None:
    """Like `bound`, until the current task ends (an arq job runs in a task of its own)."""
    _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in fields.items() if v}})


class ContextFilter(logging.Filter):
    """Copies the bound fields onto each record; a field the call passes itself wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _CONTEXT.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class TextFormatter(logging.Formatter):
    """`time level logger: message [staging=… delivery=…]` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(
            f"{name}={getattr(record, name)}"
            for name in ("staging", "delivery")
            if getattr(record, name, "")
        )
        return f"{line} [{context}]" if context else line


class JsonFormatter(logging.Formatter):
    """`{"ts":…, "level":…, "logger":…, "msg":…, <extra fields>}`.

    Only what the code passes is logged: request headers and bodies never are, so no
    token or webhook secret can reach a line.
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                line[name] = (
                    value if isinstance(value, (int, float, bool, type(None))) else str(value)
                )
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def setup(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries log request URLs with tokens in query strings at debug level.
    for noisy in ("urllib3", "github", "kubernetes", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))
