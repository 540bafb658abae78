"""Normalized, host-neutral events: what a webhook delivery means to the bot."""

from __future__ import annotations

import enum
from dataclasses import dataclass

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
