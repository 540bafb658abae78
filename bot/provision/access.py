"""The bot's write access inside each staging namespace: one RoleBinding it applies (pure).

Least privilege (manifests/bot/rbac.yaml): cluster-wide, the bot may only manage
namespaces and read workloads and pods. It writes a staging's objects through one
ClusterRole (`kubernetes.staging_role`, shipped as `stagingbot-staging`), which it binds
to its own service account inside each namespace it creates, right after the namespace
and before anything else. The API server lets it create that binding because it holds
`bind` on that one ClusterRole, by name; so it has no cluster-wide write on Secrets or
workloads, and none at all outside its stagings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot import naming

ROLE_BINDING = "stagingbot-access"
_DNS_LABEL_MAX = 63


@dataclass(frozen=True)
class Access:
    """Bind ClusterRole `role` to service account `namespace/name` in every staging."""

    role: str
    service_account_namespace: str
    service_account: str


def from_config(staging_role: str, service_account: str) -> Access | None:
    """None when no role is configured (the bot's own cluster-wide rights must suffice)."""
    if not staging_role:
        return None
    namespace, _, name = service_account.partition("/")
    return Access(staging_role, namespace, name)


def problems(staging_role: str, service_account: str) -> list[str]:
    """What is wrong with `kubernetes.staging_role` / `kubernetes.service_account`."""
    if not staging_role:
        return []
    if not _dns_subdomain(staging_role):
        return [f"kubernetes.staging_role: {staging_role!r} is not a ClusterRole name"]
    namespace, slash, name = service_account.partition("/")
    if not service_account:
        return [
            "kubernetes.service_account: required when kubernetes.staging_role is set: "
            'the bot\'s own service account as "namespace/name", e.g. "stagingbot/stagingbot"'
        ]
    if not slash or not _dns_label(namespace) or not _dns_subdomain(name):
        return [
            f'kubernetes.service_account: expected "namespace/name", e.g. '
            f'"stagingbot/stagingbot", got {service_account!r}'
        ]
    return []


def role_binding(access: Access, namespace: str, instance: str) -> dict[str, Any]:
    """The RoleBinding granting the bot `access.role` in the staging's `namespace`.

    Labelled with the bot's instance but not with a staging's identity, so pruning (which
    selects by the staging's labels) never removes it; it goes with the namespace.
    """
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": ROLE_BINDING,
            "namespace": namespace,
            "labels": {
                naming.MANAGED_BY: naming.MANAGED_BY_VALUE,
                naming.LABEL_INSTANCE: naming.slugify(instance),
            },
        },
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": access.role,
        },
        "subjects": [
            {
                "kind": "ServiceAccount",
                "name": access.service_account,
                "namespace": access.service_account_namespace,
            }
        ],
    }


def _dns_label(text: str) -> bool:
    return 0 < len(text) <= _DNS_LABEL_MAX and naming.slugify(text) == text


def _dns_subdomain(text: str) -> bool:
    parts = text.split(".")
    return len(text) <= 253 and all(_dns_label(part) for part in parts)
