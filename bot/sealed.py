"""Secret override values at rest: sealed for Redis, fingerprinted, opened for the worker (pure).

A value set for a key in `commands.secret_keys` (only through the API, the dashboard or
the CLI: a comment is public) is never stored in clear. Redis keeps, per key, a keyed
fingerprint (to tell a change, in the applied signature and the pods' checksum
annotation) and the value sealed with Fernet (AES-128-CBC + HMAC-SHA256) under a key
derived from `staging.secret_key`, which the web app and the worker share: the web app
never calls the cluster, and the `command` provisioner has no Secret to read a value back
from. The worker opens the values only to build the staging's Kubernetes Secret (or the
programs' environment). Changing `staging.secret_key` makes sealed values unreadable:
the staging fails saying which keys to set again, never showing a value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping

from cryptography.fernet import Fernet, InvalidToken

FINGERPRINT_CHARS = 32  # 128 bits of HMAC-SHA256, hex
SET_AGAIN = (
    "secret override {keys} cannot be read: staging.secret_key changed since it was set; "
    "set it again through the API, the dashboard or the CLI"
)


class Unreadable(Exception):
    """Sealed values that the current `staging.secret_key` cannot open (keys only)."""

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys = tuple(sorted(keys))
        super().__init__(SET_AGAIN.format(keys=", ".join(self.keys)))


def _derived(secret_key: str, purpose: bytes) -> bytes:
    if not secret_key:
        raise ValueError("staging.secret_key is not set")  # the config refuses to start so
    return hmac.new(secret_key.encode(), purpose, hashlib.sha256).digest()


def _fernet(secret_key: str) -> Fernet:
    key = _derived(secret_key, b"stagingbot secret overrides: sealing")
    return Fernet(base64.urlsafe_b64encode(key))


def fingerprint(secret_key: str, key: str, value: str) -> str:
    """A keyed digest of `KEY=value`: equal values give equal prints, and without
    `staging.secret_key` nothing can be guessed from one (unlike a plain hash)."""
    mac = hmac.new(
        _derived(secret_key, b"stagingbot secret overrides: fingerprint"),
        f"{key}\0{value}".encode(),
        hashlib.sha256,
    )
    return mac.hexdigest()[:FINGERPRINT_CHARS]


def seal(secret_key: str, key: str, value: str) -> dict[str, str]:
    """What Redis keeps of one secret value: `{"fp": fingerprint, "sealed": token}`."""
    token = _fernet(secret_key).encrypt(value.encode("utf-8")).decode("ascii")
    return {"fp": fingerprint(secret_key, key, value), "sealed": token}


def parse(text: str) -> dict[str, dict[str, str]]:
    """The stored field (JSON `KEY -> {"fp", "sealed"}`); anything unreadable is dropped."""
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(key): {"fp": str(entry.get("fp", "")), "sealed": str(entry.get("sealed", ""))}
        for key, entry in data.items()
        if isinstance(entry, dict)
    }


def encode(entries: Mapping[str, Mapping[str, str]]) -> str:
    return json.dumps({key: dict(entries[key]) for key in sorted(entries)}, sort_keys=True)


def fingerprints(entries: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    return {key: entry.get("fp", "") for key, entry in sorted(entries.items())}


def open_all(secret_key: str, entries: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Every value, opened; raises `Unreadable` naming the keys that cannot be."""
    if not entries:
        return {}
    fernet = _fernet(secret_key)
    values: dict[str, str] = {}
    unreadable = []
    for key, entry in sorted(entries.items()):
        try:
            values[key] = fernet.decrypt(entry.get("sealed", "").encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError, ValueError):
            unreadable.append(key)
    if unreadable:
        raise Unreadable(unreadable)
    return values


def checksum(secret_key: str, values: Mapping[str, str]) -> str:
    """One keyed digest over every secret value (for the pods' checksum annotation): it
    changes when a value does, and tells nothing about them."""
    prints = [[key, fingerprint(secret_key, key, values[key])] for key in sorted(values)]
    return hashlib.sha256(json.dumps(prints).encode()).hexdigest() if prints else ""
