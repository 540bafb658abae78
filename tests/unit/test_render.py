"""Templates are parsed first, filled in string values only, and finished by the bot's rules."""

from __future__ import annotations

import re
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot import naming
from bot.errors import PermanentError
from bot.model import StagingKey, Target
from bot.provision.render import (
    ANNOTATION_CERT_MANAGER,
    ANNOTATION_REDEPLOY,
    JOB_TTL_SECONDS,
    namespace_manifest,
    render_manifests,
    variables,
)

SHA = "fedcba9876543210fedcba9876543210fedcba98"
PASSWORD = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
CONFIGMAP = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  note: ${branch}
"""
WEB = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, stagingbot.dev/sha: from-template}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "${image}"}]
"""
JOB = """
apiVersion: batch/v1
kind: Job
metadata:
  name: ${name}-migrate
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: "${image}"}]
"""
INGRESS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
spec:
  ingressClassName: ${ingress_class}
  tls:
    - {hosts: ["${hostname}"], secretName: "${tls_secret_name}"}
    - {hosts: [static.example.com], secretName: static-cert}
  rules: [{host: "${hostname}"}]
"""


def make_target(folder: Path, **changes: Any) -> Target:
    target = Target(
        key=StagingKey("gitlab", 42, 7),
        repo="group/app",
        number=7,
        sha=SHA,
        branch="main",
        namespace="staging-app-pr-7",
        name="app-pr-7",
        hostname="app-pr-7.staging.example.com",
        url="https://app-pr-7.staging.example.com/",
        image="registry.example.com/app:fedcba9",
        manifests=str(folder),
        instance="blue",
        db_password=PASSWORD,
    )
    return replace(target, **changes)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def render_one(folder: Path, text: str, **changes: Any) -> dict[str, Any]:
    write(folder, "only.yaml", text)
    (obj,) = render_manifests(make_target(folder, **changes))
    return obj


@pytest.mark.parametrize(
    "branch",
    [
        "x\n  evil: true",
        "{a: b}",
        "feature: yes",
        "'quoted\" both",
        "- item\n- other",
        "&anchor *alias !!python/object",
        "ünïcødé ☃ 🚀",
        "${sha}",
        "",
    ],
)
def test_branch_name_cannot_inject_yaml(tmp_path: Path, branch: str) -> None:
    obj = render_one(tmp_path, CONFIGMAP, branch=branch)
    assert obj["data"] == {"note": branch}
    assert set(obj) == {"apiVersion", "kind", "metadata", "data"}


def test_every_documented_variable_is_filled_as_a_string(tmp_path: Path) -> None:
    names = sorted(variables(make_target(tmp_path)))
    assert names == sorted(
        [
            "namespace",
            "name",
            "hostname",
            "url",
            "image",
            "sha",
            "short_sha",
            "branch",
            "number",
            "repo",
            "db_password",
            "instance",
            "ingress_class",
            "tls_secret_name",
        ]
    )
    data = "\n".join(f"  {name}: ${{{name}}}" for name in names)
    obj = render_one(
        tmp_path, f"apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\ndata:\n{data}"
    )
    assert obj["data"]["number"] == "7"
    assert obj["data"]["short_sha"] == "fedcba9"
    assert obj["data"]["instance"] == "blue"
    assert obj["data"]["db_password"] == PASSWORD
    assert all(isinstance(value, str) for value in obj["data"].values())


def test_placeholders_fill_inside_longer_strings_and_double_dollar_escapes(
    tmp_path: Path,
) -> None:
    obj = render_one(
        tmp_path,
        """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: c}
        data:
          both: "${name}.${namespace}.svc"
          shell: "echo $${HOME} $HOME $(VAR)"
          port: 8080
        """,
    )
    assert obj["data"] == {
        "both": "app-pr-7.staging-app-pr-7.svc",
        "shell": "echo ${HOME} $HOME $(VAR)",
        "port": 8080,
    }


def test_unknown_variable_is_a_permanent_error_naming_the_file(tmp_path: Path) -> None:
    write(tmp_path, "app.yaml", CONFIGMAP.replace("${branch}", "${foo}"))
    with pytest.raises(
        PermanentError, match=re.escape("invalid manifest app.yaml: unknown variable ${foo}")
    ):
        render_manifests(make_target(tmp_path))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("kind: ConfigMap\nmetadata: {name: [unclosed\n", "invalid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("kind: ConfigMap\nmetadata: {name: c}\n", "missing apiVersion"),
        ("apiVersion: v1\nmetadata: {name: c}\n", "missing kind"),
        ("apiVersion: v1\nkind: ConfigMap\n", "ConfigMap has no metadata.name"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '${ingress_class}'}\n", "empty"),
        ("apiVersion: v1\nkind: ${name}\nmetadata: {name: c}\n", "kind must be literal"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, labels: [a]}\n", "mapping"),
    ],
)
def test_invalid_template_is_a_permanent_error_naming_the_file(
    tmp_path: Path, text: str, reason: str
) -> None:
    write(tmp_path, "10-broken.yml", text)
    with pytest.raises(PermanentError, match=r"^invalid manifest 10-broken\.yml: ") as caught:
        render_manifests(make_target(tmp_path))
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    "kind", ["Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"]
)
def test_cluster_scoped_kinds_are_refused(tmp_path: Path, kind: str) -> None:
    write(tmp_path, "rbac.yaml", f"apiVersion: v1\nkind: {kind}\nmetadata: {{name: x}}\n")
    with pytest.raises(
        PermanentError, match=f"invalid manifest rbac.yaml: {kind} is cluster-scoped"
    ):
        render_manifests(make_target(tmp_path))


def test_error_messages_never_quote_the_database_password(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        CONFIGMAP
        + "---\n---\napiVersion: v1\nkind: Secret\n"
        + "metadata: {name: '${ingress_class}'}\nstringData: {p: '${db_password}'}\n",
    )
    with pytest.raises(PermanentError) as caught:
        render_manifests(make_target(tmp_path))
    assert caught.value.reason == (
        "invalid manifest a.yaml: Secret has an empty metadata.name (document 3)"
    )
    assert PASSWORD not in str(caught.value)


def test_objects_are_forced_into_the_staging_namespace(tmp_path: Path) -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: kube-system}\n"
    assert render_one(tmp_path, text)["metadata"]["namespace"] == "staging-app-pr-7"


def test_bot_labels_and_annotations_are_merged_with_the_templates(tmp_path: Path) -> None:
    metadata = render_one(tmp_path, WEB, branch="feature/ü x")["metadata"]
    assert metadata["labels"] == {
        "app": "web",
        naming.MANAGED_BY: "stagingbot",
        naming.LABEL_INSTANCE: "blue",
        naming.LABEL_HOST: "gitlab",
        naming.LABEL_REPO_ID: "42",
        naming.LABEL_NUMBER: "7",
        naming.LABEL_SHA: SHA,
    }
    assert metadata["annotations"] == {
        naming.ANNOTATION_KEY: "gitlab:42:7",
        naming.ANNOTATION_REPO: "group/app",
        naming.ANNOTATION_BRANCH: "feature/ü x",
    }


def test_redeploy_token_changes_the_pod_template_of_workloads(tmp_path: Path) -> None:
    obj = render_one(tmp_path, WEB, redeploy_token="2024-06-01T10:00:00")
    pod_metadata = obj["spec"]["template"]["metadata"]
    assert pod_metadata["annotations"] == {ANNOTATION_REDEPLOY: "2024-06-01T10:00:00"}
    assert pod_metadata["labels"] == {"app": "web"}  # selectors and pods stay untouched


def test_without_redeploy_token_the_pod_template_is_left_alone(tmp_path: Path) -> None:
    obj = render_one(tmp_path, WEB)
    assert obj["spec"]["template"]["metadata"] == {"labels": {"app": "web"}}


def test_jobs_are_named_per_sha_and_expire(tmp_path: Path) -> None:
    job = render_one(tmp_path, JOB, redeploy_token="r")
    assert job["metadata"]["name"] == "app-pr-7-migrate-fedcba9"
    assert job["spec"]["ttlSecondsAfterFinished"] == JOB_TTL_SECONDS
    assert "annotations" not in job["spec"]["template"].get(
        "metadata", {}
    )  # pod template immutable


def test_long_job_names_are_cut_to_a_dns_label(tmp_path: Path) -> None:
    job = render_one(tmp_path, JOB.replace("${name}-migrate", "a" * 50 + "-" + "b" * 20))
    assert job["metadata"]["name"] == "a" * 50 + "-" + "b" * 4 + "-fedcba9"
    assert len(job["metadata"]["name"]) == 63
    cut_at_dash = render_one(tmp_path, JOB.replace("${name}-migrate", "a" * 54 + "-" + "b" * 9))
    assert cut_at_dash["metadata"]["name"] == "a" * 54 + "-fedcba9"


def test_a_jobs_own_ttl_is_kept(tmp_path: Path) -> None:
    job = render_one(
        tmp_path,
        JOB.replace("spec:\n  template", "spec:\n  ttlSecondsAfterFinished: 60\n  template"),
    )
    assert job["spec"]["ttlSecondsAfterFinished"] == 60


def test_templates_render_in_file_name_order_skipping_other_files(tmp_path: Path) -> None:
    write(tmp_path, "b.yml", CONFIGMAP.replace("settings", "second"))
    write(tmp_path, "a.yaml", CONFIGMAP.replace("settings", "first") + "---\n---\n" + WEB)
    write(tmp_path, "README.md", "not: a template")
    write(tmp_path, "c.yaml.orig", "{broken")
    names = [obj["metadata"]["name"] for obj in render_manifests(make_target(tmp_path))]
    assert names == ["first", "web", "second"]


def test_missing_or_empty_template_folder_is_a_permanent_error(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="no \\*.yaml templates"):
        render_manifests(make_target(tmp_path))
    with pytest.raises(PermanentError, match="not a directory"):
        render_manifests(make_target(tmp_path / "missing"))


def test_ingress_without_class_or_tls_uses_cluster_defaults(tmp_path: Path) -> None:
    spec = render_one(tmp_path, INGRESS)["spec"]
    assert "ingressClassName" not in spec
    assert spec["tls"] == [{"hosts": ["static.example.com"], "secretName": "static-cert"}]


def test_ingress_with_wildcard_secret_uses_the_copied_secret(tmp_path: Path) -> None:
    obj = render_one(
        tmp_path,
        INGRESS,
        ingress_class="traefik",
        tls_secret="certs/wildcard",
        cert_manager_issuer="letsencrypt",
    )
    assert obj["spec"]["ingressClassName"] == "traefik"
    assert obj["spec"]["tls"][0] == {
        "hosts": ["app-pr-7.staging.example.com"],
        "secretName": "stagingbot-tls",
    }
    assert ANNOTATION_CERT_MANAGER not in obj["metadata"]["annotations"]


def test_ingress_with_cert_manager_asks_for_a_certificate(tmp_path: Path) -> None:
    obj = render_one(tmp_path, INGRESS, cert_manager_issuer="letsencrypt")
    assert obj["spec"]["tls"][0]["secretName"] == "app-pr-7-tls"
    assert obj["metadata"]["annotations"][ANNOTATION_CERT_MANAGER] == "letsencrypt"


def test_ingress_left_without_tls_drops_the_section(tmp_path: Path) -> None:
    text = INGRESS.replace("    - {hosts: [static.example.com], secretName: static-cert}\n", "")
    obj = render_one(tmp_path, text, cert_manager_issuer="")
    assert "tls" not in obj["spec"]
    assert ANNOTATION_CERT_MANAGER not in obj["metadata"]["annotations"]


def test_namespace_manifest_carries_the_staging_labels_annotations_and_url(tmp_path: Path) -> None:
    namespace = namespace_manifest(make_target(tmp_path, branch="x\ny: z"))
    assert namespace["apiVersion"] == "v1" and namespace["kind"] == "Namespace"
    metadata = namespace["metadata"]
    assert metadata["name"] == "staging-app-pr-7"
    assert metadata["labels"][naming.LABEL_INSTANCE] == "blue"
    assert metadata["labels"][naming.LABEL_SHA] == SHA
    assert metadata["annotations"][naming.ANNOTATION_URL] == "https://app-pr-7.staging.example.com/"
    assert metadata["annotations"][naming.ANNOTATION_BRANCH] == "x\ny: z"
    assert "namespace" not in metadata
