"""Stagings as people see them: references like `github:owner/repo#12`, and the summary and
detail views the API and the dashboard show (pure), plus reading them from the store.

A view never holds a secret override's value, and with `dashboard.show_details = false`
only operators see namespaces and failure details.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot import lifecycle
from bot.config import Config
from bot.hosts import offline
from bot.model import Phase, StagingKey
from bot.store import StagingRecord, Store, stored_links
from handlers import actions, plan

SEPARATORS = {"github": "#", "gitlab": "!"}
_REF = re.compile(r"(?P<host>github|gitlab):(?P<repo>[^#!]+)[#!](?P<number>\d{1,9})")
SUMMARY_FIELDS = (
    "ref",
    "host",
    "repo",
    "number",
    "state",
    "url",
    "pr_url",
    "sha",
    "branch",
    "title",
    "author",
    "updated_at",
)


@dataclass(frozen=True)
class Ref:
    """`github:owner/repo#12` or `gitlab:group/sub/project!12`: the names people use."""

    host: str
    repo: str
    number: int

    def __str__(self) -> str:
        return f"{self.host}:{self.repo}{SEPARATORS[self.host]}{self.number}"

    @classmethod
    def parse(cls, text: str) -> Ref | None:
        match = _REF.fullmatch(text.strip())
        if match is None:
            return None
        return cls(match["host"], match["repo"].strip("/"), int(match["number"]))


def ref_of(record: StagingRecord) -> Ref:
    return Ref(record.key.host, record.get("repo"), record.key.number)


def state_of(record: StagingRecord) -> str:
    return record.get("phase") or Phase.PENDING.value


def updated_at(record: StagingRecord, latest: Mapping[str, Any] | None) -> float | None:
    """When anything last happened: the last event, or the newest history entry."""
    times = [_number(record.get("event_at")), _number((latest or {}).get("at"))]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def summary(record: StagingRecord, latest: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One line of the list: what runs, where, from which request."""
    fields = record.fields
    exists = actions.has_staging(fields)
    return {
        "ref": str(ref_of(record)),
        "host": record.key.host,
        "repo": record.get("repo"),
        "number": record.key.number,
        "state": state_of(record),
        "url": (record.get("staging_url") or None) if exists else None,
        "pr_url": record.get("pr_url") or None,
        "sha": record.get("sha") or record.get("desired_sha") or None,
        "branch": record.get("branch"),
        "title": record.get("title"),
        "author": record.get("author"),
        "updated_at": updated_at(record, latest),
    }


def detail(
    record: StagingRecord,
    history: Sequence[Mapping[str, Any]],
    config: Config,
    *,
    operator: bool,
) -> dict[str, Any]:
    """Everything about one staging a caller may see; secret override values masked."""
    shown = operator or config.dashboard.show_details
    shown_overrides = plan.shown_overrides(record.fields, config.commands.secret_keys)
    secret = set(config.commands.secret_keys) | set(plan.secret_overrides(record.fields))
    return {
        **summary(record, history[0] if history else None),
        # A refused archive leaves a running staging's reason empty: its refusal is the why.
        "reason": (record.get("reason") or lifecycle.refused_reason(record.fields) or None)
        if shown
        else None,
        "overrides": dict(shown_overrides),
        "secret_overrides": sorted(key for key, _ in shown_overrides if key in secret),
        "history": [dict(entry) if shown else _without_details(entry) for entry in history],
        "namespace": (record.get("namespace") or None) if shown else None,
        "head_sha": record.get("desired_sha") or None,
        "fork": record.get("fork") == "1",
        "archived": actions.is_archived(record.fields),
        "exists": actions.has_staging(record.fields),
        "qa": actions.qa_view(record.fields),  # QA's sign-off, None before there is one
        "links": [{"name": name, "url": url} for name, url in stored_links(record)],
        # What would be on the request; the comment may say why a staging failed: details.
        "offline": offline_reports(record) if config.offline and shown else None,
        **lifecycle.timers_view(record.fields, config.staging),
    }


def offline_reports(record: StagingRecord) -> dict[str, Any]:
    """Offline mode: what would have been written on the request (bot/hosts/offline.py)."""

    def parsed(name: str) -> Any:
        try:
            return json.loads(record.get(name)) if record.get(name) else None
        except ValueError:
            return None

    return {
        "checks": parsed(offline.CHECKS) or {},
        "deployment": parsed(offline.DEPLOYMENT),
        "comment": record.get(offline.COMMENT) or None,
        "replies": parsed(offline.REPLIES) or [],
    }


def matches(item: Mapping[str, Any], host: str, repo: str, state: str, q: str) -> bool:
    """The list's filters: exact host, repository and state (case-insensitive), and a
    search over branch, title, author, reference and number."""
    if host and item["host"] != host.lower():
        return False
    if repo and str(item["repo"]).lower() != repo.lower():
        return False
    if state and item["state"] != state.lower():
        return False
    if q:
        text = " ".join(str(item[k] or "") for k in ("branch", "title", "author", "ref", "number"))
        return q.lower() in text.lower()
    return True


async def load_all(store: Store) -> list[tuple[StagingRecord, dict[str, Any]]]:
    """Every staging's record and summary, in a fixed order (host, repository, number)."""
    keys = await store.keys()
    records = await store.load_many(keys)
    latest = await store.latest_many(records)
    found = [(record, summary(record, latest.get(key))) for key, record in records.items()]
    return sorted(
        found, key=lambda pair: (pair[1]["host"], pair[1]["repo"].lower(), pair[1]["number"])
    )


async def resolve(store: Store, text: str) -> StagingRecord | None:
    """The staging a reference names, by its stored repository name (case-insensitive)."""
    ref = Ref.parse(text)
    if ref is None:
        return None
    keys = [k for k in await store.keys() if k.host == ref.host and k.number == ref.number]
    return _named(await store.load_many(keys), ref)


def _named(records: Mapping[StagingKey, StagingRecord], ref: Ref) -> StagingRecord | None:
    wanted = ref.repo.lower()
    for record in records.values():
        if record.get("repo").lower() == wanted:
            return record
    return None


def _number(value: object) -> float | None:
    try:
        return float(value) if value not in (None, "") else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def states(items: Iterable[Mapping[str, Any]]) -> list[str]:
    return sorted({str(item["state"]) for item in items})


def _without_details(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A history entry for someone who may not see details: no reason, no program output
    (a control script's output can carry anything the script printed)."""
    return {**{k: v for k, v in entry.items() if k != "output"}, "reason": ""}
