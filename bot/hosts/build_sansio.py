"""Build deliveries without I/O: GitHub check runs, check suites, statuses and workflow runs,
GitLab pipelines → `BuildSignal`s naming the commit whose build moved.

Only finished builds can open the gate, so a check run being created or a pending status is
ignored on purpose (answered 202 with the reason). Which stagings wait for the commit is the
intake's business (`bot.build_intake`).
https://docs.github.com/en/webhooks/webhook-events-and-payloads#check_run
https://docs.gitlab.com/user/project/integrations/webhook_events/#pipeline-events
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.events import BuildSignal, Delivery, required
from bot.model import RepoRef

GITHUB_EVENTS = frozenset({"check_run", "check_suite", "status", "workflow_run"})
# A pipeline in these states has not finished a job yet: nothing for the gate to see.
# https://docs.gitlab.com/api/pipelines/ (status)
GITLAB_NOT_STARTED = frozenset(
    {"created", "waiting_for_resource", "preparing", "pending", "scheduled"}
)
ONLY_COMPLETED = "{event}.{action}: only a completed {what} can open the build gate"


def github(event: str, payload: Mapping[str, Any]) -> Delivery:
    """One of `GITHUB_EVENTS` → the build signal it carries, or why it is ignored."""
    repo = _github_repo(payload)
    if event == "status":
        state = required(payload, "state", str)
        if state == "pending":
            return Delivery(
                ignored="status pending: only a finished status can open the build gate"
            )
        signal = BuildSignal(repo, required(payload, "sha", str), "status", (_context(payload),))
        return Delivery(builds=(signal,))
    action = required(payload, "action", str)
    body = required(payload, event, dict)
    if action != "completed":
        what = event.replace("_", " ")
        return Delivery(ignored=ONLY_COMPLETED.format(event=event, action=action, what=what))
    names = (required(body, "name", str),) if event == "check_run" else ()
    numbers = _pull_numbers(body.get("pull_requests"), repo.id)
    signal = BuildSignal(
        repo, required(body, "head_sha", str), f"{event}.completed", names, numbers
    )
    return Delivery(builds=(signal,))


def gitlab_pipeline(payload: Mapping[str, Any], host: str = "gitlab") -> Delivery:
    """A `Pipeline Hook` → the commit whose pipeline moved and the names of its jobs."""
    attributes = required(payload, "object_attributes", dict)
    status = required(attributes, "status", str)
    if status in GITLAB_NOT_STARTED:
        return Delivery(ignored=f"pipeline {status}: no job has finished yet")
    project = required(payload, "project", dict)
    repo = RepoRef(
        host, required(project, "id", int), required(project, "path_with_namespace", str)
    )
    builds = payload.get("builds")
    names = tuple(
        str(build["name"])
        for build in (builds if isinstance(builds, list) else [])
        if isinstance(build, dict) and isinstance(build.get("name"), str)
    )
    numbers: tuple[int, ...] = ()
    request = payload.get("merge_request")
    # A merge request pipeline of this project (a fork's runs in its own project).
    if (
        isinstance(request, dict)
        and isinstance(request.get("iid"), int)
        and request.get("target_project_id") in (None, repo.id)
    ):
        numbers = (int(request["iid"]),)
    signal = BuildSignal(repo, required(attributes, "sha", str), "pipeline", names, numbers)
    return Delivery(builds=(signal,))


def _github_repo(payload: Mapping[str, Any]) -> RepoRef:
    repo = required(payload, "repository", dict)
    return RepoRef("github", required(repo, "id", int), required(repo, "full_name", str))


def _context(payload: Mapping[str, Any]) -> str:
    context = payload.get("context")
    return context if isinstance(context, str) else "default"


def _pull_numbers(pulls: object, repo_id: int) -> tuple[int, ...]:
    """The numbers of the payload's pull requests into this repository (a check run on a
    commit shared with another repository's request names that one too)."""
    if not isinstance(pulls, list):
        return ()
    numbers = []
    for pull in pulls:
        if not isinstance(pull, dict) or not isinstance(pull.get("number"), int):
            continue
        base = pull.get("base")
        base_repo = base.get("repo") if isinstance(base, dict) else None
        if not isinstance(base_repo, dict) or base_repo.get("id") == repo_id:
            numbers.append(int(pull["number"]))
    return tuple(numbers)
