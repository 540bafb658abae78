"""Reading a rollout: whether workloads are available, and why not, in words (pure)."""

from __future__ import annotations

from typing import Any

from bot.model import Rollout

Obj = dict[str, Any]


def workload_rollout(workload: Obj, pods: list[Obj]) -> Rollout:
    """One Deployment/StatefulSet: failed (why, in words), rolled out, or what it waits for."""
    kind, name = workload["kind"].lower(), workload["metadata"]["name"]
    spec, status = workload.get("spec") or {}, workload.get("status") or {}
    for pod in _current_pods(workload, pods):
        failure = pod_failure(pod)
        if failure:
            return Rollout(ready=False, failed=True, reason=failure)
    for condition in status.get("conditions") or []:
        if condition.get("reason") == "ProgressDeadlineExceeded":
            message = condition.get("message", "")
            return Rollout(False, True, f"{kind} {name} stopped progressing: {message}")
    if (status.get("observedGeneration") or 0) < (workload["metadata"].get("generation") or 0):
        return Rollout(False, reason=f"waiting for {kind} {name}: update not yet observed")
    desired = spec.get("replicas")
    desired = 1 if desired is None else int(desired)
    word = "available" if kind == "deployment" else "ready"
    counts = {
        "updated": status.get("updatedReplicas") or 0,
        word: status.get("availableReplicas" if word == "available" else "readyReplicas") or 0,
    }
    for label, count in counts.items():
        if count < desired:
            return Rollout(False, reason=f"waiting for {kind} {name}: {count}/{desired} {label}")
    extra = (status.get("replicas") or 0) - desired
    if extra > 0:
        return Rollout(False, reason=f"waiting for {kind} {name}: {extra} old pod(s) terminating")
    return Rollout(ready=True)


def _current_pods(workload: Obj, pods: list[Obj]) -> list[Obj]:
    """The workload's live pods running its current images (a previous revision's pods,
    still crash-looping while the fix rolls out, must not fail the new one)."""
    spec = workload.get("spec") or {}
    match = (spec.get("selector") or {}).get("matchLabels") or {}
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    images = {c.get("image") for c in pod_spec.get("containers") or []}
    if not match:
        return []
    return [
        pod
        for pod in pods
        if all((pod["metadata"].get("labels") or {}).get(k) == v for k, v in match.items())
        and not pod["metadata"].get("deletionTimestamp")
        and {c.get("image") for c in (pod.get("spec") or {}).get("containers") or []} <= images
    ]


_PULL_FAILURES = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
_START_FAILURES = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


def pod_failure(pod: Obj) -> str:
    """Why a pod cannot become ready, in words, or "" when nothing is known to be wrong."""
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
            return f"pod cannot be scheduled: {condition.get('message', '')}"
    containers = (status.get("initContainerStatuses") or []) + (
        status.get("containerStatuses") or []
    )
    for container in containers:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason, message = waiting.get("reason", ""), waiting.get("message", "")
        if reason in _PULL_FAILURES:
            return f"image cannot be pulled: {container.get('image', '')}: {message}"
        if reason == "CrashLoopBackOff":
            last = (container.get("lastState") or {}).get("terminated") or {}
            return (
                f"container {container.get('name')} is crash-looping (exit code "
                f"{last.get('exitCode', '?')}, restarted {container.get('restartCount', 0)} times)"
            )
        if reason in _START_FAILURES:
            return f"container {container.get('name')} cannot start: {message}"
    return ""
