"""RBAC for the fake API server, evaluated as Kubernetes' RBAC authorizer does, for one user.

`Rbac(kube, documents, user)` takes the RBAC objects a cluster admin applied (the
ClusterRoles, ClusterRoleBindings, Roles and RoleBindings of manifests/bot/) and, set as
`kube.authorize`, refuses every request the user may not make with the API server's 403
`Forbidden` Status. RoleBindings the user creates in the fake count from then on, so a
bot that binds a role to itself inside a namespace gains exactly that role's rights there.

Faithful where the bot can notice:
- rules match by API group, resource (or `resource/subresource`), verb and, when the rule
  lists `resourceNames`, the object's name (never for `list`, `watch` or `create`);
- a RoleBinding in a namespace grants its Role or ClusterRole in that namespace only;
- writing a RoleBinding needs the `bind` verb on its role (the escalation check; the
  real server also allows it when the user already holds every permission of the role,
  which this bot never relies on).
Not modelled: groups, aggregated ClusterRoles, non-resource URLs (discovery is allowed,
as `system:discovery` allows it for every authenticated user).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.fakes.kube import ApiError, ApiResource, FakeKube

Obj = dict[str, Any]
RBAC_GROUP = "rbac.authorization.k8s.io"
NO_NAME_VERBS = {"list", "watch", "create", "deletecollection"}


class Rbac:
    def __init__(self, kube: FakeKube, documents: list[Obj], user: str) -> None:
        self.kube = kube
        self.user = user  # "system:serviceaccount:NAMESPACE:NAME"
        self.documents = documents
        self.refused: list[str] = []  # the messages of every request refused, in order

    def __call__(
        self, res: ApiResource, sub: str, verb: str, namespace: str, name: str, body: bytes
    ) -> None:
        resource = f"{res.plural}/{sub}" if sub else res.plural
        if not self.allows(res.group, resource, verb, namespace, name):
            self._refuse(res, verb, namespace, name, self._cannot(res, resource, verb, namespace))
        if (
            res.group == RBAC_GROUP
            and res.plural == "rolebindings"
            and verb
            in {
                "create",
                "update",
                "patch",
            }
        ):
            self._check_bind(res, namespace, name, body)

    # evaluation

    def allows(self, group: str, resource: str, verb: str, namespace: str, name: str) -> bool:
        return any(_matches(rule, group, resource, verb, name) for rule in self._rules(namespace))

    def _rules(self, namespace: str) -> list[Obj]:
        rules: list[Obj] = []
        for binding in self._bindings("ClusterRoleBinding", ""):
            rules += self._role_rules(binding["roleRef"], "")
        if namespace:
            for binding in self._bindings("RoleBinding", namespace):
                rules += self._role_rules(binding["roleRef"], namespace)
        return rules

    def _bindings(self, kind: str, namespace: str) -> list[Obj]:
        found = [
            doc
            for doc in self.documents
            if doc["kind"] == kind and doc["metadata"].get("namespace", "") == namespace
        ]
        if kind == "RoleBinding":  # and those written through the API since
            found += [
                {**obj, "kind": kind}
                for obj in self.kube.objects("RoleBinding", namespace)
                if not any(obj["metadata"]["name"] == doc["metadata"]["name"] for doc in found)
            ]
        return [b for b in found if any(self._is_user(s, b) for s in b.get("subjects") or [])]

    def _is_user(self, subject: Obj, binding: Obj) -> bool:
        if subject.get("kind") == "User":
            return subject.get("name") == self.user
        if subject.get("kind") != "ServiceAccount":
            return False
        namespace = subject.get("namespace") or binding["metadata"].get("namespace", "")
        return f"system:serviceaccount:{namespace}:{subject.get('name')}" == self.user

    def _role_rules(self, ref: Obj, namespace: str) -> list[Obj]:
        kind, name = ref.get("kind"), ref.get("name")
        for doc in self.documents:
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                if kind == "Role" and doc["metadata"].get("namespace") != namespace:
                    continue
                return list(doc.get("rules") or [])
        return []

    # refusals

    def _check_bind(self, res: ApiResource, namespace: str, name: str, body: bytes) -> None:
        ref = (yaml.safe_load(body) or {}).get("roleRef") or {}
        plural = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
        if not self.allows(RBAC_GROUP, plural, "bind", namespace, str(ref.get("name", ""))):
            message = (
                f'{res.qualified} "{name}" is forbidden: user "{self.user}" (groups=["system:'
                f'serviceaccounts" "system:authenticated"]) is attempting to grant RBAC '
                f"permissions not currently held"
            )
            self._refuse(res, "bind", namespace, name, message)

    def _cannot(self, res: ApiResource, resource: str, verb: str, namespace: str) -> str:
        where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        return (
            f'User "{self.user}" cannot {verb} resource "{resource}" in API group '
            f'"{res.group}" {where}'
        )

    def _refuse(self, res: ApiResource, verb: str, namespace: str, name: str, reason: str) -> None:
        subject = f'{res.qualified} "{name}"' if name else res.qualified
        message = reason if reason.startswith(subject) else f"{subject} is forbidden: {reason}"
        self.refused.append(message)
        details: Obj = {"kind": res.plural}
        if name:
            details["name"] = name
        if res.group:
            details["group"] = res.group
        raise ApiError(403, "Forbidden", message, details)


def _matches(rule: Obj, group: str, resource: str, verb: str, name: str) -> bool:
    names = rule.get("resourceNames") or []
    return (
        group in (rule.get("apiGroups") or [])
        and resource in (rule.get("resources") or [])
        and verb in (rule.get("verbs") or [])
        and (not names or (verb not in NO_NAME_VERBS and name in names))
    )


def load(paths: list[Path]) -> list[Obj]:
    """The RBAC objects among the documents of `paths` (YAML files)."""
    kinds = {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    docs = [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]
    return [doc for doc in docs if doc["kind"] in kinds]
