"""The plain data the bot passes around: staging identity, requests, targets, reports."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class StagingKey:
    """A staging's identity: host + the repository's numeric id + request number.

    Names are for display only, so a renamed or transferred repository keeps its staging.
    """

    host: str
    repo_id: int
    number: int

    def __str__(self) -> str:
        return f"{self.host}:{self.repo_id}:{self.number}"

    @classmethod
    def parse(cls, text: str) -> StagingKey:
        host, repo_id, number = text.split(":")
        return cls(host, int(repo_id), int(number))


@dataclass(frozen=True)
class RepoRef:
    """A repository on a Git host: numeric id (identity) and full name (display, API paths)."""

    host: str
    id: int
    full_name: str
    # The GitHub App installation a signed webhook named for it (0: not known). A hint that
    # saves looking the installation up; not part of the repository's identity.
    installation: int = field(default=0, compare=False)


@dataclass(frozen=True)
class PullRequest:
    """The Git host's current truth about one pull/merge request."""

    repo: RepoRef
    number: int
    head_sha: str
    branch: str
    title: str
    author: str
    url: str
    open: bool
    merged: bool = False
    draft: bool = False
    fork: bool = False  # from another repository: never deployed without approval (commands)
    labels: tuple[str, ...] = ()  # label names, as the host spells them
    # Comments on it when the host said (a single read, just now); None: not known.
    comments: int | None = None


class Phase(enum.StrEnum):
    """Where a staging is in its life."""

    PENDING = "pending"
    AWAITING_APPROVAL = "awaiting approval"  # a fork's request: nothing runs until approved
    # The head's build (staging.wait_for / wait_for_image) is not ready: the previous
    # commit's staging, if any, keeps running meanwhile.
    WAITING_FOR_BUILD = "waiting for build"
    BUILD_FAILED = "build failed"  # the head's build failed: the previous commit keeps running
    QUEUED = "queued"  # beyond staging.max_active(_per_repo): deployed when a slot frees
    DEPLOYING = "deploying"
    RUNNING = "running"
    FAILED = "failed"
    ARCHIVED = "archived"  # scaled to zero, data kept
    DESTROYING = "destroying"
    GONE = "gone"


@dataclass(frozen=True)
class Target:
    """Everything a provisioner needs to build one staging: names are already DNS-safe."""

    key: StagingKey
    repo: str  # full name, display only
    number: int
    sha: str
    branch: str
    namespace: str
    name: str  # short DNS-1123 label for objects, e.g. "hello-world-pr-2"
    hostname: str  # e.g. "hello-world-pr-2.staging.example.com"
    url: str
    image: str
    manifests: str  # template folder
    instance: str  # the bot instance label value
    db_password: str = field(repr=False, default="")
    tls_secret: str = ""  # name of a wildcard certificate Secret to copy, "" for none
    ingress_class: str = ""
    cert_manager_issuer: str = ""
    redeploy_token: str = ""  # changes the pod-template annotation to force a rollout
    # `/staging set KEY=VALUE` environment variables, sorted by key; public, any text.
    overrides: tuple[tuple[str, str], ...] = ()
    # Secret overrides (set through the API, dashboard or CLI), opened from their sealed form
    # by the worker: a Kubernetes Secret, or the programs' environment; never shown.
    secret_overrides: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    secret_checksum: str = ""  # a keyed digest of them (bot.sealed.checksum), "" for none
    # Applied before and not torn down since: the `command` provisioner runs `update`, not `create`.
    built: bool = False


@dataclass(frozen=True)
class ClusterStaging:
    """A staging as the cluster records it on its namespace: the sweep's source of truth.

    Redis is an index rebuilt from these after a wipe: what was applied (SHA, overrides)
    and whether a person archived it live with the staging, not only in Redis.
    """

    key: StagingKey
    namespace: str
    repo: str  # full name when last applied, display only (the key holds the numeric id)
    sha: str  # the commit last applied
    url: str
    terminating: bool = False
    archived: bool = False
    overrides: dict[str, str] = field(default_factory=dict)  # as applied, KEY -> value
    # The secret ones, from the staging's Secret: sealed again when a record is rebuilt.
    secret_overrides: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Rollout:
    """What a provisioner saw of a staging's workloads."""

    ready: bool
    failed: bool = False
    reason: str = ""  # in words, e.g. "image cannot be pulled: registry.example.com/shop:abc"


class CheckState(enum.StrEnum):
    """How a commit check / status reads on the request."""

    IN_PROGRESS = "in_progress"
    SUCCESS = "success"
    FAILURE = "failure"
    CANCELLED = "cancelled"

    def can_follow(self, written: str) -> bool:
        """May a check run that says `written` ("" if none) be edited to say this? GitHub
        keeps a completed run's status and conclusion for good: only one in progress moves
        on, or a completed one says the same again (new text). Else a new run is started
        (GitHub shows the newest run of a name)."""
        return written in ("", CheckState.IN_PROGRESS) or written == self


@dataclass(frozen=True)
class CheckReport:
    """A check run (App) or commit status (personal token) on one commit."""

    state: CheckState
    title: str
    summary: str
    url: str = ""


class DeployState(enum.StrEnum):
    """GitHub deployment status states the bot uses."""

    IN_PROGRESS = "in_progress"
    SUCCESS = "success"
    FAILURE = "failure"
    INACTIVE = "inactive"


@dataclass(frozen=True)
class BuildCheck:
    """One check run, commit status or pipeline job on a commit, as the build gate reads it."""

    name: str
    state: str  # "pending", "success" or "failure" (bot.build_gate maps each host's words)
    detail: str = ""  # the host's own word, e.g. "timed_out", "canceled"
    url: str = ""


@dataclass(frozen=True)
class BuildReport:
    """What a host says about a commit's builds: its checks, and whether more can come."""

    checks: tuple[BuildCheck, ...] = ()
    # Set when nothing more will run (a GitLab pipeline that finished), e.g. "pipeline #31
    # finished: failed": a name still missing then will never appear.
    finished: str = ""
