"""The narrow interface handlers use to talk to a Git host."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol, runtime_checkable

from bot.model import BuildReport, CheckReport, DeployState, PullRequest, RepoRef

STICKY_MARKER = "<!-- stagingbot:sticky -->"
"""Hidden marker in the bot's one sticky comment, so it finds and edits that comment."""


def without_sticky_marker(body: str) -> str:
    """`body` that can never be taken for the sticky comment, though it quotes someone's text.

    Removed until none is left: removing one may join the halves of another.
    """
    while STICKY_MARKER in body:
        body = body.replace(STICKY_MARKER, "")
    return body


# Host-neutral reactions to a command comment; each adapter maps them to its host's names.
EYES = "eyes"
"""Seen: the command was received and is being handled."""
THUMBS_UP = "thumbs_up"
"""Done: the command succeeded."""
CONFUSED = "confused"
"""Not understood, or refused."""
REACTIONS = frozenset({EYES, THUMBS_UP, CONFUSED})


class Access(IntEnum):
    """What a user may do in a repository, ordered: compare with `>=`."""

    NONE = 0
    READ = 1
    WRITE = 2  # may run commands
    ADMIN = 3

    @property
    def may_run_commands(self) -> bool:
        return self >= Access.WRITE


class GitHost(Protocol):
    """Everything the reconcile job needs from a Git host.

    Every write is idempotent given the ids it returns: a retried job passes the id it
    stored (or `None` if it never got to store one) and the adapter looks the object up
    (comment by marker, check run by name and SHA, deployment by environment and SHA)
    before creating, so retries never double a comment, check or deployment.
    Errors are raised as `bot.errors.PermanentError` / `TemporaryError`.
    """

    async def get_pull(self, repo: RepoRef, number: int) -> PullRequest:
        """The request's current state and head, read from the host (never from an event)."""
        ...

    async def open_pulls(self, repo: RepoRef) -> list[PullRequest]:
        """Every open request of `repo`, read to the last page (the sweep).

        `repo.id` may be 0 when only the configured name is known; each request carries
        the repository's real id. All or nothing: a failed or unreadable page raises,
        never a shorter list.
        """
        ...

    async def report_check(
        self,
        repo: RepoRef,
        sha: str,
        check: CheckReport,
        known_id: int | None,
        gate: str = "",
        *,
        unseen: bool = False,
    ) -> int | None:
        """Create or update the "staging" check run (or commit status) on `sha`; its id if any.

        With a `gate` (e.g. "qa"), the check named "<check name>/<gate>" instead
        (`staging/qa`): a second check that teams can make required on its own.
        `unseen`: the caller's record proves the bot never began writing this check on
        `sha` (handlers.written), so it is created without looking for one first.
        """
        ...

    async def upsert_comment(
        self, repo: RepoRef, number: int, body: str, known_id: int | None, *, unseen: bool = False
    ) -> int:
        """Edit the sticky comment (found by id or by `STICKY_MARKER`) or create it; its id.

        `unseen`: the request has no comment at all (the host said so on a fresh read),
        so none is looked for.
        """
        ...

    async def report_deployment(
        self,
        repo: RepoRef,
        environment: str,
        sha: str,
        state: DeployState,
        url: str,
        description: str,
        known_id: int | None,
        *,
        unseen: bool = False,
    ) -> int:
        """Create (once per environment + SHA) a deployment and add a status to it; its id.

        `unseen`: as for `report_check`, no deployment for `sha` can exist: none is looked for.
        """
        ...

    async def react(self, repo: RepoRef, number: int, comment_id: int, reaction: str) -> None:
        """Add `reaction` (one of `REACTIONS`) to a comment on the request, at most once.

        Raises `ValueError` for a reaction outside `REACTIONS` (a bug, not a host error).
        """
        ...

    async def permission(self, repo: RepoRef, user: str) -> Access:
        """What `user` (login / username) may do in `repo`, inherited roles included.

        A stranger or an unknown account is `Access.NONE`, not an error.
        """
        ...

    async def member_of(self, repo: RepoRef, group: str, user: str) -> bool:
        """Whether `user` is an active member of the team (GitHub `org/team-slug`) or group
        (GitLab full path, members of parent groups included) `group`, asked with the
        credentials that serve `repo`. No such team or group is `False`, not an error.
        """
        ...

    async def reply(self, repo: RepoRef, number: int, body: str) -> int:
        """Post a new comment on the request (never edits one); its id.

        Not idempotent: the caller posts a reply once per command, and `body` carries the
        caller's own hidden marker. A `STICKY_MARKER` in it (quoted from a user) is removed,
        so a reply is never taken for the sticky comment.
        """
        ...

    async def build_report(self, repo: RepoRef, sha: str) -> BuildReport:
        """The builds on `sha`, newest first: GitHub's check runs and commit statuses, or
        the jobs of GitLab's latest pipeline for it (`bot.build_gate` judges them)."""
        ...

    async def identity(self) -> str:
        """The login / username the bot writes as, e.g. `stagingbot[bot]`; learnt once.

        A handler compares a comment's author with it to ignore the bot's own comments.
        """
        ...


@dataclass(frozen=True)
class ListPage:
    """One page of a request list as last read, for a conditional request next time."""

    url: str  # the page asked for, with its query
    etag: str  # the validator the host sent with it
    pulls: tuple[PullRequest, ...]
    next_url: str = ""  # the following page, "" on the last


@dataclass(frozen=True)
class OpenPulls:
    """A repository's open requests, and what lets the next read be conditional."""

    pulls: tuple[PullRequest, ...]
    pages: tuple[ListPage, ...] = ()
    not_modified: int = 0  # pages the host answered 304 Not Modified (free of rate limit)


@runtime_checkable
class ConditionalLister(Protocol):
    """A host that lists open requests with conditional requests (GitHub's ETags)."""

    async def open_pulls_since(self, repo: RepoRef, known: Sequence[ListPage]) -> OpenPulls:
        """Like `GitHost.open_pulls`, asking each page with the ETag it had in `known`;
        a page answered 304 is taken from `known`. All or nothing, as `open_pulls`."""
        ...
