"""Decisions that must outlive Redis: "no staging for this request until asked again" (pure).

A person's `/staging destroy` (or a lifecycle rule such as retention) removes a staging
while its request stays open. Redis holds that decision in the record (`decision`,
`decision_sha`), but Redis is only an index: after a wipe the sweep would see an open
request without a staging and build it again. So the reconcile job also keeps the decision
with the provisioner before it tears anything down — a labelled ConfigMap in the bot's
own namespace (Kubernetes) or a JSON file in a state folder (`command`) — and the sweep
reads every kept decision back in one call. A decision is forgotten when a push or a
`/staging deploy` asks for the staging again, or when its request is closed.

This module turns a decision into those forms and back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from bot import naming
from bot.model import StagingKey

LABEL_DECISION = "stagingbot.dev/decision"  # what was decided: "destroy"
CONFIGMAP_PREFIX = "stagingbot-decision-"
KEPT = "decision_kept"  # record field: "1" while the decision is kept outside Redis


@dataclass(frozen=True)
class Decision:
    """No staging for request `key` while its head is `sha` (a push or a deploy lifts it)."""

    key: StagingKey
    sha: str
    by: str = ""  # who decided: a login, "retention", "" when unknown
    at: float = 0.0
    reason: str = ""
    repo: str = ""  # full name, display only
    action: str = "destroy"


def configmap_name(instance: str, key: StagingKey) -> str:
    """One ConfigMap per decision, so writers never contend; a DNS-1123 subdomain."""
    tail = f"{key.host}-{key.repo_id}-{key.number}"
    return f"{CONFIGMAP_PREFIX}{naming.slugify(instance, 40)}-{tail}"


def selector(instance: str) -> str:
    """Finds every decision ConfigMap of this bot instance in one list call."""
    return f"{naming.instance_selector(instance)},{LABEL_DECISION}"


def to_configmap(decision: Decision, instance: str, namespace: str) -> dict[str, Any]:
    key = decision.key
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": configmap_name(instance, key),
            "namespace": namespace,
            "labels": {
                **naming.selector_labels(key, instance),
                LABEL_DECISION: naming.slugify(decision.action),
            },
            "annotations": {naming.ANNOTATION_KEY: str(key)},
        },
        "data": _data(decision),
    }


def from_configmaps(items: Iterable[Mapping[str, Any]]) -> dict[StagingKey, Decision]:
    """The decisions among listed ConfigMaps; one that does not read is skipped."""
    found: dict[StagingKey, Decision] = {}
    for item in items:
        data = item.get("data")
        decision = from_data(data if isinstance(data, Mapping) else {})
        if decision is not None:
            found[decision.key] = decision
    return found


def from_data(data: Mapping[str, Any]) -> Decision | None:
    try:
        key = StagingKey.parse(str(data.get("key", "")))
        at = float(data.get("at") or 0)
    except ValueError:
        return None
    sha = str(data.get("sha", ""))
    if not sha:
        return None
    return Decision(
        key=key,
        sha=sha,
        by=str(data.get("by", "")),
        at=at,
        reason=str(data.get("reason", "")),
        repo=str(data.get("repo", "")),
        action=str(data.get("action", "destroy")) or "destroy",
    )


def dump(decisions: Mapping[StagingKey, Decision]) -> str:
    """The state file's text: one JSON object, key -> decision, sorted."""
    return json.dumps(
        {str(key): _data(decisions[key]) for key in sorted(decisions)}, indent=1, sort_keys=True
    )


def load(text: str) -> dict[StagingKey, Decision]:
    """The state file's decisions; raises ValueError when it is not what `dump` writes."""
    data = json.loads(text) if text.strip() else {}
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    found: dict[StagingKey, Decision] = {}
    for value in data.values():
        decision = from_data(value) if isinstance(value, dict) else None
        if decision is not None:
            found[decision.key] = decision
    return found


def _data(decision: Decision) -> dict[str, str]:
    fields = asdict(decision)
    fields["key"] = str(decision.key)
    fields["at"] = f"{decision.at:.3f}"
    return {name: str(value) for name, value in fields.items()}
