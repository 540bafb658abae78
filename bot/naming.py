"""Names a user's input reaches: DNS-1123 slugs, namespaces, hosts, labels, derived passwords."""

from __future__ import annotations

import hashlib
import hmac
import re

from bot.model import StagingKey

DNS_LABEL_MAX = 63
_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_DASHES = re.compile(r"-{2,}")

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "stagingbot"
LABEL_INSTANCE = "stagingbot.dev/instance"
LABEL_HOST = "stagingbot.dev/host"
LABEL_REPO_ID = "stagingbot.dev/repo-id"
LABEL_NUMBER = "stagingbot.dev/number"
LABEL_SHA = "stagingbot.dev/sha"
ANNOTATION_KEY = "stagingbot.dev/key"
ANNOTATION_REPO = "stagingbot.dev/repo"
ANNOTATION_BRANCH = "stagingbot.dev/branch"
ANNOTATION_URL = "stagingbot.dev/url"


def _short_hash(text: str, length: int = 6) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def slugify(text: str, max_length: int = DNS_LABEL_MAX) -> str:
    """A DNS-1123 label from any text: lowercase, [a-z0-9-], no edge dashes, ≤ max_length.

    When the text had to be cut, or had nothing usable, a short hash of the original
    keeps different inputs apart.
    """
    slug = _DASHES.sub("-", _NOT_DNS.sub("-", text.lower())).strip("-")
    if slug and len(slug) <= max_length:
        return slug
    suffix = _short_hash(text)
    head = slug[: max_length - len(suffix) - 1].rstrip("-")
    return f"{head}-{suffix}" if head else f"x-{suffix}"


REQUEST_WORDS = {"github": "pr", "gitlab": "mr"}


def staging_name(key: StagingKey, repo_full_name: str, max_length: int = 40) -> str:
    """The staging's short name, e.g. `hello-world-pr-2-5e1c`.

    Repository name and request number for people; `pr`/`mr` and a short hash of host and
    repository id so that `github:acme/app#12`, `gitlab:acme/app!12` and `other/app#12`
    never share a namespace or a host name. Kept to 40 characters so a prefix and object
    suffixes still fit one DNS label.
    """
    repo_name = repo_full_name.rsplit("/", 1)[-1]
    word = REQUEST_WORDS.get(key.host, key.host)
    tail = f"-{word}-{key.number}-{_short_hash(f'{key.host}:{key.repo_id}', 4)}"
    head = slugify(repo_name, max_length - len(tail))
    return f"{head}{tail}"


def namespace_name(prefix: str, key: StagingKey, repo_full_name: str) -> str:
    """The staging's namespace, e.g. `staging-hello-world-pr-2-5e1c`, ≤ 63 characters."""
    return slugify(f"{prefix}{staging_name(key, repo_full_name)}")


def hostname(key: StagingKey, repo_full_name: str, base_domain: str) -> str:
    """The staging's host name, e.g. `hello-world-pr-2-5e1c.staging.example.com`."""
    return f"{staging_name(key, repo_full_name)}.{base_domain.strip('.').lower()}"


def selector_labels(key: StagingKey, instance: str) -> dict[str, str]:
    """Labels that identify one staging of one bot instance (used in label selectors)."""
    return {
        MANAGED_BY: MANAGED_BY_VALUE,
        LABEL_INSTANCE: slugify(instance),
        LABEL_HOST: key.host,
        LABEL_REPO_ID: str(key.repo_id),
        LABEL_NUMBER: str(key.number),
    }


def instance_selector(instance: str) -> str:
    """The label selector that finds every staging of this bot instance in one list call."""
    return f"{MANAGED_BY}={MANAGED_BY_VALUE},{LABEL_INSTANCE}={slugify(instance)}"


def derive_secret(secret_key: str, key: StagingKey, purpose: str, length: int = 32) -> str:
    """A per-staging secret (e.g. its database password), stable across updates.

    HMAC of the staging's identity under `staging.secret_key`: no staging can compute
    another's without the key.
    """
    message = f"{purpose}\x00{key}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()[:length]
