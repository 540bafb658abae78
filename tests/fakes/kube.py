"""A fake Kubernetes API server on 127.0.0.1 that the real `kubernetes` client talks to over HTTP.

It speaks the wire protocol the bot relies on: discovery (`/version`, `/api`, `/apis`,
APIResourceLists), namespaces with asynchronous termination, namespaced objects with
GET/LIST (label and field selectors)/POST/PUT/PATCH (server-side apply, JSON merge
patch)/DELETE, `Status` error bodies with the API server's reasons and messages,
schema validation with `kubernetes_validate`, and a small controller that rolls
Deployments and StatefulSets out into Pods (and a StatefulSet's volume claims).

Test hooks (all thread-safe, callable while the server runs):

- `fail_image_pull(substring)`, `crash_loop(substring)`, `unschedulable(substring)`,
  `never_ready(substring)`: Pods whose container image contains `substring` fail the way
  a real cluster shows it (container `waiting` reasons, `PodScheduled=False`, ...);
  `clear_faults()` heals them (the controller re-reads faults on every tick).
- `fail_next(count, status=503, retry_after=None, path_prefix="", page="")`: the next
  `count` matching requests answer with that status (`Retry-After` header when given); with
  `page`, that text as `text/html` instead of a `Status`, as a proxy in front of the API
  server (an ingress, an auth proxy) answers.
- `go_down(status=503)` / `come_back()`: the API server is out of reach until it comes
  back: every request answers `status` (as a load balancer in front of a dead API server
  does), or with `status=None` the connection is closed without an answer. The stored
  objects and the controller are untouched.
- `add(obj)`: store an object directly (e.g. a TLS Secret in another namespace).
- `authorize`: a callable that may refuse a resource request with a 403 before it is
  served; `tests/fakes/rbac.py` evaluates RBAC objects as the API server does.
- `set_status(kind, namespace, name, status)`: overwrite a workload's status.
- `namespace(name)`, `objects(kind, namespace)`, `get(kind, namespace, name)`: copies.
- `requests` / `count(...)`: every request seen (method, path, query, content type).

Simplifications, on purpose:

- Server-side apply tracks ownership per leaf path, treating maps as mergeable and
  lists as atomic (the real server merges lists by key, e.g. containers by name). Fields
  a manager stops applying are removed unless another manager owns them; conflicts with
  another manager's differing value answer 409 unless `force=true`.
  An Update (PUT, merge patch) takes over the fields whose value it changes, as the real
  server does. Managers are told apart by name only (the real server keeps one entry per
  manager and operation), so use distinct names for a manager's Apply and Update writes.
  Strategic merge patch is treated as a JSON merge patch; JSON patch is refused (415).
- Validation is `kubernetes_validate` (first error only) plus the rules the bot can trip
  over: names, label syntax, Deployment selector vs template labels, immutable
  selectors, Job templates and StatefulSet specs.
- Deployment/StatefulSet pods are owned directly by the workload (no ReplicaSets or
  ControllerRevisions); old pods are replaced at once when the template changes.
- A StatefulSet's pod `i` gets the claims `<template>-<set>-<i>` of its
  `volumeClaimTemplates` (created when missing, labelled with the template's and the
  selector's labels, Bound at once) mounted as volumes, as the real controller does. Its
  `persistentVolumeClaimRetentionPolicy` (defaulted to Retain/Retain) is honoured: with
  `whenDeleted: Delete` the claims carry the StatefulSet as owner (garbage collected with
  it); with `whenScaled: Delete` the claims of the ordinals a scale-down removes are
  deleted with their pods (at once; the real controller makes the pod their owner).
  Claims have no protection finalizer and no PersistentVolumes exist.
  Jobs complete after the rollout delay without pods (suspended ones never do);
  DaemonSets get no pods.
- No watch, no pagination (`limit`/`continue` ignored), no admission webhooks; no RBAC
  unless `authorize` is set (else any request with the kubeconfig's bearer token is allowed).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate
import yaml

Obj = dict[str, Any]
SCHEMA_VERSION = "1.33"
SERVER_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-04-23T00:00:00Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}
ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
UNSCHEDULABLE = (
    "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: "
    "3 No preemption victims found for incoming pod."
)


@dataclass(frozen=True)
class ApiResource:
    """One resource type the fake serves, as discovery describes it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:  # "deployments.apps", as in NotFound messages
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def group_kind(self) -> str:  # "Deployment.apps", as in Invalid messages
        return f"{self.kind}.{self.group}" if self.group else self.kind


RESOURCES = (
    ApiResource("", "v1", "namespaces", "Namespace", False, ("ns",), ("status", "finalize")),
    ApiResource("", "v1", "pods", "Pod", True, ("po",), ("status", "log")),
    ApiResource("", "v1", "services", "Service", True, ("svc",), ("status",)),
    ApiResource("", "v1", "secrets", "Secret"),
    ApiResource("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    ApiResource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",)),
    ApiResource("", "v1", "resourcequotas", "ResourceQuota", True, ("quota",), ("status",)),
    ApiResource("", "v1", "limitranges", "LimitRange", True, ("limits",)),
    ApiResource("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    ApiResource("apps", "v1", "deployments", "Deployment", True, ("deploy",), ("status", "scale")),
    ApiResource("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), ("status", "scale")),
    ApiResource("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), ("status",)),
    ApiResource("batch", "v1", "jobs", "Job", True, (), ("status",)),
    ApiResource("batch", "v1", "cronjobs", "CronJob", True, ("cj",), ("status",)),
    ApiResource("networking.k8s.io", "v1", "ingresses", "Ingress", True, ("ing",), ("status",)),
    ApiResource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
    ApiResource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",)),
    ApiResource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
    ApiResource("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    ApiResource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
)
_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
_WORKLOAD_PLURALS = {"deployments", "statefulsets"}
_GENERATION_GROUPS = {"apps", "batch", "networking.k8s.io", "policy", "autoscaling"}
# Metadata the server owns: never part of an applied configuration's field ownership.
_SYSTEM_METADATA = {
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
}
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*"
    "[a-z0-9])?)*')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_DNS_1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
_TERMINATING_CONFLICT = (
    "The system is ensuring all content is removed from this namespace.  Upon completion, "
    "this namespace will automatically be purged by the system."
)


class ConnectionDropped(Exception):
    """The fake is down (`go_down(None)`): the connection closes without an answer."""


class ApiError(Exception):
    """An error answered as a `Status` object."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: Obj | None = None,
        headers: dict[str, str] | None = None,
        page: str = "",
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details = details
        self.headers = headers or {}
        self.page = page  # answered as text/html instead of a Status (a proxy's answer)

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _not_found(res: ApiResource, name: str) -> ApiError:
    details = (
        {"name": name, "group": res.group, "kind": res.plural}
        if res.group
        else {
            "name": name,
            "kind": res.plural,
        }
    )
    return ApiError(404, "NotFound", f'{res.qualified} "{name}" not found', details)


def _invalid(res: ApiResource, name: str, field_path: str, detail: str) -> ApiError:
    message = f'{res.group_kind} "{name}" is invalid: {field_path}: {detail}'
    cause = {"reason": "FieldValueInvalid", "message": detail, "field": field_path}
    details = {"name": name, "group": res.group, "kind": res.kind, "causes": [cause]}
    return ApiError(422, "Invalid", message, details)


def _conflict(res: ApiResource, name: str, detail: str) -> ApiError:
    message = f'Operation cannot be fulfilled on {res.qualified} "{name}": {detail}'
    return ApiError(
        409, "Conflict", message, {"name": name, "group": res.group, "kind": res.plural}
    )


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str


@dataclass(frozen=True)
class _Fault:
    kind: str  # "pull" | "crash" | "unschedulable" | "unready"
    message: str = ""
    reason: str = ""
    exit_code: int = 1
    restarts: int = 5


@dataclass
class _HttpFailure:
    remaining: int
    status: int
    retry_after: int | None
    path_prefix: str
    page: str = ""


@dataclass
class _Entry:
    obj: Obj
    owners: dict[str, tuple[str, set[tuple[str, ...]]]] = field(default_factory=dict)
    converge_at: float = 0.0  # workloads and jobs: when the fake controller acts


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def schema_version() -> str:
    """SCHEMA_VERSION if kubernetes_validate bundles it, else the closest newer one."""
    folder = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    bundled = sorted(
        tuple(int(x) for x in p.name[1:].split("-")[0].split(".")[:2])
        for p in folder.iterdir()
        if p.name.startswith("v") and p.name.endswith("-local-strict")
    )
    wanted = tuple(int(x) for x in SCHEMA_VERSION.split("."))
    newer = [v for v in bundled if v >= wanted]
    chosen = newer[0] if newer else bundled[-1]
    return f"{chosen[0]}.{chosen[1]}"


# --- selectors ---------------------------------------------------------------------------

_REQUIREMENT = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9_./-]+)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<value>[A-Za-z0-9_.-]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?\s*$"
)


def parse_label_selector(text: str) -> Callable[[dict[str, str]], bool]:
    """A predicate for a label selector: `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`."""
    parts: list[str] = []
    depth, current = 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    checks: list[Callable[[dict[str, str]], bool]] = []
    for part in parts:
        if not part.strip():
            continue
        match = _REQUIREMENT.match(part)
        if match is None or (match["neg"] and (match["op"] or match["setop"])):
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {part.strip()!r}")
        checks.append(_requirement(match))
    return lambda labels: all(check(labels) for check in checks)


def _requirement(match: re.Match[str]) -> Callable[[dict[str, str]], bool]:
    key, op, value = match["key"], match["op"], match["value"]
    if match["neg"]:
        return lambda labels: key not in labels
    if op in ("=", "=="):
        return lambda labels: labels.get(key) == value
    if op == "!=":
        return lambda labels: labels.get(key) != value
    if match["setop"]:
        values = {v.strip() for v in match["values"].split(",") if v.strip()}
        if match["setop"] == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    return lambda labels: key in labels


def _field_selector(text: str) -> Callable[[Obj], bool]:
    checks: list[tuple[str, str, bool]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        negate = "!=" in part
        name, _, value = part.replace("!=", "=").replace("==", "=").partition("=")
        if name not in ("metadata.name", "metadata.namespace"):
            raise ApiError(400, "BadRequest", f'field label not supported: "{name}"')
        checks.append((name.split(".")[1], value, negate))
    return lambda obj: all(
        (obj["metadata"].get(key, "") == value) != negate for key, value, negate in checks
    )


# --- merging and field ownership ----------------------------------------------------------


def _leaves(node: Obj, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for key, value in node.items():
        path = (*prefix, key)
        if isinstance(value, dict) and value:
            yield from _leaves(value, path)
        else:
            yield path, value


def _ownable(obj: Obj) -> Obj:
    out = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status")}
    metadata = {k: v for k, v in obj.get("metadata", {}).items() if k not in _SYSTEM_METADATA}
    out.pop("metadata", None)
    if metadata:
        out["metadata"] = metadata
    return out


def _remove_path(obj: Obj, path: tuple[str, ...]) -> None:
    parents: list[tuple[Obj, str]] = []
    node: Any = obj
    for key in path[:-1]:
        if not isinstance(node, dict) or not isinstance(node.get(key), dict):
            return
        parents.append((node, key))
        node = node[key]
    if isinstance(node, dict):
        node.pop(path[-1], None)
    for parent, key in reversed(parents):  # drop maps left empty by the removal
        if parent[key] == {}:
            del parent[key]


def merge(base: Any, patch: Any, null_deletes: bool = False) -> Any:
    """Maps merge key by key; lists and scalars replace (JSON merge patch when null_deletes)."""
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None and null_deletes:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), value, null_deletes)
    return out


def _take_over(
    owners: dict[str, tuple[str, set[tuple[str, ...]]]], manager: str, old: Obj, new: Obj
) -> None:
    """An Update (PUT, merge patch) owns the fields whose value it changed, taking them from
    every other manager; the fields it removed leave every manager. It gains nothing it
    left as it was. ("Whenever a field's value does change, ownership moves from its current
    manager to the manager making the change": kubernetes.io server-side apply docs.)"""
    before, after = dict(_leaves(old)), dict(_leaves(new))
    missing = object()
    changed = {path for path, value in after.items() if before.get(path, missing) != value}
    removed = before.keys() - after.keys()
    for other, (operation, owned) in list(owners.items()):
        if other != manager:
            owners[other] = (operation, owned - changed - removed)
    owned = owners.get(manager, ("Update", set()))[1]
    owners[manager] = ("Update", (owned - removed) | changed)


def _fields_v1(paths: set[tuple[str, ...]]) -> Obj:
    tree: Obj = {}
    for path in sorted(paths):
        node = tree
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return tree


# --- the server ----------------------------------------------------------------------------


class FakeKube:
    """The fake API server: `with FakeKube() as kube: kube.write_kubeconfig(path)`."""

    def __init__(
        self,
        namespace_delete_delay: float = 0.3,
        rollout_delay: float = 0.1,
        tick: float = 0.02,
        token: str = "fake-token",  # noqa: S107 (a test token)
    ) -> None:
        self.namespace_delete_delay = namespace_delete_delay
        self.rollout_delay = rollout_delay
        self.tick = tick
        self.token = token
        self.requests: list[RecordedRequest] = []
        self._lock = threading.RLock()
        self._store: dict[tuple[str, str], dict[tuple[str, str], _Entry]] = {
            (r.group, r.plural): {} for r in RESOURCES
        }
        self._rv = itertools.count(1000)
        self._faults: list[tuple[str, _Fault]] = []
        self._http_failures: list[_HttpFailure] = []
        self._down: int | None | bool = False  # False: up; None: drop connections
        self._delete_at: dict[str, float] = {}
        self._schema = schema_version()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        # Called with (resource, subresource, verb, namespace, name, body) before each
        # resource request; raises ApiError(403) to refuse it (tests/fakes/rbac.py).
        self.authorize: Callable[[ApiResource, str, str, str, str, bytes], None] | None = None
        for name in ("default", "kube-system"):
            self._write(_BY_PATH[("", "v1", "namespaces")], "", name, {}, "seed", "create")

    # lifecycle

    def start(self) -> FakeKube:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._stopping.clear()
        self._threads = [
            threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True),
            threading.Thread(target=self._control_loop, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> FakeKube:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def write_kubeconfig(self, path: str | Path, context: str = "fake") -> str:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": self.token}}],
            "contexts": [
                {"name": context, "context": {"cluster": "fake", "user": "fake"}},
            ],
            "current-context": context,
        }
        Path(path).write_text(yaml.safe_dump(config))
        return str(path)

    # test hooks

    def fail_image_pull(
        self, image_substring: str, message: str = "", reason: str = "ImagePullBackOff"
    ) -> None:
        """Containers whose image contains the text cannot be pulled (ErrImagePull/BackOff)."""
        self._add_fault(image_substring, _Fault("pull", message, reason))

    def crash_loop(self, image_substring: str, exit_code: int = 1, restarts: int = 5) -> None:
        self._add_fault(image_substring, _Fault("crash", exit_code=exit_code, restarts=restarts))

    def unschedulable(self, image_substring: str, message: str = UNSCHEDULABLE) -> None:
        self._add_fault(image_substring, _Fault("unschedulable", message))

    def never_ready(self, image_substring: str) -> None:
        """Containers run but their readiness probe never passes."""
        self._add_fault(image_substring, _Fault("unready"))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _add_fault(self, image_substring: str, fault: _Fault) -> None:
        with self._lock:
            self._faults.append((image_substring, fault))

    def fail_next(
        self,
        count: int = 1,
        status: int = 503,
        retry_after: int | None = None,
        path_prefix: str = "",
        page: str = "",
    ) -> None:
        """The next `count` requests whose path starts with `path_prefix` answer `status`
        (with `page`: that HTML page, as a proxy in front of the API server answers)."""
        with self._lock:
            failure = _HttpFailure(count, status, retry_after, path_prefix, page)
            self._http_failures.append(failure)

    def go_down(self, status: int | None = 503) -> None:
        """Every request fails until `come_back()`: answered `status`, or (None) dropped."""
        with self._lock:
            self._down = status

    def come_back(self) -> None:
        with self._lock:
            self._down = False

    def add(self, obj: Obj) -> Obj:
        """Store an object as if an operator had created it (validated, no HTTP)."""
        res = self._resource_for(obj["kind"])
        namespace = obj["metadata"].get("namespace", "") if res.namespaced else ""
        with self._lock:
            return self._write(res, namespace, obj["metadata"]["name"], obj, "seed", "create")

    def set_status(self, kind: str, namespace: str, name: str, status: Obj) -> None:
        """Overwrite an object's status; the controller leaves it alone from then on."""
        res = self._resource_for(kind)
        with self._lock:
            entry = self._store[(res.group, res.plural)][(namespace, name)]
            entry.obj["status"] = copy.deepcopy(status)
            entry.converge_at = float("inf")
            entry.obj["metadata"]["resourceVersion"] = str(next(self._rv))

    def namespace(self, name: str) -> Obj | None:
        return self.get("Namespace", "", name)

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        res = self._resource_for(kind)
        with self._lock:
            entry = self._store[(res.group, res.plural)].get((namespace, name))
            return copy.deepcopy(entry.obj) if entry else None

    def objects(self, kind: str, namespace: str | None = None) -> list[Obj]:
        """Copies of every object of `kind` (e.g. "Deployment" or "deployments"), by name."""
        res = self._resource_for(kind)
        with self._lock:
            found = [
                copy.deepcopy(e.obj)
                for (ns, _), e in sorted(self._store[(res.group, res.plural)].items())
                if namespace is None or ns == namespace
            ]
        return found

    def count(self, method: str = "", path_contains: str = "", content_type: str = "") -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (not method or r.method == method)
                and path_contains in r.path
                and content_type in r.content_type
            )

    @staticmethod
    def _resource_for(kind: str) -> ApiResource:
        for res in RESOURCES:
            if kind in (res.kind, res.plural):
                return res
        raise KeyError(f"the fake does not serve {kind}")

    # HTTP entry point (called from handler threads)

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Obj | str]:
        parts = urlsplit(raw_path)
        query = parse_qs(parts.query, keep_blank_values=True)
        content_type = headers.get("content-type", "")
        with self._lock:
            self.requests.append(RecordedRequest(method, parts.path, query, content_type))
            if self._down is None:
                raise ConnectionDropped
            try:
                if self._down is not False:
                    raise ApiError(
                        int(self._down),
                        "ServiceUnavailable",
                        "the server is currently unable to handle the request",
                    )
                self._injected_failure(parts.path)
                if headers.get("authorization") != f"Bearer {self.token}":
                    raise ApiError(401, "Unauthorized", "Unauthorized")
                return self._route(method, parts.path, query, content_type, body)
            except ApiError as err:
                return err.code, err.headers, err.page or err.status()

    def _injected_failure(self, path: str) -> None:
        for failure in self._http_failures:
            if failure.remaining > 0 and path.startswith(failure.path_prefix):
                failure.remaining -= 1
                headers = {}
                if failure.retry_after is not None:
                    headers["Retry-After"] = str(failure.retry_after)
                if failure.page:
                    raise ApiError(failure.status, "", "", None, headers, page=failure.page)
                if failure.status == 429:
                    raise ApiError(
                        429,
                        "TooManyRequests",
                        "Too many requests, please try again later.",
                        {"retryAfterSeconds": failure.retry_after or 1},
                        headers,
                    )
                reason = {500: "InternalError", 504: "Timeout"}.get(
                    failure.status, "ServiceUnavailable"
                )
                raise ApiError(
                    failure.status,
                    reason,
                    "the server is currently unable to handle the request",
                    None,
                    headers,
                )

    # routing

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], content_type: str, body: bytes
    ) -> tuple[int, dict[str, str], Obj]:
        segments = [s for s in path.split("/") if s]
        discovery = self._discovery(segments) if method == "GET" else None
        if discovery is not None:
            return 200, {}, discovery
        if len(segments) >= 2 and segments[0] == "api":
            group, version, rest = "", segments[1], segments[2:]
        elif len(segments) >= 3 and segments[0] == "apis":
            group, version, rest = segments[1], segments[2], segments[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces" and (group, version, rest[2]) in _BY_PATH:
            namespace, rest = rest[1], rest[2:]
        res = _BY_PATH.get((group, version, rest[0])) if rest else None
        if res is None or len(rest) > 3 or (namespace and not res.namespaced):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if sub and sub not in res.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if res.namespaced and name and not namespace:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return self._dispatch(res, method, namespace, name, sub, query, content_type, body)

    def _dispatch(
        self,
        res: ApiResource,
        method: str,
        namespace: str,
        name: str,
        sub: str,
        query: dict[str, list[str]],
        content_type: str,
        body: bytes,
    ) -> tuple[int, dict[str, str], Obj]:
        one = {k: v[-1] for k, v in query.items()}
        if self.authorize is not None:
            self.authorize(res, sub, _verb(method, name, one), namespace, name, body)
        if one.get("watch") in ("true", "1"):
            raise ApiError(405, "MethodNotAllowed", "watch is not supported by the fake")
        if sub and method != "GET":
            raise ApiError(405, "MethodNotAllowed", f"the fake serves {sub} read-only")
        if method == "GET" and name:
            return 200, {}, self._view(res, self._entry(res, namespace, name).obj)
        if method == "GET":
            return 200, {}, self._list(res, namespace, one)
        if method == "POST" and not name:
            obj = _decode(body, content_type)
            obj_name = obj.get("metadata", {}).get("name", "")
            if obj_name and self._find(res, namespace, obj_name) is not None:
                message = f'{res.qualified} "{obj_name}" already exists'
                raise ApiError(
                    409, "AlreadyExists", message, {"name": obj_name, "kind": res.plural}
                )
            return 201, {}, self._write_request(res, namespace, obj_name, obj, one, "create")
        if method == "PUT" and name:
            obj = _decode(body, content_type)
            self._entry(res, namespace, name)
            return 200, {}, self._write_request(res, namespace, name, obj, one, "update")
        if method == "PATCH" and name:
            return self._patch(res, namespace, name, one, content_type, body)
        if method == "DELETE" and name:
            options = _decode(body, "application/json") if body.strip() else {}
            return 200, {}, self._delete(res, namespace, name, {**options, **one})
        if method == "DELETE":
            selector = parse_label_selector(one.get("labelSelector", ""))
            for (ns, obj_name), entry in list(self._store[(res.group, res.plural)].items()):
                if ns == namespace and selector(entry.obj["metadata"].get("labels", {})):
                    self._delete(res, ns, obj_name, one)
            return 200, {}, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on this path")

    def _discovery(self, segments: list[str]) -> Obj | None:
        if segments == ["version"]:
            return dict(SERVER_VERSION)
        if segments == ["api"]:
            addresses = [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": addresses,
            }
        if segments == ["apis"]:
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": _groups()}
        if segments == ["api", "v1"]:
            return _resource_list("", "v1")
        if len(segments) == 3 and segments[0] == "apis":
            if any(r.group == segments[1] and r.version == segments[2] for r in RESOURCES):
                return _resource_list(segments[1], segments[2])
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return None

    # reads

    def _find(self, res: ApiResource, namespace: str, name: str) -> _Entry | None:
        return self._store[(res.group, res.plural)].get((namespace, name))

    def _entry(self, res: ApiResource, namespace: str, name: str) -> _Entry:
        entry = self._find(res, namespace, name)
        if entry is None:
            raise _not_found(res, name)
        return entry

    @staticmethod
    def _view(res: ApiResource, obj: Obj) -> Obj:
        return {"kind": res.kind, "apiVersion": res.api_version, **copy.deepcopy(obj)}

    def _list(self, res: ApiResource, namespace: str, query: dict[str, str]) -> Obj:
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = _field_selector(query.get("fieldSelector", ""))
        items = [
            {k: copy.deepcopy(v) for k, v in entry.obj.items() if k not in ("apiVersion", "kind")}
            for (ns, _), entry in sorted(self._store[(res.group, res.plural)].items())
            if (not namespace or ns == namespace)
            and labels(entry.obj["metadata"].get("labels", {}))
            and fields(entry.obj)
        ]
        return {
            "kind": f"{res.kind}List",
            "apiVersion": res.api_version,
            "metadata": {"resourceVersion": str(next(self._rv))},
            "items": items,
        }

    # writes

    def _patch(
        self,
        res: ApiResource,
        namespace: str,
        name: str,
        query: dict[str, str],
        content_type: str,
        body: bytes,
    ) -> tuple[int, dict[str, str], Obj]:
        media = content_type.split(";")[0].strip()
        if media == "application/apply-patch+yaml":
            if not query.get("fieldManager"):
                raise ApiError(
                    422,
                    "Invalid",
                    'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                    "is required for apply patch",
                    {
                        "group": "meta.k8s.io",
                        "kind": "PatchOptions",
                        "causes": [
                            {
                                "reason": "FieldValueRequired",
                                "message": "Required value: is required for apply patch",
                                "field": "fieldManager",
                            }
                        ],
                    },
                )
            config = _decode(body, "application/yaml")
            created = self._find(res, namespace, name) is None
            obj = self._apply(res, namespace, name, config, query)
            return (201 if created else 200), {}, obj
        if "force" in query:
            raise ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be '
                "specified for non-apply patch",
            )
        if media in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            entry = self._entry(res, namespace, name)
            patch = _decode(body, media)
            _check_resource_version(res, name, patch, entry.obj)
            merged = merge(_ownable(entry.obj), patch, null_deletes=True)
            paths = {p for p, _ in _leaves(_ownable(patch))}
            manager = query.get("fieldManager", "OpenAPI-Generator")
            obj = self._write(res, namespace, name, merged, manager, "update", paths, query)
            return 200, {}, self._view(res, obj)
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown "
            f"format - accepted media types include: application/merge-patch+json, "
            f"application/apply-patch+yaml (got {media!r})",
        )

    def _apply(
        self, res: ApiResource, namespace: str, name: str, config: Obj, query: dict[str, str]
    ) -> Obj:
        manager, force = query["fieldManager"], query.get("force") in ("true", "True", "1")
        _check_identity(res, namespace, name, config)
        entry = self._find(res, namespace, name)
        applied = dict(_leaves(_ownable(config)))
        base: Obj = {}
        if entry is not None:
            _check_resource_version(res, name, config, entry.obj)
            current = dict(_leaves(_ownable(entry.obj)))
            conflicts = [
                (other, path)
                for other, (_, paths) in sorted(entry.owners.items())
                if other != manager
                for path in sorted(paths & applied.keys())
                if current.get(path) != applied[path]
            ]
            if conflicts and not force:
                other, path = conflicts[0]
                raise ApiError(
                    409,
                    "Conflict",
                    f"Apply failed with {len(conflicts)} conflict"
                    f'{"s" if len(conflicts) > 1 else ""}: conflict with "{other}" using '
                    f"{res.api_version}: .{'.'.join(path)}",
                    {
                        "causes": [
                            {
                                "reason": "FieldManagerConflict",
                                "field": ".".join(path),
                                "message": f'conflict with "{other}"',
                            }
                            for other, path in conflicts
                        ]
                    },
                )
            for other, path in conflicts:  # forced: the applier takes the fields over
                entry.owners[other][1].discard(path)
            others = set().union(*(p for m, (_, p) in entry.owners.items() if m != manager))
            base = _ownable(entry.obj)
            for path in entry.owners.get(manager, ("", set()))[1] - applied.keys() - others:
                _remove_path(base, path)
        merged = merge(base, _ownable(config))
        obj = self._write(res, namespace, name, merged, manager, "apply", set(applied), query)
        return self._view(res, obj)

    def _write_request(
        self, res: ApiResource, namespace: str, name: str, obj: Obj, query: dict[str, str], op: str
    ) -> Obj:
        _check_identity(res, namespace, name, obj)
        entry = self._find(res, namespace, name)
        if entry is not None:
            _check_resource_version(res, name, obj, entry.obj)
        paths = {p for p, _ in _leaves(_ownable(obj))}
        manager = query.get("fieldManager", "OpenAPI-Generator")
        written = self._write(res, namespace, name, _ownable(obj), manager, op, paths, query)
        return self._view(res, written)

    def _write(
        self,
        res: ApiResource,
        namespace: str,
        name: str,
        spec: Obj,
        manager: str,
        op: str,
        paths: set[tuple[str, ...]] | None = None,
        query: dict[str, str] | None = None,
    ) -> Obj:
        """Admission, validation, defaulting and storage of one object's user-owned fields."""
        entry = self._find(res, namespace, name)
        self._admit(res, namespace, name, entry is None)
        candidate = {"apiVersion": res.api_version, "kind": res.kind, **copy.deepcopy(spec)}
        candidate.setdefault("metadata", {}).update(name=name)
        candidate["metadata"]["uid"] = entry.obj["metadata"]["uid"] if entry else str(uuid.uuid4())
        if res.namespaced:
            candidate["metadata"]["namespace"] = namespace
        _default(res, candidate, entry.obj if entry else None)
        self._validate(res, name, candidate, entry.obj if entry else None)
        if (query or {}).get("dryRun") == "All":
            return candidate
        old = entry.obj if entry else None
        obj = self._finish_metadata(res, candidate, old)
        new_entry = _Entry(obj, entry.owners if entry else {}, entry.converge_at if entry else 0)
        if paths is not None and op == "apply":
            new_entry.owners[manager] = ("Apply", set(paths))
        elif paths is not None and old is not None:
            _take_over(new_entry.owners, manager, _ownable(old), _ownable(obj))
        elif paths is not None:  # created by an Update: it owns what it wrote
            new_entry.owners[manager] = ("Update", set(paths))
        obj["metadata"]["managedFields"] = [
            {
                "manager": m,
                "operation": operation,
                "apiVersion": res.api_version,
                "time": now_rfc3339(),
                "fieldsType": "FieldsV1",
                "fieldsV1": _fields_v1(owned),
            }
            for m, (operation, owned) in sorted(new_entry.owners.items())
            if owned
        ]
        if res.plural in _WORKLOAD_PLURALS | {"jobs"} and (
            old is None or old["metadata"].get("generation") != obj["metadata"].get("generation")
        ):
            new_entry.converge_at = time.monotonic() + self.rollout_delay
        self._store[(res.group, res.plural)][(namespace, name)] = new_entry
        return obj

    def _admit(self, res: ApiResource, namespace: str, name: str, creating: bool) -> None:
        """The NamespaceLifecycle admission plugin: no content in missing/terminating ones."""
        if not res.namespaced:
            return
        ns_entry = self._find(_BY_PATH[("", "v1", "namespaces")], "", namespace)
        if ns_entry is None:
            raise _not_found(_BY_PATH[("", "v1", "namespaces")], namespace)
        if creating and ns_entry.obj["status"].get("phase") == "Terminating":
            cause = {
                "reason": "NamespaceTerminating",
                "message": f"namespace {namespace} is being terminated",
                "field": "metadata.namespace",
            }
            raise ApiError(
                403,
                "Forbidden",
                f'{res.qualified} "{name}" is forbidden: unable to create new content in '
                f"namespace {namespace} because it is being terminated",
                {"name": name, "kind": res.plural, "causes": [cause]},
            )

    def _validate(self, res: ApiResource, name: str, obj: Obj, old: Obj | None) -> None:
        metadata = obj["metadata"]
        name_rule = (
            (_DNS_LABEL, _LABEL_MSG)
            if res.plural == "namespaces"
            else (
                (_DNS_1035, _DNS_1035_MSG)
                if res.plural == "services"
                else (_DNS_SUBDOMAIN, _SUBDOMAIN_MSG)
            )
        )
        if not name_rule[0].match(name) or len(name) > 253:
            raise _invalid(res, name, "metadata.name", f'Invalid value: "{name}": {name_rule[1]}')
        for key, value in (metadata.get("labels") or {}).items():
            if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
                detail = f'Invalid value: "{value}": ' + (
                    "must be no more than 63 characters"
                    if isinstance(value, str) and len(value) > 63
                    else _LABEL_VALUE_MSG
                )
                raise _invalid(res, name, "metadata.labels", detail)
            if len(key.rpartition("/")[2]) > 63 or not _LABEL_VALUE.match(key.rpartition("/")[2]):
                raise _invalid(
                    res,
                    name,
                    "metadata.labels",
                    f'Invalid value: "{key}": name part '
                    "must consist of alphanumeric characters, '-', '_' or '.'",
                )
        try:
            kubernetes_validate.validate(_without_server_fields(obj), self._schema, strict=True)
        except kubernetes_validate.ValidationError as err:
            path = ".".join(str(p) for p in err.path) or "<root>"
            raise _invalid(res, name, path, err.message) from None
        _check_workload_rules(res, name, obj, old)

    def _finish_metadata(self, res: ApiResource, obj: Obj, old: Obj | None) -> Obj:
        metadata = obj["metadata"]
        rv = str(next(self._rv))
        for key in ("creationTimestamp", "generation", "deletionTimestamp"):
            metadata.pop(key, None)
        if old is None:
            metadata["creationTimestamp"] = now_rfc3339()
            obj["status"] = _initial_status(res, obj)
            if res.group in _GENERATION_GROUPS:
                metadata["generation"] = 1
        else:
            for key in ("creationTimestamp", "deletionTimestamp"):
                if key in old["metadata"]:
                    metadata[key] = old["metadata"][key]
            obj["status"] = copy.deepcopy(old.get("status", {}))
            if res.group in _GENERATION_GROUPS:
                changed = _spec_of(obj) != _spec_of(old)
                metadata["generation"] = old["metadata"].get("generation", 1) + int(changed)
        metadata["resourceVersion"] = rv
        if not obj["status"]:
            del obj["status"]
        return obj

    def _delete(self, res: ApiResource, namespace: str, name: str, options: Obj) -> Obj:
        entry = self._entry(res, namespace, name)
        wanted_uid = (options.get("preconditions") or {}).get("uid")
        if wanted_uid and wanted_uid != entry.obj["metadata"]["uid"]:
            raise _conflict(
                res,
                name,
                f"Precondition failed: UID in precondition: {wanted_uid}, "
                f"UID in object meta: {entry.obj['metadata']['uid']}",
            )
        if options.get("dryRun") == "All":
            return self._view(res, entry.obj)
        if res.plural == "namespaces":
            if entry.obj["status"].get("phase") == "Terminating":
                raise _conflict(res, name, _TERMINATING_CONFLICT)
            entry.obj["metadata"]["deletionTimestamp"] = now_rfc3339()
            entry.obj["metadata"]["resourceVersion"] = str(next(self._rv))
            entry.obj["status"]["phase"] = "Terminating"
            self._delete_at[name] = time.monotonic() + self.namespace_delete_delay
            return self._view(res, entry.obj)
        del self._store[(res.group, res.plural)][(namespace, name)]
        if res.plural in ("pods", "services"):
            return self._view(res, entry.obj)
        details = {
            "name": name,
            "group": res.group,
            "kind": res.plural,
            "uid": entry.obj["metadata"]["uid"],
        }
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }

    # the controller (namespace lifecycle, garbage collection, rollouts)

    def _control_loop(self) -> None:
        while not self._stopping.wait(self.tick):
            with self._lock:
                self._reconcile_once(time.monotonic())

    def _reconcile_once(self, now: float) -> None:
        for name, when in list(self._delete_at.items()):
            if when <= now:
                del self._delete_at[name]
                for (_, plural), objects in self._store.items():
                    for key in [
                        k
                        for k in objects
                        if k[0] == name or (plural == "namespaces" and k[1] == name)
                    ]:
                        del objects[key]
        uids = {e.obj["metadata"]["uid"] for objs in self._store.values() for e in objs.values()}
        for plural in ("pods", "persistentvolumeclaims"):  # background garbage collection
            dependents = self._store[("", plural)]
            for key, dependent in list(dependents.items()):
                owners = dependent.obj["metadata"].get("ownerReferences", [])
                if owners and not any(o["uid"] in uids for o in owners):
                    del dependents[key]
        for plural in ("deployments", "statefulsets"):
            for entry in self._store[("apps", plural)].values():
                if entry.converge_at <= now:
                    self._roll_out(plural, entry)
        for entry in self._store[("batch", "jobs")].values():
            if (
                entry.converge_at <= now
                and not entry.obj.get("status", {}).get("succeeded")
                and not entry.obj["spec"].get("suspend")  # a suspended Job starts no pods
            ):
                _complete_job(entry.obj)
                entry.obj["metadata"]["resourceVersion"] = str(next(self._rv))

    def _roll_out(self, plural: str, entry: _Entry) -> None:
        obj = entry.obj
        meta, spec = obj["metadata"], obj["spec"]
        template = spec.get("template", {})
        revision = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        replicas = spec.get("replicas", 1)
        namespace, pods = meta["namespace"], self._store[("", "pods")]
        mine = {
            k: p
            for k, p in pods.items()
            if any(o["uid"] == meta["uid"] for o in p.obj["metadata"].get("ownerReferences", []))
        }
        wanted = [_pod_name(plural, meta["name"], revision, i) for i in range(replicas)]
        for key, pod in mine.items():
            if key[1] not in wanted and plural == "statefulsets":  # condemned by a scale-down
                self._scaled_down(obj, int(key[1].rpartition("-")[2]))
            if (
                key[1] not in wanted
                or pod.obj["metadata"].get("annotations", {}).get("fake.stagingbot.dev/revision")
                != revision
            ):
                del pods[key]
        ready = 0
        for index, pod_name in enumerate(wanted):
            if plural == "statefulsets":
                self._claim_volumes(obj, index)
            pod = pods.get((namespace, pod_name))
            if pod is None:
                pod = _Entry(_new_pod(plural, obj, pod_name, revision, index))
                pod.obj["metadata"]["resourceVersion"] = str(next(self._rv))
                pods[(namespace, pod_name)] = pod
            status = _pod_status(pod.obj, self._faults)
            if status != pod.obj.get("status"):
                pod.obj["status"] = status
                pod.obj["metadata"]["resourceVersion"] = str(next(self._rv))
            ready += all(
                c["status"] == "True" for c in status["conditions"] if c["type"] == "Ready"
            )
        status = _workload_status(plural, meta["generation"], replicas, ready, revision)
        _keep_times(status, obj.get("status") or {})
        if status != obj.get("status"):
            obj["status"] = status
            meta["resourceVersion"] = str(next(self._rv))

    def _claim_volumes(self, statefulset: Obj, index: int) -> None:
        """The claims of pod `index` from `volumeClaimTemplates`, created when missing, with
        the StatefulSet as owner exactly when `whenDeleted: Delete` (the controller keeps
        that reference in line with the policy on every pass)."""
        claims = self._store[("", "persistentvolumeclaims")]
        namespace, uid = statefulset["metadata"]["namespace"], statefulset["metadata"]["uid"]
        owned = _retention(statefulset, "whenDeleted") == "Delete"
        for template in statefulset["spec"].get("volumeClaimTemplates") or []:
            name = _claim_name(template, statefulset, index)
            entry = claims.get((namespace, name))
            if entry is None:
                entry = _Entry(_new_claim(template, statefulset, name))
                entry.obj["metadata"]["resourceVersion"] = str(next(self._rv))
                claims[(namespace, name)] = entry
            refs = entry.obj["metadata"].get("ownerReferences", [])
            others = [r for r in refs if r["uid"] != uid]
            wanted = others + [_claim_owner(statefulset)] if owned else others
            if wanted != refs:
                entry.obj["metadata"]["ownerReferences"] = wanted
                if not wanted:
                    del entry.obj["metadata"]["ownerReferences"]
                entry.obj["metadata"]["resourceVersion"] = str(next(self._rv))

    def _scaled_down(self, statefulset: Obj, index: int) -> None:
        """Pod `index` is removed by a scale-down: with `whenScaled: Delete` its claims go
        with it (the real controller makes the pod their owner; the garbage collector
        deletes them after the pod), else they stay for a later scale-up."""
        if _retention(statefulset, "whenScaled") != "Delete":
            return
        claims = self._store[("", "persistentvolumeclaims")]
        namespace = statefulset["metadata"]["namespace"]
        for template in statefulset["spec"].get("volumeClaimTemplates") or []:
            claims.pop((namespace, _claim_name(template, statefulset, index)), None)


# --- object helpers -----------------------------------------------------------------------


def _verb(method: str, name: str, query: dict[str, str]) -> str:
    """The RBAC verb of a request, as the API server's request-info resolver names it."""
    if method == "GET":
        if query.get("watch") in ("true", "1"):
            return "watch"
        return "get" if name else "list"
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def _decode(body: bytes, content_type: str) -> Obj:
    try:
        data = yaml.safe_load(body.decode()) if "yaml" in content_type else json.loads(body)
    except (ValueError, yaml.YAMLError) as err:
        raise ApiError(
            400, "BadRequest", f"the body of the request could not be decoded: {err}"
        ) from None
    if not isinstance(data, dict):
        raise ApiError(400, "BadRequest", "the body of the request must be an object")
    return data


def _check_identity(res: ApiResource, namespace: str, name: str, obj: Obj) -> None:
    if obj.get("apiVersion") != res.api_version or obj.get("kind") != res.kind:
        raise ApiError(
            400,
            "BadRequest",
            f"the API version in the data ({obj.get('apiVersion')}) and kind ({obj.get('kind')}) "
            f"do not match the expected {res.api_version} {res.kind}",
        )
    metadata = obj.get("metadata") or {}
    if not name or metadata.get("name", name) != name:
        raise ApiError(
            400,
            "BadRequest",
            f"the name of the object ({metadata.get('name')}) does "
            f"not match the name on the URL ({name})",
        )
    if res.namespaced and metadata.get("namespace", namespace) != namespace:
        raise ApiError(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        )


def _check_resource_version(res: ApiResource, name: str, obj: Obj, current: Obj) -> None:
    wanted = (obj.get("metadata") or {}).get("resourceVersion")
    if wanted and wanted != current["metadata"]["resourceVersion"]:
        raise _conflict(
            res,
            name,
            "the object has been modified; please apply your changes to "
            "the latest version and try again",
        )


def _without_server_fields(obj: Obj) -> Obj:
    out = {k: v for k, v in obj.items() if k != "status"}
    out["metadata"] = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
    return out


def _spec_of(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _check_workload_rules(res: ApiResource, name: str, obj: Obj, old: Obj | None) -> None:
    spec, old_spec = obj.get("spec", {}), (old or {}).get("spec", {})
    if res.plural in ("deployments", "statefulsets", "daemonsets"):
        match = (spec.get("selector") or {}).get("matchLabels", {})
        labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
        if any(labels.get(k) != v for k, v in match.items()):
            raise _invalid(
                res,
                name,
                "spec.template.metadata.labels",
                f"Invalid value: {json.dumps(labels)}: `selector` does not match template `labels`",
            )
    if old is None:
        return
    if res.plural in ("deployments", "statefulsets", "daemonsets", "jobs") and spec.get(
        "selector"
    ) != old_spec.get("selector"):
        raise _invalid(
            res,
            name,
            "spec.selector",
            f"Invalid value: {json.dumps(spec.get('selector'))}: field is immutable",
        )
    if res.plural == "jobs" and spec.get("template") != old_spec.get("template"):
        raise _invalid(
            res,
            name,
            "spec.template",
            f"Invalid value: {json.dumps(spec.get('template'))}: field is immutable",
        )
    mutable = {
        "replicas",
        "ordinals",
        "template",
        "updateStrategy",
        "persistentVolumeClaimRetentionPolicy",
        "minReadySeconds",
    }
    if res.plural == "statefulsets" and any(
        spec.get(k) != old_spec.get(k) for k in set(spec) | set(old_spec) if k not in mutable
    ):
        raise _invalid(
            res,
            name,
            "spec",
            "Forbidden: updates to statefulset spec for fields "
            "other than 'replicas', 'ordinals', 'template', 'updateStrategy', "
            "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        )


def _default(res: ApiResource, obj: Obj, old: Obj | None) -> None:
    """A few of the API server's defaults, only where a field is absent."""
    if res.plural == "namespaces":
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"][
            "name"
        ]
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    if res.plural in ("deployments", "statefulsets"):
        obj["spec"].setdefault("replicas", 1)
        obj["spec"].setdefault("revisionHistoryLimit", 10)
    if res.plural == "deployments":
        obj["spec"].setdefault("progressDeadlineSeconds", 600)
    if res.plural == "statefulsets":
        policy = obj["spec"].setdefault("persistentVolumeClaimRetentionPolicy", {})
        policy.setdefault("whenDeleted", "Retain")
        policy.setdefault("whenScaled", "Retain")
    if res.plural == "services":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        old_ip = (old or {}).get("spec", {}).get("clusterIP")
        ip = old_ip or f"10.96.{int(uuid.uuid4()) % 250}.{int(uuid.uuid4()) % 250 + 2}"
        spec.setdefault("clusterIP", ip)
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        for port in spec.get("ports", []):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
    if res.plural == "jobs":
        spec = obj.setdefault("spec", {})
        for key, value in (("backoffLimit", 6), ("completions", 1), ("parallelism", 1)):
            spec.setdefault(key, value)
        uid = obj["metadata"]["uid"]
        server_labels = {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": obj["metadata"]["name"],
        }
        spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
        template_meta = spec.setdefault("template", {}).setdefault("metadata", {})
        template_meta.setdefault("labels", {}).update(server_labels)


def _initial_status(res: ApiResource, obj: Obj) -> Obj:
    if res.plural == "namespaces":
        return {"phase": "Active"}
    if res.plural == "services":
        return {"loadBalancer": {}}
    if res.plural == "persistentvolumeclaims":
        return {"phase": "Pending"}
    return {}


def _groups() -> list[Obj]:
    groups: dict[str, list[str]] = {}
    for res in RESOURCES:
        if res.group and res.version not in groups.setdefault(res.group, []):
            groups[res.group].append(res.version)
    return [
        {
            "name": group,
            "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
            "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
        }
        for group, versions in groups.items()
    ]


def _resource_list(group: str, version: str) -> Obj:
    resources: list[Obj] = []
    for res in RESOURCES:
        if (res.group, res.version) != (group, version):
            continue
        entry: Obj = {
            "name": res.plural,
            "singularName": res.kind.lower(),
            "namespaced": res.namespaced,
            "kind": res.kind,
            "verbs": [
                v for v in ALL_VERBS if not (res.plural == "namespaces" and v == "deletecollection")
            ],
            "storageVersionHash": hashlib.sha256(res.qualified.encode()).hexdigest()[:12],
        }
        if res.short_names:
            entry["shortNames"] = list(res.short_names)
        resources.append(entry)
        for sub in res.subresources:
            resources.append(
                {
                    "name": f"{res.plural}/{sub}",
                    "singularName": "",
                    "namespaced": res.namespaced,
                    "kind": res.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


def _pod_name(plural: str, name: str, revision: str, index: int) -> str:
    if plural == "statefulsets":
        return f"{name}-{index}"
    return f"{name}-{revision[:9]}-{hashlib.sha256(f'{revision}{index}'.encode()).hexdigest()[:5]}"


def _new_pod(plural: str, owner: Obj, name: str, revision: str, index: int) -> Obj:
    template = copy.deepcopy(owner["spec"].get("template", {}))
    labels = dict(template.get("metadata", {}).get("labels", {}))
    if plural == "deployments":
        labels["pod-template-hash"] = revision[:9]
    else:
        labels["controller-revision-hash"] = f"{owner['metadata']['name']}-{revision[:9]}"
        labels["statefulset.kubernetes.io/pod-name"] = name
        _mount_claims(template.setdefault("spec", {}), owner, index)
    kind = "Deployment" if plural == "deployments" else "StatefulSet"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": owner["metadata"]["namespace"],
            "uid": str(uuid.uuid4()),
            "creationTimestamp": now_rfc3339(),
            "labels": labels,
            "annotations": {
                **template.get("metadata", {}).get("annotations", {}),
                "fake.stagingbot.dev/revision": revision,
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": kind,
                    "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": template.get("spec", {}),
    }


def _retention(statefulset: Obj, when: str) -> str:
    """`whenDeleted`/`whenScaled` of the claim retention policy (default `Retain`)."""
    policy = statefulset["spec"].get("persistentVolumeClaimRetentionPolicy") or {}
    return str(policy.get(when) or "Retain")


def _claim_name(template: Obj, statefulset: Obj, index: int) -> str:
    return f"{template['metadata']['name']}-{statefulset['metadata']['name']}-{index}"


def _claim_owner(statefulset: Obj) -> Obj:
    # KEP-1847: controller set, blockOwnerDeletion false (the pods go first, then the claims).
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": statefulset["metadata"]["name"],
        "uid": statefulset["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": False,
    }


def _new_claim(template: Obj, statefulset: Obj, name: str) -> Obj:
    """A claim as the StatefulSet controller creates it (template labels plus the
    selector's), already bound to a dynamically provisioned volume."""
    metadata = template.get("metadata") or {}
    labels = {
        **(metadata.get("labels") or {}),
        **(statefulset["spec"].get("selector", {}).get("matchLabels") or {}),
    }
    uid = str(uuid.uuid4())
    spec = copy.deepcopy(template.get("spec") or {})
    spec.setdefault("volumeMode", "Filesystem")
    spec.setdefault("storageClassName", "standard")
    spec["volumeName"] = f"pvc-{uid}"
    claim: Obj = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": name,
            "namespace": statefulset["metadata"]["namespace"],
            "uid": uid,
            "creationTimestamp": now_rfc3339(),
            "labels": labels,
            "annotations": {
                **(metadata.get("annotations") or {}),
                "pv.kubernetes.io/bind-completed": "yes",
                "pv.kubernetes.io/bound-by-controller": "yes",
            },
        },
        "spec": spec,
        "status": {
            "phase": "Bound",
            "accessModes": list(spec.get("accessModes") or []),
            "capacity": dict((spec.get("resources") or {}).get("requests") or {}),
        },
    }
    return claim


def _mount_claims(pod_spec: Obj, statefulset: Obj, index: int) -> None:
    """The pod's volume per claim template, replacing a template volume of the same name."""
    templates = statefulset["spec"].get("volumeClaimTemplates") or []
    names = {t["metadata"]["name"] for t in templates}
    volumes: list[Obj] = [
        {
            "name": template["metadata"]["name"],
            "persistentVolumeClaim": {"claimName": _claim_name(template, statefulset, index)},
        }
        for template in templates
    ]
    volumes += [v for v in pod_spec.get("volumes") or [] if v.get("name") not in names]
    if volumes:
        pod_spec["volumes"] = volumes


def _pod_status(pod: Obj, faults: list[tuple[str, _Fault]]) -> Obj:
    """What the kubelet would report for this pod, given the faults that match its images."""
    containers = pod["spec"].get("containers", [])
    found = {
        c["name"]: next((f for s, f in faults if s in c.get("image", "")), None) for c in containers
    }
    start = pod["metadata"]["creationTimestamp"]
    if any(f is not None and f.kind == "unschedulable" for f in found.values()):
        fault = next(f for f in found.values() if f is not None and f.kind == "unschedulable")
        return {
            "phase": "Pending",
            "qosClass": "BestEffort",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": fault.message,
                    "lastProbeTime": None,
                    "lastTransitionTime": start,
                }
            ],
        }
    statuses = [_container_status(pod, c, found[c["name"]], start) for c in containers]
    unready = [s["name"] for s in statuses if not s["ready"]]
    ready = "False" if unready else "True"
    conditions = [
        {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": start}
        for t in ("PodReadyToStartContainers", "Initialized", "PodScheduled")
    ]
    for kind in ("Ready", "ContainersReady"):
        condition = {
            "type": kind,
            "status": ready,
            "lastProbeTime": None,
            "lastTransitionTime": start,
        }
        if unready:
            condition["reason"] = "ContainersNotReady"
            condition["message"] = f"containers with unready status: [{' '.join(unready)}]"
        conditions.append(condition)
    pulling = any(f is not None and f.kind == "pull" for f in found.values())
    return {
        "phase": "Pending" if pulling else "Running",
        "conditions": conditions,
        "hostIP": "10.0.0.11",
        "podIP": "10.244.1.17",
        "startTime": start,
        "qosClass": "BestEffort",
        "containerStatuses": statuses,
    }


def _container_status(pod: Obj, container: Obj, fault: _Fault | None, start: str) -> Obj:
    image = container.get("image", "")
    status: Obj = {
        "name": container["name"],
        "image": image,
        "imageID": "",
        "containerID": "",
        "ready": False,
        "started": False,
        "restartCount": 0,
        "lastState": {},
    }
    if fault is not None and fault.kind == "pull":
        message = fault.message or (
            f'Back-off pulling image "{image}"'
            if fault.reason == "ImagePullBackOff"
            else f'failed to pull and unpack image "{image}": failed to resolve reference '
            f'"{image}": {image}: not found'
        )
        status["state"] = {"waiting": {"reason": fault.reason, "message": message}}
        return status
    status["imageID"] = f"{image.split(':')[0]}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"
    status["containerID"] = (
        f"containerd://{hashlib.sha256(pod['metadata']['uid'].encode()).hexdigest()}"
    )
    if fault is not None and fault.kind == "crash":
        pod_ref = (
            f"{pod['metadata']['name']}_{pod['metadata']['namespace']}({pod['metadata']['uid']})"
        )
        status["restartCount"] = fault.restarts
        status["state"] = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": (
                    f"back-off 2m40s restarting failed container={container['name']} pod={pod_ref}"
                ),
            }
        }
        status["lastState"] = {
            "terminated": {
                "exitCode": fault.exit_code,
                "reason": "Error",
                "startedAt": start,
                "finishedAt": start,
                "containerID": status["containerID"],
            }
        }
        return status
    status["started"] = True
    status["ready"] = fault is None
    status["state"] = {"running": {"startedAt": start}}
    return status


def _workload_status(plural: str, generation: int, replicas: int, ready: int, revision: str) -> Obj:
    status: Obj = {"observedGeneration": generation}
    counts = {
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": ready,
    }
    status.update({k: v for k, v in counts.items() if v})  # the API omits zero counts
    if plural == "statefulsets":
        status.update(
            currentReplicas=replicas,
            currentRevision=f"rev-{revision[:9]}",
            updateRevision=f"rev-{revision[:9]}",
            collisionCount=0,
        )
        return status
    if ready < replicas:
        status["unavailableReplicas"] = replicas - ready
    stamp = now_rfc3339()
    available = ready >= replicas
    status["conditions"] = [
        {
            "type": "Available",
            "status": "True" if available else "False",
            "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
            "message": "Deployment has minimum availability."
            if available
            else "Deployment does not have minimum availability.",
            "lastUpdateTime": stamp,
            "lastTransitionTime": stamp,
        },
        {
            "type": "Progressing",
            "status": "True",
            "reason": "NewReplicaSetAvailable" if available else "ReplicaSetUpdated",
            "message": f'ReplicaSet "{revision[:9]}" has '
            + ("successfully progressed." if available else "is progressing."),
            "lastUpdateTime": stamp,
            "lastTransitionTime": stamp,
        },
    ]
    return status


def _keep_times(status: Obj, before: Obj) -> None:
    """Conditions keep their times while they say the same, as the real controller leaves
    them: else each pass would write a new `lastUpdateTime` (to the second) and bump the
    workload's resourceVersion once a second, with nothing changed, and a read-then-patch
    (an archive carries the `resourceVersion` it read) would meet a 409 by chance."""
    old = {c["type"]: c for c in before.get("conditions") or []}
    for condition in status.get("conditions") or []:
        was = old.get(condition["type"])
        if was is None or was.get("status") != condition["status"]:
            continue  # a transition: both times are now
        condition["lastTransitionTime"] = was.get("lastTransitionTime")
        if all(was.get(k) == condition.get(k) for k in ("reason", "message")):
            condition["lastUpdateTime"] = was.get("lastUpdateTime")


def _complete_job(job: Obj) -> None:
    stamp = now_rfc3339()
    job["status"] = {
        "startTime": stamp,
        "completionTime": stamp,
        "succeeded": 1,
        "ready": 0,
        "terminating": 0,
        "uncountedTerminatedPods": {},
        "conditions": [
            {
                "type": t,
                "status": "True",
                "reason": "CompletionsReached",
                "message": "Reached expected number of succeeded pods",
                "lastProbeTime": stamp,
                "lastTransitionTime": stamp,
            }
            for t in ("SuccessCriteriaMet", "Complete")
        ],
    }


# --- HTTP plumbing ------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as aiohttp expects
    disable_nagle_algorithm = True  # small answers: don't wait for the client's delayed ACK
    fake: FakeKube

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            code, extra, payload = self.fake.handle(self.command, self.path, headers, body)
        except ConnectionDropped:
            self.close_connection = True  # no answer at all, as from a dead API server
            return
        html = isinstance(payload, str)  # a proxy's page, not the API server's JSON
        data = payload.encode() if html else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/html" if html else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        pass
