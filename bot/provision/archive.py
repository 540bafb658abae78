"""What archiving changes on a staging's objects, how restoring undoes it, and how an apply
keeps an archived staging archived (pure).

An archived staging keeps everything (Secrets, Services, volumes, the database's PVCs) but
runs nothing: Deployments and StatefulSets are scaled to 0, recording the count to bring
back; CronJobs are suspended; a migration Job first created while archived is created
suspended. Each object the bot changed carries ANNOTATION_ARCHIVED, and only those are
restored, so a CronJob someone else suspended stays suspended.

A StatefulSet whose `persistentVolumeClaimRetentionPolicy.whenScaled` is `Delete` loses its
volume claims when scaled down: archiving such a staging is refused (`refusal`) rather than
deleting its data.
"""

from __future__ import annotations

from typing import Any

from bot.errors import ArchiveRefused

Obj = dict[str, Any]

ANNOTATION_ARCHIVED = "stagingbot.dev/archived"
ANNOTATION_REPLICAS = "stagingbot.dev/archived-replicas"
DEPLOYMENT = ("apps/v1", "Deployment")
STATEFULSET = ("apps/v1", "StatefulSet")
CRONJOB = ("batch/v1", "CronJob")
JOB = ("batch/v1", "Job")
SCALED = (DEPLOYMENT, STATEFULSET)
# What archive() and restore() look for in the staging; Jobs are left to finish (or not start).
ARCHIVED_KINDS = (DEPLOYMENT, STATEFULSET, CRONJOB)
# The API server's default for `spec.replicas`: what restore brings back when no count was
# recorded (a workload someone marked archived by hand).
DEFAULT_REPLICAS = 1


def is_archived(obj: Obj | None) -> bool:
    return _annotations(obj).get(ANNOTATION_ARCHIVED) == "true"


def refusal(live: list[Obj]) -> ArchiveRefused | None:
    """Why archiving a staging holding `live` would delete data, or None when it is safe."""
    losing = sorted(obj["metadata"]["name"] for obj in live if _loses_claims(obj))
    if not losing:
        return None
    one = len(losing) == 1
    which = f"StatefulSet{'' if one else 's'} {', '.join(losing)}"
    deletes, its = ("deletes", "its") if one else ("delete", "their")
    why = (
        f"{which} {deletes} {its} volume claims when scaled down "
        f"(persistentVolumeClaimRetentionPolicy.whenScaled: Delete), so archiving would "
        f"delete {its} data"
    )
    template = "its template" if one else "their templates"
    remedy = (
        f"set whenScaled: Retain (the default) in {template}, then deploy again "
        "(a push or a redeploy) so that this staging gets it"
    )
    return ArchiveRefused(why, remedy)


def _loses_claims(live: Obj) -> bool:
    """A StatefulSet with pods whose claims a scale-down deletes (at 0 nothing is lost)."""
    spec = live.get("spec") or {}
    policy = spec.get("persistentVolumeClaimRetentionPolicy") or {}
    return (
        _kind(live) == STATEFULSET
        and bool(spec.get("volumeClaimTemplates"))
        and policy.get("whenScaled") == "Delete"
        and _replicas(live) > 0
    )


def archive_patch(live: Obj) -> Obj | None:
    """The JSON merge patch that archives `live`, or None when there is nothing to change.

    Archiving twice keeps the first recorded count. The patch carries `resourceVersion`,
    so the count recorded is exactly the one replaced (else 409: read again and retry).
    """
    kind, spec = _kind(live), live.get("spec") or {}
    if kind in SCALED:
        record = _record(live, None)
        if is_archived(live) and spec.get("replicas") == 0 and record == _recorded(live):
            return None
        patch: Obj = {"metadata": {"annotations": _marks(record)}, "spec": {"replicas": 0}}
    elif kind == CRONJOB:
        if spec.get("suspend") is True:
            # Already suspended: by us (nothing to do) or by someone else (not ours to undo).
            return None
        patch = {"metadata": {"annotations": _marks(None)}, "spec": {"suspend": True}}
    else:
        return None
    patch["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
    return patch


def restore_patch(live: Obj) -> Obj | None:
    """The JSON merge patch that undoes what archiving did to `live`, or None."""
    kind = _kind(live)
    annotations = _annotations(live)
    if not is_archived(live) and ANNOTATION_REPLICAS not in annotations:
        return None
    unmark: Obj = {"annotations": {ANNOTATION_ARCHIVED: None, ANNOTATION_REPLICAS: None}}
    if kind in SCALED:
        replicas = _recorded(live)
        count = DEFAULT_REPLICAS if replicas is None else int(replicas)
        return {"metadata": unmark, "spec": {"replicas": count}}
    if kind in (CRONJOB, JOB):
        return {"metadata": unmark, "spec": {"suspend": False}}
    return None


def keep_archived(rendered: Obj, live: Obj | None) -> None:
    """Turns a rendered object into its archived form before it is applied.

    Applied with the bot's field manager, the archived values are what the bot asks for,
    so its forced apply cannot scale the staging back up. `live` is the object as the
    cluster has it now, None for one the templates just gained.
    """
    kind = _kind(rendered)
    if kind not in (*SCALED, CRONJOB, JOB):
        return
    spec = rendered.setdefault("spec", {})
    annotations = rendered["metadata"].setdefault("annotations", {})
    if kind in SCALED:
        annotations.update(_marks(_record(live, rendered)))
        spec["replicas"] = 0
        return
    if kind == CRONJOB:  # as archive() does: unless someone else suspended it
        live_spec = (live or {}).get("spec") or {}
        ours = is_archived(live) or not (spec.get("suspend") or live_spec.get("suspend"))
    else:  # a Job is suspended only when created: one already running is left to finish
        ours = is_archived(live) if live is not None else not spec.get("suspend")
    if ours:
        annotations.update(_marks(None))
        spec["suspend"] = True


def _record(live: Obj | None, rendered: Obj | None) -> str | None:
    """The replica count to bring back: the recorded one, else the running one, else the
    template's (or the API default), else None (marked archived by hand: nothing to trust)."""
    recorded = _recorded(live)
    if recorded is not None:
        return recorded
    if live is not None and not is_archived(live):
        return str(_replicas(live))
    if rendered is not None:
        return str(_replicas(rendered))
    return None


def _recorded(obj: Obj | None) -> str | None:
    text = _annotations(obj).get(ANNOTATION_REPLICAS)
    return text if isinstance(text, str) and text.isascii() and text.isdigit() else None


def _replicas(obj: Obj) -> int:
    replicas = (obj.get("spec") or {}).get("replicas")
    return DEFAULT_REPLICAS if not isinstance(replicas, int) else replicas


def _marks(record: str | None) -> dict[str, str]:
    marks = {ANNOTATION_ARCHIVED: "true"}
    if record is not None:
        marks[ANNOTATION_REPLICAS] = record
    return marks


def _kind(obj: Obj) -> tuple[str, str]:
    return obj.get("apiVersion", ""), obj.get("kind", "")


def _annotations(obj: Obj | None) -> dict[str, Any]:
    return ((obj or {}).get("metadata") or {}).get("annotations") or {}
