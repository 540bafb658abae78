"""The Git host of offline mode (`mode = "offline"`): no host is called, nothing is sent.

For a local trial without credentials. The request's state and head are what the last
signed webhook said (kept in the staging's record by the intake); the check, the sticky
comment, the deployment and replies are written to the log and into the staging's record,
where the dashboard and the API show them. Nobody has write access (the host cannot be
asked): commands that change a staging are refused; the dashboard, API and CLI act
instead. Chosen only by explicit configuration, never because credentials are missing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from bot.errors import PermanentError
from bot.hosts.base import REACTIONS, Access
from bot.model import BuildReport, CheckReport, DeployState, PullRequest, RepoRef, StagingKey
from bot.store import StagingRecord, Store

log = logging.getLogger("stagingbot.offline")

IDENTITY = "stagingbot[offline]"
# Fields of the staging's record holding what would have been written on the request.
CHECKS = "offline_checks"  # JSON: check name -> its last report
COMMENT = "offline_comment"
DEPLOYMENT = "offline_deployment"
REPLIES = "offline_replies"
KEPT_REPLIES = 5
NO_WEBHOOK = "offline mode: no webhook was received for {repo} #{number}, so nothing is known of it"
STARTUP = (
    'OFFLINE MODE (mode = "offline"): no Git host is called. Signed webhooks are trusted as '
    "they come (their payload is the request's state and head); checks, comments and "
    "deployments go to this log and the dashboard instead of the pull request; the sweep "
    "never removes anything. For a local trial only: a real installation sets "
    'mode = "online" (the default) with its host credentials.'
)


def request_of(record: StagingRecord) -> PullRequest:
    """The request as its last signed webhook described it."""
    return record.request()


class OfflineHost:
    """A `GitHost` that reads the stored payloads and writes to the log and the record."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def get_pull(self, repo: RepoRef, number: int) -> PullRequest:
        record = await self._store.load(StagingKey(repo.host, repo.id, number))
        if record is None or not record.get("desired_sha"):
            raise PermanentError(NO_WEBHOOK.format(repo=repo.full_name, number=number))
        return request_of(record)

    async def open_pulls(self, repo: RepoRef) -> list[PullRequest]:
        """The requests whose last webhook left them open. A request is never taken for
        closed here: only a signed `closed` webhook closes one, so the sweep removes nothing."""
        records = await self._store.load_many(await self._store.keys())
        wanted = repo.full_name.lower()
        return [
            request_of(record)
            for key, record in sorted(records.items())
            if key.host == repo.host
            and (key.repo_id == repo.id or record.get("repo").lower() == wanted)
            and record.get("desired_sha")
            and record.get("desired") != "gone"
        ]

    async def report_check(
        self,
        repo: RepoRef,
        sha: str,
        check: CheckReport,
        known_id: int | None,
        gate: str = "",
        *,
        unseen: bool = False,  # kept in the record: nothing to look up
    ) -> int | None:
        name = f"staging/{gate}" if gate else "staging"
        shown = {"sha": sha, "state": check.state.value, "title": check.title, "at": self._now()}
        for key in await self._stagings_at(repo, sha):
            record = await self._store.load(key)
            checks = _json_object(record.get(CHECKS) if record else "")
            await self._store.update(key, {CHECKS: json.dumps({**checks, name: shown})})
        log.info("offline: check %s on %s@%s: %s", name, repo.full_name, sha[:7], check.title)
        return known_id or 1

    async def upsert_comment(
        self, repo: RepoRef, number: int, body: str, known_id: int | None, *, unseen: bool = False
    ) -> int:
        await self._store.update(StagingKey(repo.host, repo.id, number), {COMMENT: body})
        log.info("offline: comment on %s #%d:\n%s", repo.full_name, number, body)
        return known_id or number

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
        shown = {
            "environment": environment,
            "sha": sha,
            "state": state.value,
            "url": url,
            "description": description,
            "at": self._now(),
        }
        for key in await self._stagings_at(repo, sha):
            await self._store.update(key, {DEPLOYMENT: json.dumps(shown)})
        where = f"{repo.full_name}@{sha[:7]}"
        log.info("offline: deployment %s of %s: %s %s", environment, where, state, url)
        return known_id or 1

    async def react(self, repo: RepoRef, number: int, comment_id: int, reaction: str) -> None:
        if reaction not in REACTIONS:
            raise ValueError(f"unknown reaction {reaction!r}")
        where = f"{repo.full_name} #{number}"
        log.info("offline: reaction %s on comment %d of %s", reaction, comment_id, where)

    async def permission(self, repo: RepoRef, user: str) -> Access:
        return Access.READ  # the host cannot be asked who may write: nobody may

    async def member_of(self, repo: RepoRef, group: str, user: str) -> bool:
        return False  # the host cannot be asked: nobody is a member

    async def reply(self, repo: RepoRef, number: int, body: str) -> int:
        key = StagingKey(repo.host, repo.id, number)
        record = await self._store.load(key)
        try:
            kept = json.loads(record.get(REPLIES) or "[]") if record else []
        except ValueError:
            kept = []
        kept = [*kept, {"at": self._now(), "body": body}][-KEPT_REPLIES:]
        await self._store.update(key, {REPLIES: json.dumps(kept)})
        log.info("offline: reply on %s #%d:\n%s", repo.full_name, number, body)
        return len(kept)

    async def build_report(self, repo: RepoRef, sha: str) -> BuildReport:
        """No host to ask: nothing is known, so a `staging.wait_for` gate keeps waiting until
        someone says the commit is built (`stagingbot deploy REF --sha SHA`)."""
        return BuildReport()

    async def identity(self) -> str:
        return IDENTITY

    async def _stagings_at(self, repo: RepoRef, sha: str) -> list[StagingKey]:
        """The repository's stagings that want, run or last reported commit `sha`."""
        keys = [k for k in await self._store.keys() if k.host == repo.host and k.repo_id == repo.id]
        records = await self._store.load_many(keys)
        names = ("desired_sha", "sha", "check_sha", "deployment_sha")
        return [key for key, record in records.items() if sha in (record.get(n) for n in names)]

    def _now(self) -> float:
        return round(self._clock(), 3)


def _json_object(text: str) -> dict[str, object]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
