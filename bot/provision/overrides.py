"""Per-staging environment overrides (`/staging set KEY=VALUE`): data, checksum, wiring (pure).

The overrides live in one bot-owned ConfigMap in the staging's namespace, read by every
container with `envFrom`. Values arrive as data: Kubernetes expands `$(VAR)` only in
`env[].value`, `command` and `args`, never in what `envFrom` or `valueFrom` bring in, and
the renderer adds the ConfigMap after the templates are filled in, so `${...}` stays text.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

Obj = dict[str, Any]
Fail = Callable[[str], Exception]

CONFIGMAP = "stagingbot-overrides"
# Secret overrides (set only through the API, dashboard or CLI: a comment is public) live in
# a bot-owned Secret beside CONFIGMAP, present while there are any, listed in `envFrom`
# after it, its keys swapped into `env` with `secretKeyRef`; their keyed digest (never the
# values, a plain hash could be guessed) goes into ANNOTATION_CHECKSUM, so a change
# restarts the pods.
SECRET = "stagingbot-secret-overrides"  # noqa: S105 - an object name
ANNOTATION_CHECKSUM = "stagingbot.dev/overrides-checksum"
KEY = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class Wiring(NamedTuple):
    """What the pods of a staging read: keys in the ConfigMap, keys in the Secret, and the
    checksum annotation that restarts them when either changes."""

    keys: frozenset[str]
    secret_keys: frozenset[str]
    checksum: str


def wiring(settings: Mapping[str, str], secrets: Mapping[str, str], secret_checksum: str) -> Wiring:
    return Wiring(frozenset(settings), frozenset(secrets), checksum(settings, secret_checksum))


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


def checksum(values: Mapping[str, str], secret_checksum: str = "") -> str:
    """sha256 hex of `[[key, value], ...]` sorted by key, as compact UTF-8 JSON; with secret
    overrides, their keyed digest (`bot.sealed.checksum`) is one more pair at the end."""
    pairs: list[Any] = sorted(values.items())
    if secret_checksum:
        pairs.append(["\0secret", secret_checksum])
    canonical = json.dumps(pairs, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def secret_data(secrets: Mapping[str, str]) -> dict[str, str]:
    """The Secret's `data`: base64 of each UTF-8 value, as the API server stores it."""
    return {
        key: base64.b64encode(value.encode("utf-8")).decode("ascii")
        for key, value in secrets.items()
    }


def wire_pod(pod_spec: Obj, wired: Wiring, fail: Fail) -> None:
    """Every container and init container of a pod template reads the overrides."""
    for field in ("initContainers", "containers"):
        containers = pod_spec.get(field)
        if containers is None:
            continue
        if not isinstance(containers, list):
            raise fail(f"{field} must be a list")
        for container in containers:
            if not isinstance(container, dict):
                raise fail(f"{field} entries must be mappings")
            _wire_container(container, wired, fail)


def _wire_container(container: Obj, wired: Wiring, fail: Fail) -> None:
    """`envFrom` gains the ConfigMap (last: a later source wins) and, when there are secret
    overrides, the Secret after it; a literal `env` entry of an overridden name takes its
    value from there (`env` beats `envFrom`)."""
    sources = container.get("envFrom") or []
    if not isinstance(sources, list):
        raise fail("envFrom must be a list")
    if not any(_names(source, "configMapRef", CONFIGMAP) for source in sources):
        sources = [*sources, {"configMapRef": {"name": CONFIGMAP}}]
    if wired.secret_keys and not any(_names(source, "secretRef", SECRET) for source in sources):
        sources = [*sources, {"secretRef": {"name": SECRET, "optional": True}}]
    container["envFrom"] = sources
    env = container.get("env")
    if env is None:
        return
    if not isinstance(env, list):
        raise fail("env must be a list")
    container["env"] = [_from_overrides(entry, wired) for entry in env]


def _names(source: Any, field: str, name: str) -> bool:
    ref = source.get(field) if isinstance(source, dict) else None
    return isinstance(ref, dict) and ref.get("name") == name


def _from_overrides(entry: Any, wired: Wiring) -> Any:
    """An entry with a literal `value` and an overridden name reads the override instead.

    Entries with `valueFrom` (a Secret, a field, a resource) are the template's wiring and
    are kept, so they win. `optional`: while an `unset` is being applied the key is already
    gone from the ConfigMap but the entry not yet restored; a pod restarting then must start.
    """
    if not isinstance(entry, dict) or "valueFrom" in entry:
        return entry
    name = entry.get("name")
    if name in wired.secret_keys:
        ref = {"name": SECRET, "key": name, "optional": True}
        return {"name": name, "valueFrom": {"secretKeyRef": ref}}
    if name in wired.keys:
        ref = {"name": CONFIGMAP, "key": name, "optional": True}
        return {"name": name, "valueFrom": {"configMapKeyRef": ref}}
    return entry
