"""Staging templates to Kubernetes objects: parse the YAML first, then fill `${var}` in strings."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from bot import naming
from bot.errors import PermanentError
from bot.model import Target
from bot.provision import overrides

ANNOTATION_REDEPLOY = "stagingbot.dev/redeploy"
ANNOTATION_CERT_MANAGER = "cert-manager.io/cluster-issuer"
# The name under which the provisioner copies `staging.tls_secret` into each namespace.
TLS_SECRET_NAME = "stagingbot-tls"  # noqa: S105 (a Secret object name, not a secret)
# The bot-owned ConfigMap of per-staging overrides, read by every container (overrides.py).
OVERRIDES_CONFIGMAP = overrides.CONFIGMAP
OVERRIDES_SECRET = overrides.SECRET  # and the Secret of the secret ones, while there are any
ANNOTATION_OVERRIDES_CHECKSUM = overrides.ANNOTATION_CHECKSUM
JOB_TTL_SECONDS = 3600

TEMPLATE_SUFFIXES = (".yaml", ".yml")
# `${name}` is a variable; `$${name}` stays the literal text `${name}` (e.g. for a shell).
_PLACEHOLDER = re.compile(r"\$(\$?)\{([^{}]*)\}")
_WORKLOADS = {("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet")}
_CRONJOB = ("batch/v1", "CronJob")
# A staging lives inside its namespace: objects outside any namespace are refused.
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "APIService",
        "CertificateSigningRequest",
        "ClusterIssuer",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterTrustBundle",
        "CSIDriver",
        "CSINode",
        "CustomResourceDefinition",
        "DeviceClass",
        "FlowSchema",
        "IngressClass",
        "IPAddress",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PriorityClass",
        "PriorityLevelConfiguration",
        "RuntimeClass",
        "ServiceCIDR",
        "StorageClass",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
    }
)

Obj = dict[str, Any]


class _Where(NamedTuple):
    """A template document, for error messages: `invalid manifest app.yaml: ... (document 2)`."""

    file: str
    document: int

    def error(self, detail: str) -> PermanentError:
        return PermanentError(f"invalid manifest {self.file}: {detail} (document {self.document})")


def tls_secret_name(target: Target) -> str:
    """The Ingress TLS Secret: the copied wildcard, cert-manager's `<name>-tls`, or "" (no TLS)."""
    if target.tls_secret:
        return TLS_SECRET_NAME
    if target.cert_manager_issuer:
        return f"{target.name}-tls"
    return ""


def variables(target: Target) -> dict[str, str]:
    """Every `${var}` a template may use, all strings (so `${number}` fits a label or env)."""
    return {
        "namespace": target.namespace,
        "name": target.name,
        "hostname": target.hostname,
        "url": target.url,
        "image": target.image,
        "sha": target.sha,
        "short_sha": target.sha[:7],
        "branch": target.branch,
        "number": str(target.number),
        "repo": target.repo,
        "db_password": target.db_password,
        "instance": naming.slugify(target.instance),
        "ingress_class": target.ingress_class,
        "tls_secret_name": tls_secret_name(target),
    }


def render_manifests(target: Target) -> list[Obj]:
    """Every `*.yaml`/`*.yml` in `target.manifests`, by file name, rendered for `target`,
    then the bot's own overrides ConfigMap."""
    folder = Path(target.manifests)
    if not folder.is_dir():
        raise PermanentError(f"invalid manifest folder {target.manifests}: not a directory")
    files = sorted(p for p in folder.iterdir() if p.suffix in TEMPLATE_SUFFIXES and p.is_file())
    if not files:
        raise PermanentError(f"invalid manifest folder {target.manifests}: no *.yaml templates")
    settings = overrides.data(target.overrides, _invalid_overrides)
    secrets = overrides.data(target.secret_overrides, _invalid_overrides)
    wired = overrides.wiring(settings, secrets, target.secret_checksum)
    values = variables(target)
    objects: list[Obj] = []
    for path in files:
        for number, document in _load(path):
            where = _Where(path.name, number)
            _check(document, where)
            filled = _substitute(document, _filler(values, where))
            objects.append(_finish(filled, target, where, wired))
    objects.append(overrides_configmap(target, settings))
    if secrets:
        objects.append(overrides_secret(target, secrets))
    return objects


def overrides_configmap(target: Target, settings: dict[str, str]) -> Obj:
    """The staging's overrides, always present (empty `data` when none): every pod refers to it."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": OVERRIDES_CONFIGMAP,
            "namespace": target.namespace,
            "labels": _labels(target),
            "annotations": _annotations(target),
        },
        "data": dict(settings),
    }


def overrides_secret(target: Target, secrets: dict[str, str]) -> Obj:
    """The staging's secret overrides, present while there are any."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": OVERRIDES_SECRET,
            "namespace": target.namespace,
            "labels": _labels(target),
            "annotations": _annotations(target),
        },
        "type": "Opaque",
        "data": overrides.secret_data(secrets),
    }


def _invalid_overrides(detail: str) -> PermanentError:
    return PermanentError(f"invalid overrides: {detail}")


def namespace_manifest(target: Target) -> Obj:
    """The staging's Namespace, carrying the labels the bot finds its stagings by."""
    annotations = _annotations(target)
    annotations[naming.ANNOTATION_URL] = target.url
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": target.namespace,
            "labels": _labels(target),
            "annotations": annotations,
        },
    }


def _labels(target: Target) -> dict[str, str]:
    return {**naming.selector_labels(target.key, target.instance), naming.LABEL_SHA: target.sha}


def _annotations(target: Target) -> dict[str, str]:
    # The branch goes in an annotation: annotations accept any string, labels do not.
    return {
        naming.ANNOTATION_KEY: str(target.key),
        naming.ANNOTATION_REPO: target.repo,
        naming.ANNOTATION_BRANCH: target.branch,
    }


def _load(path: Path) -> list[tuple[int, Obj]]:
    """The file's YAML documents, numbered from 1, as mappings (empty ones skipped)."""
    try:
        documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError) as exc:
        raise PermanentError(f"invalid manifest {path.name}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        # Parsed before any value is filled in, so the message quotes only the template.
        raise PermanentError(f"invalid manifest {path.name}: invalid YAML: {exc}") from exc
    mappings: list[tuple[int, Obj]] = []
    for index, document in enumerate(documents):
        if document is None:
            continue
        if not isinstance(document, dict):
            raise _Where(path.name, index + 1).error(
                "expected a mapping with apiVersion, kind and metadata, "
                f"got {type(document).__name__}"
            )
        mappings.append((index + 1, document))
    return mappings


def _filler(values: dict[str, str], where: _Where) -> Callable[[str], str]:
    """Fills the placeholders of one string; an unknown variable is a PermanentError."""

    def replace(match: re.Match[str]) -> str:
        escaped, name = match.groups()
        if escaped:
            return "${" + name + "}"
        if name not in values:
            known = ", ".join(sorted(values))
            raise where.error(f"unknown variable ${{{name}}} (known: {known})")
        return values[name]

    return lambda text: _PLACEHOLDER.sub(replace, text)


def _substitute(node: Any, fill: Callable[[str], str]) -> Any:
    """A copy of the parsed tree with every string value filled; keys and structure stay."""
    if isinstance(node, str):
        return fill(node)
    if isinstance(node, dict):
        return {key: _substitute(value, fill) for key, value in node.items()}
    if isinstance(node, list):
        return [_substitute(item, fill) for item in node]
    return node


def _check(document: Obj, where: _Where) -> None:
    """Refuses a template document that is not a namespaced object.

    Runs before any value is filled in, so no message can quote one (a password, say).
    """
    api_version, kind = document.get("apiVersion"), document.get("kind")
    metadata = document.get("metadata")
    for field, value in (("apiVersion", api_version), ("kind", kind)):
        if not isinstance(value, str) or not value:
            raise where.error(f"missing {field}")
        if "$" in value:
            raise where.error(f"{field} must be literal text, without variables")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        raise where.error(f"{kind} has no metadata.name")
    if kind in CLUSTER_SCOPED_KINDS:
        raise where.error(
            f"{kind} is cluster-scoped; a staging may only create objects in its own namespace"
        )


def _finish(obj: Obj, target: Target, where: _Where, wired: overrides.Wiring) -> Obj:
    """Adds what the bot owns to a filled-in object: namespace, labels, annotations, tweaks."""
    api_version, kind, metadata = obj["apiVersion"], obj["kind"], obj["metadata"]
    if not metadata["name"]:
        raise where.error(f"{kind} has an empty metadata.name")
    if (api_version, kind) == ("v1", "ConfigMap") and metadata["name"] == OVERRIDES_CONFIGMAP:
        raise where.error(
            f"ConfigMap {OVERRIDES_CONFIGMAP} is the bot's own (per-staging overrides): "
            "rename yours"
        )
    if (api_version, kind) == ("v1", "Secret") and metadata["name"] == OVERRIDES_SECRET:
        raise where.error(
            f"Secret {OVERRIDES_SECRET} is the bot's own (secret overrides): rename yours"
        )
    metadata["namespace"] = target.namespace
    _mapping(metadata, "labels", where).update(_labels(target))
    _mapping(metadata, "annotations", where).update(_annotations(target))
    if (api_version, kind) in _WORKLOADS:
        _finish_workload(obj, target, where, wired)
    if (api_version, kind) == _CRONJOB:
        _finish_cronjob(obj, where, wired)
    if (api_version, kind) == ("batch/v1", "Job"):
        _finish_job(obj, target, where)
    if (api_version, kind) == ("networking.k8s.io/v1", "Ingress"):
        _finish_ingress(obj, target, where)
    return obj


def _finish_workload(workload: Obj, target: Target, where: _Where, wired: overrides.Wiring) -> None:
    """Every container reads the overrides; the pod template carries their checksum (a
    change rolls the pods, an unchanged set does not) and the redeploy token, if any."""
    template = _mapping(_mapping(workload, "spec", where), "template", where)
    overrides.wire_pod(_mapping(template, "spec", where), wired, where.error)
    annotations = _mapping(_mapping(template, "metadata", where), "annotations", where)
    annotations[ANNOTATION_OVERRIDES_CHECKSUM] = wired.checksum
    if target.redeploy_token:
        annotations[ANNOTATION_REDEPLOY] = target.redeploy_token


def _finish_cronjob(cronjob: Obj, where: _Where, wired: overrides.Wiring) -> None:
    """Every container reads the overrides. No checksum: each run starts new pods, which
    read the ConfigMap as it is then, so a change needs no restart."""
    job_spec = _mapping(
        _mapping(_mapping(cronjob, "spec", where), "jobTemplate", where), "spec", where
    )
    pod_spec = _mapping(_mapping(job_spec, "template", where), "spec", where)
    overrides.wire_pod(pod_spec, wired, where.error)


def _finish_job(job: Obj, target: Target, where: _Where) -> None:
    """One Job per SHA (its pod template is immutable), removed an hour after it finished.

    Overrides are not wired in: the same immutability would refuse the changed template of
    an existing Job (this SHA's, rendered by an older bot). A Job that wants them lists
    `envFrom: [{configMapRef: {name: stagingbot-overrides}}]` itself; it always resolves.
    """
    suffix = f"-{target.sha[:7]}"
    head = job["metadata"]["name"][: naming.DNS_LABEL_MAX - len(suffix)].rstrip("-.")
    job["metadata"]["name"] = f"{head}{suffix}"
    _mapping(job, "spec", where).setdefault("ttlSecondsAfterFinished", JOB_TTL_SECONDS)


def _finish_ingress(ingress: Obj, target: Target, where: _Where) -> None:
    """Applies the operator's ingress options, so one template serves every cluster.

    - `ingressClassName: ""` (staging.ingress_class unset) is dropped: the default class.
    - A `tls` entry whose `secretName` came out empty (no TLS configured) is dropped,
      and `tls` with it when nothing is left.
    - With cert-manager (and no wildcard Secret), an Ingress that has TLS gets the
      `cert-manager.io/cluster-issuer` annotation, so cert-manager issues `<name>-tls`.
    """
    spec = _mapping(ingress, "spec", where)
    if spec.get("ingressClassName") == "":
        del spec["ingressClassName"]
    tls = spec.get("tls")
    if isinstance(tls, list):
        kept = [
            entry
            for entry in tls
            if not (isinstance(entry, dict) and entry.get("secretName") == "")
        ]
        if kept:
            spec["tls"] = kept
        else:
            del spec["tls"]
    if spec.get("tls") and target.cert_manager_issuer and not target.tls_secret:
        annotations = ingress["metadata"]["annotations"]
        annotations[ANNOTATION_CERT_MANAGER] = target.cert_manager_issuer


def _mapping(parent: Obj, key: str, where: _Where) -> Obj:
    """`parent[key]` as a mapping, created when absent or null."""
    value = parent.get(key)
    if value is None:
        value = parent[key] = {}
    if not isinstance(value, dict):
        raise where.error(f"{key} must be a mapping")
    return value
