"""A ValidatingAdmissionPolicy for the fake API server, its CEL evaluated with cel-python.

`Admission(kube, policy, user)`, chained after RBAC in `kube.authorize`, refuses a write
the policy denies, as the API server does after authorization: resource rules and
operations select the request, `matchConditions` must all hold, `variables` are
evaluated in order, and a false validation denies with its message (422 Invalid).

cel-python is not Kubernetes' CEL: it does not type-check against the OpenAPI schema, and
Kubernetes' extension libraries are absent. The shipped policy uses plain CEL only, which
both evaluate alike; a real API server still has the last word.
"""

from __future__ import annotations

from typing import Any

import celpy
import yaml
from celpy import celtypes

from tests.fakes.kube import ApiError, ApiResource, FakeKube

Obj = dict[str, Any]
OPERATIONS = {"create": "CREATE", "update": "UPDATE", "patch": "UPDATE", "delete": "DELETE"}


def evaluate(
    policy: Obj, request: Obj, obj: Obj | None, old: Obj | None, ns: Obj | None
) -> list[str]:
    """The messages of the validations that deny this request ([] when it is admitted)."""
    spec = policy["spec"]
    if not _selected(spec, request):
        return []
    env = celpy.Environment()
    activation: dict[str, Any] = {
        "request": celpy.json_to_cel(request),
        "object": celpy.json_to_cel(obj),
        "oldObject": celpy.json_to_cel(old),
        "namespaceObject": celpy.json_to_cel(ns),
    }

    def run(expression: str) -> Any:
        return env.program(env.compile(expression)).evaluate(activation)

    for condition in spec.get("matchConditions") or []:
        if not run(condition["expression"]):
            return []
    variables: dict[Any, Any] = {}
    activation["variables"] = celtypes.MapType(variables)
    for variable in spec.get("variables") or []:
        variables[celtypes.StringType(variable["name"])] = run(variable["expression"])
        activation["variables"] = celtypes.MapType(variables)
    return [
        str(validation.get("message") or validation["expression"])
        for validation in spec.get("validations") or []
        if not bool(run(validation["expression"]))
    ]


def _selected(spec: Obj, request: Obj) -> bool:
    resource, operation = request["resource"], request["operation"]
    for rule in spec["matchConstraints"]["resourceRules"]:
        if (
            resource["group"] in rule["apiGroups"]
            and resource["resource"] in rule["resources"]
            and operation in rule["operations"]
        ):
            return True
    return False


class Admission:
    def __init__(self, kube: FakeKube, policy: Obj, user: str) -> None:
        self.kube, self.policy, self.user = kube, policy, user
        self.denied: list[str] = []

    def __call__(
        self, res: ApiResource, sub: str, verb: str, namespace: str, name: str, body: bytes
    ) -> None:
        operation = OPERATIONS.get(verb)
        if operation is None or sub:
            return
        current = self.kube.get(res.kind, namespace, name) if name else None
        if verb == "patch" and current is None:
            operation = "CREATE"  # server-side apply of something new creates it
        new = None if operation == "DELETE" else (yaml.safe_load(body) or {})
        if new is not None and current is not None:  # what the object becomes, roughly
            new = {**current, **new, "metadata": {**current["metadata"], **new.get("metadata", {})}}
        request = {
            "operation": operation,
            "userInfo": {"username": self.user},
            "resource": {"group": res.group, "version": res.version, "resource": res.plural},
            "namespace": namespace,
            "name": name,
        }
        ns = self.kube.namespace(namespace) if namespace else None
        messages = evaluate(self.policy, request, new, current, ns)
        if messages:
            policy = self.policy["metadata"]["name"]
            message = (
                f'{res.qualified} "{name}" is forbidden: ValidatingAdmissionPolicy '
                f"'{policy}' with binding '{policy}' denied request: {messages[0]}"
            )
            self.denied.append(message)
            raise ApiError(422, "Invalid", message, {"name": name, "kind": res.plural})
