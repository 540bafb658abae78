"""Per-staging environment overrides (`/staging set KEY=VALUE`): data, checksum, wiring (pure).

The overrides live in one bot-owned ConfigMap in the staging's namespace, read by every
container with `envFrom`. Values arrive as data: Kubernetes expands `$(VAR)` only in
`env[].value`, `command` and `args`, never in what `envFrom` or `valueFrom` bring in, and
the renderer adds the ConfigMap after the templates are filled in, so `${...}` stays text.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Obj = dict[str, Any]
Fail = Callable[[str], Exception]

CONFIGMAP = "stagingbot-overrides"
ANNOTATION_CHECKSUM = "stagingbot.dev/overrides-checksum"
# Secret overrides (set only through the API, dashboard or CLI: a comment is public) are a
# later issue. The seam: a bot-owned Secret beside CONFIGMAP, listed in `envFrom` after it
# (`secretRef`), its keys swapped into `env` with `secretKeyRef` like `_from_overrides`
# does, and its data hashed into ANNOTATION_CHECKSUM too, so a change restarts the pods.
KEY = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def data(overrides: Iterable[tuple[str, str]], fail: Fail) -> dict[str, str]:
    """The ConfigMap's `data`, sorted by key; a malformed or repeated key fails.

    The caller validates keys already; this is the last check before the API server, and
    a repeated key would make the result depend on order. Messages name keys, never values.
    """
    found: dict[str, str] = {}
    for key, value in overrides:
        if not isinstance(key, str) or not KEY.match(key):
            raise fail(f"override {key!r} is not a valid variable name ([A-Z_][A-Z0-9_]*)")
        if not isinstance(value, str):
            raise fail(f"override {key} must be text")
        if key in found:
            raise fail(f"override {key} is set twice")
        found[key] = value
    return dict(sorted(found.items()))


def checksum(values: Mapping[str, str]) -> str:
    """sha256 hex of `[[key, value], ...]` sorted by key, as compact UTF-8 JSON."""
    canonical = json.dumps(sorted(values.items()), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def wire_pod(pod_spec: Obj, keys: Iterable[str], fail: Fail) -> None:
    """Every container and init container of a pod template reads the overrides."""
    wanted = set(keys)
    for field in ("initContainers", "containers"):
        containers = pod_spec.get(field)
        if containers is None:
            continue
        if not isinstance(containers, list):
            raise fail(f"{field} must be a list")
        for container in containers:
            if not isinstance(container, dict):
                raise fail(f"{field} entries must be mappings")
            _wire_container(container, wanted, fail)


def _wire_container(container: Obj, keys: set[str], fail: Fail) -> None:
    """`envFrom` gains the ConfigMap (last: a later source wins), and a literal `env` entry
    of an overridden name takes its value from the ConfigMap (`env` beats `envFrom`)."""
    sources = container.get("envFrom") or []
    if not isinstance(sources, list):
        raise fail("envFrom must be a list")
    if not any(_names_overrides(source) for source in sources):
        container["envFrom"] = [*sources, {"configMapRef": {"name": CONFIGMAP}}]
    env = container.get("env")
    if env is None:
        return
    if not isinstance(env, list):
        raise fail("env must be a list")
    container["env"] = [_from_overrides(entry, keys) for entry in env]


def _names_overrides(source: Any) -> bool:
    ref = source.get("configMapRef") if isinstance(source, dict) else None
    return isinstance(ref, dict) and ref.get("name") == CONFIGMAP


def _from_overrides(entry: Any, keys: set[str]) -> Any:
    """An entry with a literal `value` and an overridden name reads the override instead.

    Entries with `valueFrom` (a Secret, a field, a resource) are the template's wiring and
    are kept, so they win. `optional`: while an `unset` is being applied the key is already
    gone from the ConfigMap but the entry not yet restored; a pod restarting then must start.
    """
    if not isinstance(entry, dict) or entry.get("name") not in keys or "valueFrom" in entry:
        return entry
    name = entry["name"]
    ref = {"name": CONFIGMAP, "key": name, "optional": True}
    return {"name": name, "valueFrom": {"configMapKeyRef": ref}}
