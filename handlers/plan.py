"""What a request's staging should be now: the host's truth plus people's decisions (pure).

The reconcile job asks this before acting, on every event: rules from the config (opt-in
label, skip labels and authors, drafts), what people decided with commands (destroy,
archive, deploy despite the rules), and for a fork which commit a maintainer approved.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bot import sealed
from bot.config import MASK, Rules
from bot.model import PullRequest
from bot.store import StagingRecord

# Desired-state fields written by commands (and later the API); events never touch them.
FORCED = "forced"  # "1": a person with write access asked for a staging, whatever the rules
DECISION = "decision"  # "destroy" or "archive", valid while the head is `decision_sha`
DECISION_SHA = "decision_sha"
DECISION_BY = "decision_by"
DECISION_REASON = "decision_reason"  # why a decision no one typed was taken (bot.lifecycle)
# How a person's archive came in: BY_COMMENT (a refusal is answered there), or the API's
# or dashboard's name; "" for a timer's.
DECISION_VIA = "decision_via"
BY_COMMENT = "comment"
APPROVED_SHA = "approved_sha"  # the fork commit a maintainer approved
APPROVED_BY = "approved_by"
OVERRIDES = "overrides"  # JSON object KEY -> value
# Secret overrides: JSON KEY -> {"fp": keyed fingerprint, "sealed": encrypted value} (bot.sealed)
SECRET_OVERRIDES = "secret_overrides"  # noqa: S105 - a field name
REDEPLOY_TOKEN = "redeploy_token"  # noqa: S105 - a field name, not a secret
APPLIED = "applied"  # what was last applied: sha|token|overrides checksum
# QA's sign-off (`handlers.qa`): the verdict on commit `qa_sha`, by whom, when, with a note.
QA = "qa"  # "passed" or "failed"; "" before anyone signed off
QA_SHA = "qa_sha"
QA_BY = "qa_by"
QA_NOTE = "qa_note"
QA_AT = "qa_at"

DESTROY = "destroy"
ARCHIVE = "archive"


class Want(enum.StrEnum):
    NONE = "none"  # no staging (closed, destroyed, or the rules say so)
    RUNNING = "running"
    ARCHIVED = "archived"


@dataclass(frozen=True)
class Plan:
    want: Want
    sha: str = ""  # the commit the staging should run; "" when a fork has none approved
    reason: str = ""  # why there is no staging
    unapproved: str = ""  # a fork's head that waits for a maintainer's approval

    @property
    def awaiting_approval(self) -> bool:
        return self.want is not Want.NONE and not self.sha


def decide(pr: PullRequest, rules: Rules, record: StagingRecord) -> Plan:
    """The staging this request should have; every input is read fresh each round."""
    if not pr.open:
        return Plan(Want.NONE, reason=f"this {noun(pr)} was {'merged' if pr.merged else 'closed'}")
    decision = record.get(DECISION) if record.get(DECISION_SHA) == pr.head_sha else ""
    if decision == DESTROY:
        by, why = record.get(DECISION_BY), record.get(DECISION_REASON)
        if why and not by:
            return Plan(Want.NONE, reason=f"removed: {why}")
        return Plan(Want.NONE, reason=f"removed by @{by} with a command" if by else "removed")
    if record.get(FORCED) != "1":
        skipped = skip_reason(pr, rules)
        if skipped:
            return Plan(Want.NONE, reason=skipped)
    want = Want.ARCHIVED if decision == ARCHIVE else Want.RUNNING
    approved = record.get(APPROVED_SHA)
    if not pr.fork or approved == pr.head_sha:
        return Plan(want, pr.head_sha)
    # A fork's new commit is not run until approved; the approved one keeps running.
    still_up = record.get("phase") not in ("gone", "destroying")
    running = approved if approved and record.get("sha") == approved and still_up else ""
    return Plan(want, running, unapproved=pr.head_sha)


def noun(pr: PullRequest) -> str:
    """What the host calls a request, for the texts people read."""
    return "merge request" if pr.repo.host == "gitlab" else "pull request"


def skip_reason(pr: PullRequest, rules: Rules) -> str:
    """Why the configured rules give this request no staging, or "" when they give it one."""
    if pr.author.casefold() in rules.skip_authors:
        return f"{noun(pr)}s by {pr.author} get no staging (staging.skip_authors)"
    labels = {label.casefold() for label in pr.labels}
    skipping = sorted(labels & rules.skip_labels)
    if skipping:
        return f"the label `{skipping[0]}` skips the staging (staging.skip_labels)"
    if rules.require_label and rules.require_label not in labels:
        return f"only {noun(pr)}s labelled `{rules.require_label}` get a staging"
    if pr.draft and not rules.drafts:
        return f"draft {noun(pr)}s get no staging: mark it ready"
    return ""


def overrides(fields: Mapping[str, str]) -> dict[str, str]:
    """The staging's environment overrides, KEY -> value, from its stored fields."""
    try:
        data = json.loads(fields.get(OVERRIDES) or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def encode_overrides(values: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(values.items())), sort_keys=True)


def secret_overrides(fields: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The staging's secret overrides as stored: KEY -> {"fp", "sealed"}, never a value."""
    return sealed.parse(fields.get(SECRET_OVERRIDES) or "")


def shown_overrides(fields: Mapping[str, str], secret_keys: Iterable[str]) -> list[tuple[str, str]]:
    """Every override as people see it, sorted: secret ones (listed in `commands.secret_keys`,
    or set as secret) as `**********`."""
    hidden = set(secret_keys) | set(secret_overrides(fields))
    values = {**overrides(fields), **dict.fromkeys(secret_overrides(fields), MASK)}
    return [(key, MASK if key in hidden else value) for key, value in sorted(values.items())]


def applied_signature(sha: str, record: StagingRecord) -> str:
    """What an apply at `sha` would put in place; a change of any part means a new apply."""
    values: dict[str, str] = overrides(record.fields)
    prints = sealed.fingerprints(secret_overrides(record.fields))
    values.update({key: f"\0secret:{fp}" for key, fp in prints.items()})
    checksum = hashlib.sha256(encode_overrides(values).encode()).hexdigest()[:16] if values else ""
    return f"{sha}|{record.get(REDEPLOY_TOKEN)}|{checksum}"


def last_applied(record: StagingRecord) -> str:
    """What the last apply put in place (records from before overrides existed: sha only)."""
    return record.get(APPLIED) or f"{record.get('sha')}||"
