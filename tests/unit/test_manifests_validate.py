"""The shipped staging templates render to objects a Kubernetes 1.33 API server accepts."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from bot import naming
from bot.model import StagingKey, Target
from bot.provision.render import (
    ANNOTATION_CERT_MANAGER,
    ANNOTATION_OVERRIDES_CHECKSUM,
    ANNOTATION_REDEPLOY,
    OVERRIDES_CONFIGMAP,
    TLS_SECRET_NAME,
    namespace_manifest,
    render_manifests,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "manifests" / "staging"
# kubernetes-validate bundles the 1.33 schemas; they check types and unknown fields
# (strict) but not label syntax or names, so those are checked below as the API server would.
KUBERNETES_VERSION = "1.33"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
SHA = "0123456789abcdef0123456789abcdef01234567"
PASSWORD = "5f2b8c1e9d7a4b3c6e0f1a2b3c4d5e6f"
NASTY_BRANCH = "x\n  evil: true\n- {a: b}\n\"quoted\" 'single' key: value ${sha} $${x} ✓ ünï\t#"
NASTY_VALUE = '$(rm -rf /)"; echo: {x}'
OVERRIDES = (
    ("DATABASE_URL", "postgresql://elsewhere"),
    ("FEATURE_X", NASTY_VALUE),
    ("STAGING_BRANCH", "${branch} $${x}"),
)


def realistic_target() -> Target:
    return Target(
        key=StagingKey("github", 1296269, 12),
        repo="octo-org/shop",
        number=12,
        sha=SHA,
        branch="feature/checkout-v2",
        namespace="staging-shop-pr-12",
        name="shop-pr-12",
        hostname="shop-pr-12.staging.example.com",
        url="https://shop-pr-12.staging.example.com/",
        image=f"registry.example.com/shop:{SHA}",
        manifests=str(SHIPPED),
        instance="Default",
        db_password=PASSWORD,
        ingress_class="nginx",
        cert_manager_issuer="letsencrypt",
        redeploy_token="1718000000",
    )


TARGETS = {
    "realistic": realistic_target(),
    "nasty-branch": replace(realistic_target(), branch=NASTY_BRANCH),
    "no-class-no-tls": replace(realistic_target(), ingress_class="", cert_manager_issuer=""),
    "wildcard-tls": replace(realistic_target(), tls_secret="cert-manager/wildcard-staging"),
    "no-redeploy-token": replace(realistic_target(), redeploy_token=""),
    "overrides": replace(realistic_target(), overrides=OVERRIDES),
    "secret-overrides": replace(
        realistic_target(),
        overrides=OVERRIDES[:1],
        secret_overrides=(("STRIPE_KEY", "sk_live_ünï\n$(x)"), ("TOKEN", "t")),
        secret_checksum="0" * 64,
    ),
}


def rendered(target: Target) -> list[dict[str, Any]]:
    return [*render_manifests(target), namespace_manifest(target)]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


@pytest.mark.parametrize("target", TARGETS.values(), ids=TARGETS.keys())
def test_every_rendered_object_validates_against_kubernetes(target: Target) -> None:
    for obj in rendered(target):
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("target", TARGETS.values(), ids=TARGETS.keys())
def test_names_labels_and_hosts_are_what_the_api_server_accepts(target: Target) -> None:
    for obj in rendered(target):
        metadata = obj["metadata"]
        assert DNS_SUBDOMAIN.match(metadata["name"]) and len(metadata["name"]) <= 253
        if obj["kind"] in {"Service", "Namespace"}:
            assert DNS_LABEL.match(metadata["name"]) and len(metadata["name"]) <= 63
        for value in metadata["labels"].values():
            assert isinstance(value, str) and LABEL_VALUE.match(value) and len(value) <= 63
        assert all(isinstance(v, str) for v in metadata.get("annotations", {}).values())
    for ingress in by_kind(rendered(target), "Ingress"):
        assert [rule["host"] for rule in ingress["spec"]["rules"]] == [target.hostname]


@pytest.mark.parametrize("target", TARGETS.values(), ids=TARGETS.keys())
def test_every_object_carries_the_staging_labels_and_annotations(target: Target) -> None:
    expected = {
        **naming.selector_labels(target.key, target.instance),
        naming.LABEL_SHA: target.sha,
    }
    for obj in rendered(target):
        metadata = obj["metadata"]
        assert expected.items() <= metadata["labels"].items()
        assert metadata["annotations"][naming.ANNOTATION_BRANCH] == target.branch
        assert metadata["annotations"][naming.ANNOTATION_KEY] == "github:1296269:12"
        if obj["kind"] != "Namespace":
            assert metadata["namespace"] == target.namespace


def test_shipped_templates_are_a_web_app_with_its_own_database_and_policy() -> None:
    objects = render_manifests(realistic_target())
    kinds = sorted(f"{obj['kind']}/{obj['metadata']['name']}" for obj in objects)
    assert kinds == [
        "ConfigMap/stagingbot-overrides",
        "Deployment/web",
        "Ingress/web",
        "LimitRange/stagingbot-defaults",
        "NetworkPolicy/stagingbot-isolation",
        "ResourceQuota/stagingbot-quota",
        "Secret/db",
        "Service/db",
        "Service/web",
        "StatefulSet/db",
    ]


def test_the_database_password_appears_only_in_the_secret() -> None:
    for obj in rendered(realistic_target()):
        text = json.dumps(obj)
        if obj["kind"] == "Secret":
            assert PASSWORD in text
        else:
            assert PASSWORD not in text, obj["kind"]


def test_web_reads_the_database_url_from_the_secret_and_optional_overrides() -> None:
    (deployment,) = by_kind(render_manifests(realistic_target()), "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"registry.example.com/shop:{SHA}"
    env = {item["name"]: item for item in container["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "db", "key": "database-url"}
    assert env["STAGING_NUMBER"]["value"] == "12"
    assert container["envFrom"] == [{"configMapRef": {"name": OVERRIDES_CONFIGMAP}}]
    assert container["readinessProbe"] and container["resources"]["limits"]


def test_overrides_reach_every_container_but_never_the_database_url() -> None:
    objects = render_manifests(TARGETS["overrides"])
    (configmap,) = by_kind(objects, "ConfigMap")
    assert configmap["metadata"]["name"] == OVERRIDES_CONFIGMAP
    assert configmap["data"] == dict(OVERRIDES)  # verbatim, `${...}` not filled in
    for workload in by_kind(objects, "Deployment") + by_kind(objects, "StatefulSet"):
        template = workload["spec"]["template"]
        assert len(template["metadata"]["annotations"][ANNOTATION_OVERRIDES_CHECKSUM]) == 64
        for container in template["spec"]["containers"]:
            assert {"configMapRef": {"name": OVERRIDES_CONFIGMAP}} in container["envFrom"]
    (web,) = by_kind(objects, "Deployment")
    env = {e["name"]: e for e in web["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DATABASE_URL"]["valueFrom"] == {
        "secretKeyRef": {"name": "db", "key": "database-url"}
    }
    assert env["STAGING_BRANCH"]["valueFrom"]["configMapKeyRef"]["key"] == "STAGING_BRANCH"
    assert NASTY_VALUE not in json.dumps(web)  # only in the ConfigMap, as data


def test_database_is_postgres_with_a_volume_and_a_readiness_check() -> None:
    objects = render_manifests(realistic_target())
    (statefulset,) = by_kind(objects, "StatefulSet")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "postgres:16-alpine"
    assert container["readinessProbe"]["exec"]["command"][0] == "pg_isready"
    assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    headless = [s for s in by_kind(objects, "Service") if s["metadata"]["name"] == "db"]
    assert headless[0]["spec"]["clusterIP"] == "None"
    (secret,) = by_kind(objects, "Secret")
    assert secret["stringData"]["database-url"] == f"postgresql://app:{PASSWORD}@db:5432/app"


def test_network_policy_admits_only_the_namespace_and_the_ingress_controller() -> None:
    (policy,) = by_kind(render_manifests(realistic_target()), "NetworkPolicy")
    assert policy["spec"]["podSelector"] == {}
    assert policy["spec"]["ingress"] == [
        {
            "from": [
                {"podSelector": {}},
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
                    }
                },
            ]
        }
    ]


def test_nasty_branch_reaches_only_string_values_verbatim() -> None:
    nasty = render_manifests(TARGETS["nasty-branch"])
    plain = render_manifests(TARGETS["realistic"])
    assert len(nasty) == len(plain)
    for bad, good in zip(nasty, plain, strict=True):
        assert _shape(bad) == _shape(good)
    (deployment,) = by_kind(nasty, "Deployment")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["STAGING_BRANCH"]["value"] == NASTY_BRANCH


def _shape(node: Any) -> Any:
    """The tree's keys and structure, without the string values."""
    if isinstance(node, dict):
        return {key: _shape(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_shape(item) for item in node]
    return type(node).__name__


@pytest.mark.parametrize(
    ("name", "class_name", "secret_name", "issuer"),
    [
        ("realistic", "nginx", "shop-pr-12-tls", "letsencrypt"),
        ("wildcard-tls", "nginx", TLS_SECRET_NAME, None),
        ("no-class-no-tls", None, None, None),
    ],
)
def test_ingress_follows_the_operators_class_and_tls_choice(
    name: str, class_name: str | None, secret_name: str | None, issuer: str | None
) -> None:
    (ingress,) = by_kind(render_manifests(TARGETS[name]), "Ingress")
    assert ingress["spec"].get("ingressClassName") == class_name
    tls = ingress["spec"].get("tls")
    assert (tls[0]["secretName"] if tls else None) == secret_name
    if tls:
        assert tls[0]["hosts"] == ["shop-pr-12.staging.example.com"]
    assert ingress["metadata"]["annotations"].get(ANNOTATION_CERT_MANAGER) == issuer


def test_redeploy_token_restarts_web_and_database_pods() -> None:
    objects = render_manifests(realistic_target())
    for workload in by_kind(objects, "Deployment") + by_kind(objects, "StatefulSet"):
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        assert annotations[ANNOTATION_REDEPLOY] == "1718000000"
