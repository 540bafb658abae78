"""manifests/bot/ deploys the bot itself: objects a Kubernetes 1.33 API server accepts,
least-privilege RBAC (no `*`, no cluster-wide Secrets or workload writes), two web and two
worker replicas with probes, resources and PodDisruptionBudgets, Redis with an append-only
file, and secrets only as references."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bot.config import load_config
from bot.provision import access, archive
from bot.provision.render import render_manifests
from tests.fakes.kube import RESOURCES
from tests.unit.test_manifests_validate import KUBERNETES_VERSION, realistic_target

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "manifests" / "bot"
WRITE = {"create", "update", "patch", "delete", "deletecollection"}
READ = {"get", "list", "watch"}
DANGEROUS = {"escalate", "impersonate", "*"}
# What a cluster-wide role must never write (and, for Secrets, never read either).
WORKLOADS = {
    ("", "pods"),
    ("apps", "deployments"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("apps", "replicasets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
}
SENSITIVE = {("", "secrets"), ("", "configmaps"), ("", "serviceaccounts")}
PLURAL = {(r.group, r.kind): r.plural for r in RESOURCES}
Obj = dict[str, Any]


def documents(*names: str) -> list[Obj]:
    paths = [FOLDER / name for name in names] if names else sorted(FOLDER.rglob("*.yaml"))
    return [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]


def one(kind: str, name: str) -> Obj:
    (found,) = [d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def rules_of(role: Obj) -> list[Obj]:
    return list(role.get("rules") or [])


def grants(role: Obj, group: str, plural: str, verb: str, name: str = "") -> bool:
    for rule in rules_of(role):
        names = rule.get("resourceNames") or []
        if (
            group in rule.get("apiGroups", [])
            and plural in rule.get("resources", [])
            and verb in rule.get("verbs", [])
            and (not names or name in names)
        ):
            return True
    return False


def cluster_wide_roles() -> list[Obj]:
    """The ClusterRoles a ClusterRoleBinding grants: rights in every namespace."""
    bound = {b["roleRef"]["name"] for b in documents() if b["kind"] == "ClusterRoleBinding"}
    return [d for d in documents() if d["kind"] == "ClusterRole" and d["metadata"]["name"] in bound]


def shipped_config() -> Obj:
    text = one("ConfigMap", "stagingbot")["data"]["config.toml"]
    return tomllib.loads(text)


def containers(deployment: Obj) -> list[Obj]:
    return list(deployment["spec"]["template"]["spec"]["containers"])


@pytest.mark.parametrize(
    "path", sorted(FOLDER.rglob("*.yaml")), ids=lambda p: str(p.relative_to(FOLDER))
)
def test_every_object_validates_against_kubernetes(path: Path) -> None:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", doc["metadata"]["name"])


def test_no_role_grants_a_wildcard_or_a_way_to_escalate() -> None:
    for role in (d for d in documents() if d["kind"] in ("ClusterRole", "Role")):
        for rule in rules_of(role):
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert "*" not in (rule.get(field) or []), (role["metadata"]["name"], rule)
            assert not DANGEROUS & set(rule["verbs"]), (role["metadata"]["name"], rule)


def test_cluster_wide_the_bot_writes_no_secrets_or_workloads_and_reads_no_secrets() -> None:
    roles = cluster_wide_roles()
    assert roles, "no ClusterRoleBinding in manifests/bot"
    for role in roles:
        for group, plural in WORKLOADS | SENSITIVE:
            for verb in WRITE:
                assert not grants(role, group, plural, verb), (role["metadata"]["name"], plural)
        for verb in READ:
            assert not grants(role, "", "secrets", verb), role["metadata"]["name"]


def test_cluster_wide_it_manages_namespaces_and_reads_what_the_health_check_reads() -> None:
    (role,) = cluster_wide_roles()
    for verb in ("create", "get", "list", "watch", "patch", "delete"):
        assert grants(role, "", "namespaces", verb)
    for group, plural in (("apps", "deployments"), ("apps", "statefulsets"), ("", "pods")):
        assert all(grants(role, group, plural, verb) for verb in READ)


def test_it_may_bind_exactly_the_staging_role_by_name() -> None:
    (role,) = cluster_wide_roles()
    configured = shipped_config()["kubernetes"]["staging_role"]
    binds = [r for r in rules_of(role) if "bind" in r["verbs"]]
    assert binds == [
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterroles"],
            "verbs": ["bind"],
            "resourceNames": [configured],
        }
    ]
    assert grants(role, "rbac.authorization.k8s.io", "rolebindings", "patch")
    staging_role = one("ClusterRole", configured)
    # Never bound by the manifests themselves: only the bot binds it, per staging namespace.
    assert configured not in {b["roleRef"]["name"] for b in documents() if "roleRef" in b}
    # It cannot hand out more than itself: no RBAC kinds in the staging role.
    assert not any("rbac.authorization.k8s.io" in r["apiGroups"] for r in rules_of(staging_role))


def test_the_staging_role_covers_every_kind_the_templates_and_the_bot_write() -> None:
    staging_role = one("ClusterRole", shipped_config()["kubernetes"]["staging_role"])
    target = realistic_target()
    written = {(obj["apiVersion"], obj["kind"]) for obj in render_manifests(target)}
    written |= {("v1", "ConfigMap"), ("v1", "Secret")}  # overrides, secret overrides, TLS copy
    for api_version, kind in sorted(written):
        group = api_version.rpartition("/")[0]
        for verb in ("create", "get", "list", "patch", "delete"):
            assert grants(staging_role, group, PLURAL[(group, kind)], verb), (kind, verb)
    for api_version, kind in (*archive.ARCHIVED_KINDS, archive.JOB):
        group = api_version.rpartition("/")[0]
        for verb in ("get", "list", "patch"):
            assert grants(staging_role, group, PLURAL[(group, kind)], verb), (kind, verb)


def test_the_shipped_config_is_valid_and_names_the_worker_service_account() -> None:
    environ = {
        "STAGINGBOT_GITHUB_WEBHOOK_SECRET": "from-the-secret",
        "STAGINGBOT_STAGING_SECRET_KEY": "from-the-secret-too",
        "STAGINGBOT_GITHUB_TOKEN": "ghp-from-the-secret",
    }
    path = FOLDER / "config.toml"
    try:
        path.write_text(one("ConfigMap", "stagingbot")["data"]["config.toml"])
        config = load_config(str(path), environ)
    finally:
        path.unlink()
    worker = one("Deployment", "stagingbot-worker")
    account = worker["spec"]["template"]["spec"]["serviceAccountName"]
    binding = access.from_config(config.kubernetes.staging_role, config.kubernetes.service_account)
    assert binding == access.Access("stagingbot-staging", "stagingbot", account)
    assert one("ServiceAccount", account)["metadata"]["namespace"] == "stagingbot"
    assert config.metrics.worker_port == worker_port(worker)


def worker_port(worker: Obj) -> int:
    (container,) = containers(worker)
    (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == "metrics"]
    return int(port)


def test_no_secret_value_is_in_the_manifests_only_references() -> None:
    assert not [d for d in documents() if d["kind"] == "Secret"]
    config = shipped_config()
    for section in config.values():
        if isinstance(section, dict):
            assert not {"webhook_secret", "token", "secret_key", "password"} & set(section)
    for name in ("stagingbot-web", "stagingbot-worker"):
        for container in containers(one("Deployment", name)):
            for variable in container["env"]:
                secretish = re.search(r"SECRET|TOKEN|PASSWORD|REDIS_URL", variable["name"])
                if secretish:
                    assert "value" not in variable, variable["name"]
                    assert variable["valueFrom"]["secretKeyRef"]["name"] == "stagingbot"


@pytest.mark.parametrize("component", ["web", "worker"])
def test_web_and_worker_run_two_hardened_replicas_with_probes_and_a_budget(component: str) -> None:
    deployment = one("Deployment", f"stagingbot-{component}")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = containers(deployment)
    assert container["args"] == [component]
    assert container["livenessProbe"] and container["readinessProbe"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "/tmp" in [m["mountPath"] for m in container["volumeMounts"]]  # discovery cache
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    budget = one("PodDisruptionBudget", f"stagingbot-{component}")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_the_web_pods_have_no_kubernetes_token_and_the_worker_has_its_own_account() -> None:
    web = one("Deployment", "stagingbot-web")["spec"]["template"]["spec"]
    assert web["automountServiceAccountToken"] is False
    assert web["serviceAccountName"] != "stagingbot"
    web_probes = containers(one("Deployment", "stagingbot-web"))[0]
    assert web_probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web_probes["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_the_ingress_serves_webhooks_dashboard_and_api_but_not_metrics() -> None:
    ingress = one("Ingress", "stagingbot-web")
    service = one("Service", "stagingbot-web")
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    public = {p["path"] for p in paths}
    assert {"/webhooks", "/api", "/", "/stagings", "/login"} <= public
    assert not {"/metrics", "/healthz", "/readyz"} & public
    assert all(not (p["path"] == "/" and p["pathType"] == "Prefix") for p in paths)
    for path in paths:
        assert path["backend"]["service"]["name"] == service["metadata"]["name"]
    web_labels = one("Deployment", "stagingbot-web")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= web_labels.items()


def test_redis_keeps_an_append_only_file_on_a_persistent_volume() -> None:
    redis = one("StatefulSet", "redis")
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == args[args.index("--dir") + 1]
    url = shipped_config()["redis"]["url"]
    assert url.startswith(f"redis://{redis['spec']['serviceName']}.stagingbot.svc:")
