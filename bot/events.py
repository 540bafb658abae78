"""Normalized, host-neutral events: what a webhook delivery means to the bot."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.model import RepoRef, StagingKey


class Kind(enum.StrEnum):
    PR_OPENED = "pr.opened"
    PR_REOPENED = "pr.reopened"
    PR_SYNCHRONIZED = "pr.synchronized"
    PR_CLOSED = "pr.closed"
    COMMENT_CREATED = "comment.created"


@dataclass(frozen=True)
class Event:
    """One thing that happened to a pull/merge request, as far as the bot cares."""

    kind: Kind
    repo: RepoRef
    number: int
    sha: str = ""
    branch: str = ""
    title: str = ""
    author: str = ""
    url: str = ""
    sender: str = ""
    merged: bool = False
    draft: bool = False
    fork: bool = False
    installation_id: int | None = None
    comment_id: int | None = None
    comment_body: str = ""

    @property
    def key(self) -> StagingKey:
        return StagingKey(self.repo.host, self.repo.id, self.number)


@dataclass(frozen=True)
class Delivery:
    """A parsed delivery: a ping, events to act on, or the reason it is ignored."""

    events: tuple[Event, ...] = ()
    ignored: str = ""
    ping: bool = False


class MalformedPayload(ValueError):
    """The body is authentic but not shaped like the event it claims to be."""


def required(data: Mapping[str, Any], name: str, kind: type[Any]) -> Any:
    """`data[name]` when it is a `kind`, else `MalformedPayload` naming the field."""
    value = data.get(name)
    # bool is an int in Python; an id or number of true/false is still malformed.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedPayload(f"field {name!r} missing or not a {kind.__name__}")
    return value


def decode_json(body: bytes) -> dict[str, Any]:
    """The JSON object a delivery's body must be, or `MalformedPayload` saying why not."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        # JSONDecodeError and UnicodeDecodeError are ValueErrors; so is an integer literal
        # over Python's digit limit. Absurd nesting raises RecursionError.
        text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise MalformedPayload(f"body is not valid JSON: {text}") from None
    if not isinstance(data, dict):
        raise MalformedPayload("body is not a JSON object")
    return data
