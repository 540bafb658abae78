"""Which stagings archiving refuses: those whose data a scale to zero would delete."""

from __future__ import annotations

from typing import Any

from bot.provision import archive


def statefulset(name: str = "db", replicas: int | None = 1, **retention: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}],
    }
    if replicas is not None:
        spec["replicas"] = replicas
    if retention:
        spec["persistentVolumeClaimRetentionPolicy"] = retention
    metadata = {"name": name}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": metadata, "spec": spec}


def test_claims_deleted_on_scale_down_refuse_the_archive_naming_the_statefulset() -> None:
    refused = archive.refusal([statefulset(whenScaled="Delete", whenDeleted="Retain")])

    assert refused is not None
    assert refused.reason.startswith("not archived: StatefulSet db deletes its volume claims")
    assert refused.why.endswith("so archiving would delete its data")
    assert refused.remedy.startswith("set whenScaled: Retain (the default) in its template")
    assert "whenScaled: Retain" in refused.reason


def test_every_statefulset_at_risk_is_named() -> None:
    found = [statefulset("b", None, whenScaled="Delete"), statefulset("a", 3, whenScaled="Delete")]

    refused = archive.refusal([*found, statefulset("c")])

    assert refused is not None
    assert "StatefulSets a, b delete their volume claims" in refused.reason
    assert "in their templates" in refused.remedy


def test_retained_claims_no_claims_or_no_pods_are_safe_to_archive() -> None:
    no_claims = statefulset(whenScaled="Delete")
    no_claims["spec"].pop("volumeClaimTemplates")

    assert archive.refusal([]) is None
    assert archive.refusal([statefulset(), statefulset(whenScaled="Retain")]) is None
    assert archive.refusal([statefulset(whenDeleted="Delete")]) is None  # only on deletion
    assert archive.refusal([no_claims]) is None
    assert archive.refusal([statefulset(replicas=0, whenScaled="Delete")]) is None
