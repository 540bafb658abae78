"""Recording fakes of the `GitHost` and `Provisioner` interfaces, for handler unit tests.

The real adapters are tested against local HTTP servers (tests/fakes/github.py, kube.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bot.errors import PermanentError, TemporaryError
from bot.hosts.base import REACTIONS, Access
from bot.model import (
    BuildReport,
    CheckReport,
    ClusterStaging,
    DeployState,
    Phase,
    PullRequest,
    RepoRef,
    Rollout,
    StagingKey,
    Target,
)
from bot.provision.base import StepOutput
from bot.provision.decisions import Decision
from bot.services import Services


@dataclass
class RecordingHost:
    pulls: dict[int, PullRequest] = field(default_factory=dict)
    checks: dict[int, tuple[str, CheckReport]] = field(default_factory=dict)
    comments: dict[int, str] = field(default_factory=dict)  # sticky comment id -> body
    commented_on: dict[int, int] = field(default_factory=dict)  # sticky comment id -> request
    deployments: dict[int, tuple[str, str]] = field(default_factory=dict)
    deployment_statuses: list[tuple[int, DeployState, str]] = field(default_factory=list)
    reactions: list[tuple[int, str]] = field(default_factory=list)  # (comment id, reaction)
    access: dict[str, Access] = field(default_factory=dict)  # username -> access; else NONE
    replies: list[tuple[int, str]] = field(default_factory=list)  # (request number, body)
    login: str = "stagingbot[bot]"  # what identity() answers
    gates: list[tuple[str, str, CheckReport]] = field(default_factory=list)  # (gate, sha, check)
    members: dict[str, set[str]] = field(default_factory=dict)  # team/group -> usernames
    calls: list[str] = field(default_factory=list)
    builds: dict[str, BuildReport] = field(default_factory=dict)  # sha -> what build_report says
    fail_next: list[Exception] = field(default_factory=list)
    failing: dict[str, Exception] = field(default_factory=dict)  # method -> raised every time
    _ids: Any = field(default_factory=lambda: itertools.count(100))

    def open_pull(
        self,
        repo: RepoRef,
        number: int,
        sha: str,
        branch: str = "changes",
        labels: Sequence[str] = (),
    ) -> None:
        self.pulls[number] = PullRequest(
            repo,
            number,
            sha,
            branch,
            "Update the README",
            "Codertocat",
            f"https://github.com/{repo.full_name}/pull/{number}",
            open=True,
            labels=tuple(labels),
        )

    def set_labels(self, number: int, labels: Sequence[str]) -> None:
        self.pulls[number] = replace(self.pulls[number], labels=tuple(labels))

    def push(self, number: int, sha: str) -> None:
        self.pulls[number] = replace(self.pulls[number], head_sha=sha)

    def close(self, number: int) -> None:
        self.pulls[number] = replace(self.pulls[number], open=False)

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.failing:
            raise self.failing[name]
        if self.fail_next:
            raise self.fail_next.pop(0)

    async def open_pulls(self, repo: RepoRef) -> list[PullRequest]:
        self._call("open_pulls")
        return [
            pull
            for _, pull in sorted(self.pulls.items())
            if pull.open and pull.repo.full_name.lower() == repo.full_name.lower()
        ]

    async def get_pull(self, repo: RepoRef, number: int) -> PullRequest:
        self._call("get_pull")
        if number not in self.pulls:
            raise PermanentError(f"pull request {number} not found")
        return self.pulls[number]

    async def report_check(
        self,
        repo: RepoRef,
        sha: str,
        check: CheckReport,
        known_id: int | None,
        gate: str = "",
        *,
        unseen: bool = False,  # as GitHub's adapter: no look-up, so a wrong claim doubles
    ) -> int | None:
        self._call("report_check")
        if gate:  # a second check (staging/qa): kept apart, every write in order
            self.gates.append((gate, sha, check))
            return known_id or int(next(self._ids))
        found = known_id or (
            None if unseen else next((i for i, (s, _) in self.checks.items() if s == sha), None)
        )
        check_id = found or next(self._ids)
        self.checks[check_id] = (sha, check)
        return check_id

    async def upsert_comment(
        self, repo: RepoRef, number: int, body: str, known_id: int | None, *, unseen: bool = False
    ) -> int:
        self._call("upsert_comment")
        # Like the hosts: one sticky comment per request, found on that request only.
        mine = (i for i, n in self.commented_on.items() if n == number)
        found = None if unseen else next(mine, None)  # a wrong claim doubles
        comment_id = known_id or found or next(self._ids)
        self.comments[comment_id] = body
        self.commented_on.setdefault(comment_id, number)  # an edit leaves it where it is
        return comment_id

    def comments_on(self, number: int) -> list[str]:
        """The sticky comments on request `number`, oldest first (one, unless doubled)."""
        return [self.comments[i] for i, n in self.commented_on.items() if n == number]

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
        self._call("report_deployment")
        mine = (i for i, (e, s) in self.deployments.items() if (e, s) == (environment, sha))
        found = known_id or (None if unseen else next(mine, None))
        deployment_id = found or next(self._ids)
        self.deployments[deployment_id] = (environment, sha)
        self.deployment_statuses.append((deployment_id, state, url))
        return deployment_id

    async def react(self, repo: RepoRef, number: int, comment_id: int, reaction: str) -> None:
        if reaction not in REACTIONS:
            raise ValueError(f"unknown reaction {reaction!r}")
        self._call("react")
        if (comment_id, reaction) not in self.reactions:  # like the hosts: once per reaction
            self.reactions.append((comment_id, reaction))

    async def permission(self, repo: RepoRef, user: str) -> Access:
        self._call("permission")
        return self.access.get(user, Access.NONE)

    async def member_of(self, repo: RepoRef, group: str, user: str) -> bool:
        self._call("member_of")
        return user in self.members.get(group, set())

    async def reply(self, repo: RepoRef, number: int, body: str) -> int:
        self._call("reply")
        self.replies.append((number, body))
        return int(next(self._ids))

    async def identity(self) -> str:
        self._call("identity")
        return self.login

    async def build_report(self, repo: RepoRef, sha: str) -> BuildReport:
        self._call("build_report")
        return self.builds.get(sha, BuildReport())

    def gate_on(self, gate: str, sha: str) -> CheckReport | None:
        """What the `gate` check on `sha` says now (its last write), None if never written."""
        found = [check for g, s, check in self.gates if (g, s) == (gate, sha)]
        return found[-1] if found else None

    def check_on(self, sha: str) -> CheckReport:
        (check,) = [c for s, c in self.checks.values() if s == sha]
        return check


@dataclass
class RecordingProvisioner:
    applied: list[Target] = field(default_factory=list)
    destroyed: list[str] = field(default_factory=list)
    rollout: Rollout = field(default_factory=lambda: Rollout(ready=True))
    status_error: Exception | None = None
    apply_error: Exception | None = None
    destroy_rounds: int = 0  # how many destroy() calls answer "still terminating"
    destroy_error: Exception | None = None
    namespaces: set[str] = field(default_factory=set)
    archived: set[str] = field(default_factory=set)  # namespaces scaled to zero
    calls: list[str] = field(default_factory=list)  # "archive <ns>", "restore <ns>"
    # What list_stagings answers: what apply left in the cluster, by namespace.
    stagings: dict[str, ClusterStaging] = field(default_factory=dict)
    list_error: Exception | None = None
    # What take_output answers once per namespace (then nothing), and what notify heard.
    outputs: dict[str, StepOutput] = field(default_factory=dict)
    notified: list[tuple[str, Phase, str]] = field(default_factory=list)  # (ns, phase, reason)
    # What health() answers (key -> why unavailable), and whether it fails to look.
    unhealthy: dict[StagingKey, str] = field(default_factory=dict)
    health_error: Exception | None = None
    health_asked: list[list[StagingKey]] = field(default_factory=list)
    # Decisions kept outside Redis (a ConfigMap or a file in the real ones).
    kept: dict[StagingKey, Decision] = field(default_factory=dict)
    decision_error: Exception | None = None

    async def apply(self, target: Target) -> None:
        if self.apply_error is not None:
            raise self.apply_error
        self.applied.append(target)
        self.namespaces.add(target.namespace)
        self.stagings[target.namespace] = ClusterStaging(
            target.key,
            target.namespace,
            target.repo,
            target.sha,
            target.url,
            archived=target.namespace in self.archived,
            overrides=dict(target.overrides),
        )

    async def status(self, target: Target) -> Rollout:
        if self.status_error is not None:
            raise self.status_error
        return self.rollout

    async def destroy(self, target: Target) -> bool:
        if self.destroy_error is not None:
            raise self.destroy_error
        self.destroyed.append(target.namespace)
        if self.destroy_rounds > 0:
            self.destroy_rounds -= 1
            return False
        self.namespaces.discard(target.namespace)
        self.stagings.pop(target.namespace, None)
        return True

    async def archive(self, target: Target) -> None:
        self.calls.append(f"archive {target.namespace}")
        self.archived.add(target.namespace)
        self._mark(target.namespace, archived=True)

    async def restore(self, target: Target) -> None:
        self.calls.append(f"restore {target.namespace}")
        self.archived.discard(target.namespace)
        self._mark(target.namespace, archived=False)

    async def list_stagings(self, instance: str) -> list[ClusterStaging]:
        self.calls.append("list_stagings")
        if self.list_error is not None:
            raise self.list_error
        return sorted(self.stagings.values(), key=lambda staging: staging.key)

    def take_output(self, target: Target) -> StepOutput:
        return self.outputs.pop(target.namespace, StepOutput())

    async def health(self, instance: str, running: Sequence[Target]) -> dict[StagingKey, str]:
        self.calls.append("health")
        self.health_asked.append([target.key for target in running])
        if self.health_error is not None:
            raise self.health_error
        return dict(self.unhealthy)

    async def remember_decision(self, instance: str, decision: Decision) -> None:
        if self.decision_error is not None:
            raise self.decision_error
        self.kept[decision.key] = decision

    async def forget_decision(self, instance: str, key: StagingKey) -> None:
        if self.decision_error is not None:
            raise self.decision_error
        self.kept.pop(key, None)

    async def decisions(self, instance: str) -> dict[StagingKey, Decision]:
        self.calls.append("decisions")
        if self.decision_error is not None:
            raise self.decision_error
        return dict(self.kept)

    async def notify(self, target: Target, phase: Phase, reason: str) -> None:
        self.notified.append((target.namespace, phase, reason))

    def _mark(self, namespace: str, archived: bool) -> None:
        if namespace in self.stagings:
            self.stagings[namespace] = replace(self.stagings[namespace], archived=archived)


__all__ = ["RecordingHost", "RecordingProvisioner", "TemporaryError"]


def host_of(svc: Services) -> RecordingHost:
    """The recording host of services built over one (the `svc` fixtures)."""
    host = svc.hosts["github"]
    assert isinstance(host, RecordingHost)
    return host


def prov_of(svc: Services) -> RecordingProvisioner:
    """The recording provisioner of services built over one."""
    assert isinstance(svc.provisioner, RecordingProvisioner)
    return svc.provisioner
