"""Templates are parsed first, filled in string values only, and finished by the bot's rules."""

from __future__ import annotations

import base64
import hashlib
import json
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
    ANNOTATION_OVERRIDES_CHECKSUM,
    ANNOTATION_REDEPLOY,
    JOB_TTL_SECONDS,
    OVERRIDES_CONFIGMAP,
    OVERRIDES_SECRET,
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
    """The one object the template renders to (beside the bot's overrides ConfigMap)."""
    write(folder, "only.yaml", text)
    obj, overrides = render_manifests(make_target(folder, **changes))
    assert overrides["metadata"]["name"] == OVERRIDES_CONFIGMAP
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
    assert pod_metadata["annotations"][ANNOTATION_REDEPLOY] == "2024-06-01T10:00:00"
    assert pod_metadata["labels"] == {"app": "web"}  # selectors and pods stay untouched


def test_without_redeploy_token_the_pod_template_gets_only_the_overrides_checksum(
    tmp_path: Path,
) -> None:
    obj = render_one(tmp_path, WEB)
    assert obj["spec"]["template"]["metadata"] == {
        "labels": {"app": "web"},
        "annotations": {ANNOTATION_OVERRIDES_CHECKSUM: hashlib.sha256(b"[]").hexdigest()},
    }


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
    assert names == ["first", "web", "second", OVERRIDES_CONFIGMAP]


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


# Per-staging overrides (`/staging set KEY=VALUE`)

NASTY_VALUE = '$(rm -rf /)"; echo: {x}'
PODS = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      initContainers:
        - {name: init, image: busybox, envFrom: [{secretRef: {name: extra}}]}
      containers:
        - name: db
          image: postgres
          env:
            - {name: FEATURE_X, value: "off"}
            - {name: PASSWORD, valueFrom: {secretKeyRef: {name: db, key: password}}}
            - {name: PLAIN, value: "1"}
        - name: sidecar
          image: busybox
          envFrom:
            - configMapRef: {name: stagingbot-overrides, optional: true}
            - configMapRef: {name: later}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: busybox}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: task, image: "${image}"}]
"""
OVERRIDES_REF = {"configMapRef": {"name": OVERRIDES_CONFIGMAP}}


def render_all(folder: Path, *texts: str, **changes: Any) -> dict[str, dict[str, Any]]:
    """Every rendered object by `Kind/name`."""
    write(folder, "all.yaml", "\n---\n".join(texts))
    objects = render_manifests(make_target(folder, **changes))
    return {f"{obj['kind']}/{obj['metadata']['name']}": obj for obj in objects}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"]
    template = (
        spec["jobTemplate"]["spec"]["template"] if "jobTemplate" in spec else spec["template"]
    )
    result: dict[str, Any] = template["spec"]
    return result


def checksum(folder: Path, overrides: tuple[tuple[str, str], ...]) -> str:
    obj = render_all(folder, WEB, overrides=overrides)["Deployment/web"]
    value: str = obj["spec"]["template"]["metadata"]["annotations"][ANNOTATION_OVERRIDES_CHECKSUM]
    return value


def test_overrides_land_in_a_bot_owned_configmap_labelled_like_the_staging(
    tmp_path: Path,
) -> None:
    objects = render_all(tmp_path, WEB, overrides=(("FEATURE_X", "on"), ("LOG_LEVEL", "debug")))
    configmap = objects[f"ConfigMap/{OVERRIDES_CONFIGMAP}"]
    web = objects["Deployment/web"]
    assert configmap["apiVersion"] == "v1"
    assert configmap["data"] == {"FEATURE_X": "on", "LOG_LEVEL": "debug"}
    assert configmap["metadata"]["namespace"] == "staging-app-pr-7"
    bot_labels = {k: v for k, v in web["metadata"]["labels"].items() if k != "app"}
    assert configmap["metadata"]["labels"] == bot_labels
    assert configmap["metadata"]["annotations"] == web["metadata"]["annotations"]


def test_without_overrides_the_configmap_is_still_there_and_empty(tmp_path: Path) -> None:
    configmap = render_all(tmp_path, CONFIGMAP)[f"ConfigMap/{OVERRIDES_CONFIGMAP}"]
    assert configmap["data"] == {}  # so every reference to it resolves


def test_every_container_and_init_container_of_every_workload_reads_the_overrides(
    tmp_path: Path,
) -> None:
    objects = render_all(tmp_path, WEB, PODS, JOB)
    for name in ("Deployment/web", "StatefulSet/db", "DaemonSet/agent", "CronJob/nightly"):
        spec = pod_spec(objects[name])
        for container in spec.get("initContainers", []) + spec["containers"]:
            sources = container["envFrom"]
            names = [s.get("configMapRef", {}).get("name") for s in sources]
            assert names.count(OVERRIDES_CONFIGMAP) == 1, (name, container["name"])
    (job,) = [obj for key, obj in objects.items() if key.startswith("Job/")]
    assert "envFrom" not in pod_spec(job)["containers"][0]  # its pod template is immutable


def test_the_templates_own_env_from_is_kept_and_the_overrides_come_last(tmp_path: Path) -> None:
    spec = pod_spec(render_all(tmp_path, PODS)["StatefulSet/db"])
    (init,) = spec["initContainers"]
    db, sidecar = spec["containers"]
    assert init["envFrom"] == [{"secretRef": {"name": "extra"}}, OVERRIDES_REF]
    assert db["envFrom"] == [OVERRIDES_REF]
    assert sidecar["envFrom"] == [  # already referenced: left where the template put it
        {"configMapRef": {"name": OVERRIDES_CONFIGMAP, "optional": True}},
        {"configMapRef": {"name": "later"}},
    ]


def test_an_override_replaces_a_literal_env_value_but_not_a_secret_reference(
    tmp_path: Path,
) -> None:
    overrides = (("FEATURE_X", "on"), ("PASSWORD", "guess"))
    spec = pod_spec(render_all(tmp_path, PODS, overrides=overrides)["StatefulSet/db"])
    env = {entry["name"]: entry for entry in spec["containers"][0]["env"]}
    assert env["FEATURE_X"] == {
        "name": "FEATURE_X",
        "valueFrom": {
            "configMapKeyRef": {"name": OVERRIDES_CONFIGMAP, "key": "FEATURE_X", "optional": True}
        },
    }
    assert env["PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "db", "key": "password"}}
    assert env["PLAIN"] == {"name": "PLAIN", "value": "1"}
    assert [entry["name"] for entry in spec["containers"][0]["env"]] == [
        "FEATURE_X",
        "PASSWORD",
        "PLAIN",
    ]  # order kept: later entries may refer to earlier ones with $(NAME)


def test_the_checksum_follows_the_values_and_not_their_order(tmp_path: Path) -> None:
    one = checksum(tmp_path, (("A", "1"), ("B", "2")))
    assert checksum(tmp_path, (("B", "2"), ("A", "1"))) == one
    assert checksum(tmp_path, (("A", "1"), ("B", "3"))) != one
    assert checksum(tmp_path, (("A", "1"),)) != one
    assert checksum(tmp_path, (("A", "1"), ("B", "2"), ("C", ""))) != one
    assert checksum(tmp_path, (("A", "12"),)) != checksum(tmp_path, (("A", "1"), ("B", "2")))
    assert one == hashlib.sha256(b'[["A","1"],["B","2"]]').hexdigest()  # sorted pairs, JSON


def test_every_workload_pod_template_carries_the_checksum_but_cronjobs_do_not(
    tmp_path: Path,
) -> None:
    objects = render_all(tmp_path, WEB, PODS, overrides=(("A", "1"),))
    expected = hashlib.sha256(b'[["A","1"]]').hexdigest()
    for name in ("Deployment/web", "StatefulSet/db", "DaemonSet/agent"):
        annotations = objects[name]["spec"]["template"]["metadata"]["annotations"]
        assert annotations[ANNOTATION_OVERRIDES_CHECKSUM] == expected
    job_template = objects["CronJob/nightly"]["spec"]["jobTemplate"]["spec"]["template"]
    assert "metadata" not in job_template  # each run reads the ConfigMap afresh


@pytest.mark.parametrize(
    "value", [NASTY_VALUE, "${sha}", "$${x}", "a: b", "- [c]", "'\"", "#", "", "ünï ☃"]
)
def test_override_values_arrive_verbatim_as_data(tmp_path: Path, value: str) -> None:
    objects = render_all(tmp_path, WEB, overrides=(("FEATURE_X", value),))
    assert objects[f"ConfigMap/{OVERRIDES_CONFIGMAP}"]["data"] == {"FEATURE_X": value}
    container = objects["Deployment/web"]["spec"]["template"]["spec"]["containers"][0]
    assert container == {
        "name": "web",
        "image": "registry.example.com/app:fedcba9",
        "envFrom": [OVERRIDES_REF],
    }  # the value is in no `env[].value`, `command` or `args`: Kubernetes expands none of it


def test_a_template_configmap_named_like_the_overrides_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "mine.yaml", CONFIGMAP.replace("settings", OVERRIDES_CONFIGMAP))
    with pytest.raises(PermanentError, match="invalid manifest mine.yaml: ConfigMap stagingbot-"):
        render_manifests(make_target(tmp_path))


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ((("feature", NASTY_VALUE),), "override 'feature' is not a valid variable name"),
        ((("A-B", NASTY_VALUE),), "override 'A-B' is not a valid variable name"),
        ((("A", NASTY_VALUE), ("A", "x")), "override A is set twice"),
    ],
)
def test_invalid_or_repeated_override_keys_are_refused_without_quoting_values(
    tmp_path: Path, overrides: tuple[tuple[str, str], ...], reason: str
) -> None:
    write(tmp_path, "web.yaml", WEB)
    with pytest.raises(PermanentError) as caught:
        render_manifests(make_target(tmp_path, overrides=overrides))
    assert caught.value.reason.startswith(f"invalid overrides: {reason}")
    assert NASTY_VALUE not in str(caught.value)


# Secret overrides (set through the API, dashboard or CLI)

SECRET_VALUE = "sk_live_never-in-a-manifest-but-the-secret"
SECRETS = (("STRIPE_KEY", SECRET_VALUE),)


def test_secret_overrides_land_base64_in_a_bot_owned_secret_read_after_the_configmap(
    tmp_path: Path,
) -> None:
    objects = render_all(
        tmp_path, PODS, overrides=(("A", "1"),), secret_overrides=SECRETS, secret_checksum="c1"
    )

    secret = objects[f"Secret/{OVERRIDES_SECRET}"]
    assert secret["type"] == "Opaque"
    assert secret["metadata"]["namespace"] == "staging-app-pr-7"
    assert secret["metadata"]["labels"][naming.LABEL_INSTANCE] == "blue"
    assert base64.b64decode(secret["data"]["STRIPE_KEY"]).decode() == SECRET_VALUE
    containers = pod_spec(objects["StatefulSet/db"])["containers"]
    assert containers[0]["envFrom"] == [
        OVERRIDES_REF,
        {"secretRef": {"name": OVERRIDES_SECRET, "optional": True}},
    ]
    for name, obj in objects.items():
        if name != f"Secret/{OVERRIDES_SECRET}":
            assert SECRET_VALUE not in json.dumps(obj), name
            assert secret["data"]["STRIPE_KEY"] not in json.dumps(obj), name


def test_a_literal_env_entry_of_a_secret_key_reads_the_secret(tmp_path: Path) -> None:
    secrets = (("FEATURE_X", SECRET_VALUE),)
    spec = pod_spec(render_all(tmp_path, PODS, secret_overrides=secrets)["StatefulSet/db"])

    env = {entry["name"]: entry for entry in spec["containers"][0]["env"]}
    assert env["FEATURE_X"] == {
        "name": "FEATURE_X",
        "valueFrom": {
            "secretKeyRef": {"name": OVERRIDES_SECRET, "key": "FEATURE_X", "optional": True}
        },
    }


def test_without_secret_overrides_there_is_no_secret_and_no_reference(tmp_path: Path) -> None:
    objects = render_all(tmp_path, PODS, overrides=(("A", "1"),))

    assert f"Secret/{OVERRIDES_SECRET}" not in objects
    assert "secretRef" not in json.dumps(pod_spec(objects["StatefulSet/db"])["containers"][0])


def test_the_checksum_follows_the_secret_digest_never_the_values(tmp_path: Path) -> None:
    def annotated(**changes: Any) -> str:
        obj = render_all(tmp_path, WEB, **changes)["Deployment/web"]
        value: str = obj["spec"]["template"]["metadata"]["annotations"][
            ANNOTATION_OVERRIDES_CHECKSUM
        ]
        return value

    plain = annotated()
    one = annotated(secret_overrides=SECRETS, secret_checksum="digest-1")
    same_digest = annotated(secret_overrides=(("STRIPE_KEY", "other"),), secret_checksum="digest-1")
    other = annotated(secret_overrides=SECRETS, secret_checksum="digest-2")

    assert len({plain, one, other}) == 3
    assert one == same_digest  # the rendered checksum is computed from the keyed digest alone


def test_a_template_secret_named_like_the_secret_overrides_is_refused(tmp_path: Path) -> None:
    write(
        tmp_path,
        "mine.yaml",
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: {OVERRIDES_SECRET}}}\n",
    )
    with pytest.raises(PermanentError, match="Secret stagingbot-secret-overrides is the bot's own"):
        render_manifests(make_target(tmp_path))
