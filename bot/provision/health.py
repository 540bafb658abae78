"""Which stagings have workloads that stopped being available, from cluster-wide lists (pure).

The sweep lists every Deployment and StatefulSet of the bot's instance in the whole cluster
(one call per kind, by label), so noticing that a running staging went bad costs two calls
per sweep however many stagings there are. Saying *why* in words (crash-looping, image
cannot be pulled, evicted) needs that staging's pods: the reconcile job of a staging found
unavailable reads them, as it does after a deploy (`bot.provision.rollout`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bot.model import StagingKey
from bot.provision import archive, inventory

Obj = Mapping[str, Any]


def unavailable(workloads: Iterable[Obj]) -> dict[StagingKey, str]:
    """Why each staging is not available, by key; a staging absent from it is healthy.

    Workloads scaled to zero on purpose (archived) are healthy by definition.
    """
    found: dict[StagingKey, list[str]] = {}
    for workload in workloads:
        metadata = workload.get("metadata") or {}
        key = inventory.staging_key(metadata)
        if key is None or archive.is_archived(dict(workload)):
            continue
        problem = workload_problem(workload)
        if problem:
            found.setdefault(key, []).append(problem)
    return {key: "; ".join(sorted(problems)) for key, problems in found.items()}


def workload_problem(workload: Obj) -> str:
    """ "" when every replica the workload asks for is available, else what is missing."""
    metadata, spec = workload.get("metadata") or {}, workload.get("spec") or {}
    status = workload.get("status") or {}
    kind, name = str(workload.get("kind", "workload")).lower(), metadata.get("name", "?")
    desired = spec.get("replicas")
    desired = 1 if desired is None else int(desired)
    if desired <= 0:
        return ""
    for condition in status.get("conditions") or []:
        if condition.get("reason") == "ProgressDeadlineExceeded":
            return f"{kind} {name} stopped progressing: {condition.get('message', '')}"
    word = "availableReplicas" if kind == "deployment" else "readyReplicas"
    available = int(status.get(word) or 0)
    if available < desired:
        return f"{kind} {name}: {available}/{desired} available"
    return ""
