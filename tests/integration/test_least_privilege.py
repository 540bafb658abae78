"""The Kubernetes provisioner does all its work with only the RBAC shipped in manifests/bot/.

The fake API server enforces the shipped ClusterRoles, Roles and bindings for the worker's
ServiceAccount (tests/fakes/rbac.py): the bot creates a staging's namespace, binds
`stagingbot-staging` to itself there, and applies, archives, restores, checks, sweeps
and destroys through that binding, never with a cluster-wide right on Secrets or workloads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.errors import PermanentError, TemporaryError
from bot.model import Rollout, StagingKey, Target
from bot.provision import access, overrides
from bot.provision.access import Access
from bot.provision.decisions import Decision
from bot.provision.kubernetes import KubernetesProvisioner
from tests.conftest import ROOT
from tests.fakes import admission, rbac
from tests.fakes.kube import FakeKube

BOT = ROOT / "manifests" / "bot"
USER = "system:serviceaccount:stagingbot:stagingbot"
ACCESS = Access("stagingbot-staging", "stagingbot", "stagingbot")
KEY = StagingKey("github", 186853002, 2)
NAMESPACE = "staging-hello-world-pr-2"
SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube(namespace_delete_delay=0.2, rollout_delay=0.05) as fake:
        for name in ("stagingbot", "cert-manager"):
            fake.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        yield fake


@pytest.fixture
def policy(kube: FakeKube) -> rbac.Rbac:
    documents = rbac.load([BOT / "rbac.yaml", BOT / "optional" / "tls-secret-reader.yaml"])
    kube.authorize = rbac.Rbac(kube, documents, USER)
    return kube.authorize


async def connect(
    kube: FakeKube, tmp_path: Path, grant: Access | None = ACCESS
) -> KubernetesProvisioner:
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", context="fake")
    return await KubernetesProvisioner.create(
        kubeconfig,
        "fake",
        discovery_cache=str(tmp_path / "discovery.json"),
        state_namespace="stagingbot",
        access=grant,
    )


@pytest.fixture
async def provisioner(
    kube: FakeKube, policy: rbac.Rbac, tmp_path: Path
) -> AsyncIterator[KubernetesProvisioner]:
    prov = await connect(kube, tmp_path)
    yield prov
    await prov.close()


def shipped_target(**changes: str) -> Target:
    target = Target(
        key=KEY,
        repo="Codertocat/Hello-World",
        number=2,
        sha=SHA,
        branch="changes",
        namespace=NAMESPACE,
        name="hello-world-pr-2",
        hostname="hello-world-pr-2.staging.example.com",
        url="https://hello-world-pr-2.staging.example.com/",
        image=f"registry.example.com/hello:{SHA}",
        manifests=str(ROOT / "manifests" / "staging"),
        instance="test",
        db_password="s3cret-db-password",
        overrides=(("FEATURE_X", "on"),),
        secret_overrides=(("API_KEY", "k-123"),),
        secret_checksum="abc123",
    )
    return replace(target, **changes)


async def until_ready(provisioner: KubernetesProvisioner, target: Target) -> Rollout:
    rollout = Rollout(ready=False)
    for _ in range(250):
        rollout = await provisioner.status(target)
        if rollout.ready or rollout.failed:
            return rollout
        await asyncio.sleep(0.02)
    raise AssertionError(f"never ready; last: {rollout}")


async def retried(call: Callable[[], Awaitable[None]]) -> None:
    """As the reconcile job does: a conflict with the controller's own writes is retried."""
    for _ in range(100):
        try:
            return await call()
        except TemporaryError:
            await asyncio.sleep(0.05)
    raise AssertionError("still conflicting after 100 tries")


def only_cluster_wide_reads_of_overrides_were_refused(policy: rbac.Rbac) -> None:
    """The sweep tries one cluster-wide list first; RBAC refuses it once per kind."""
    assert policy.refused == [
        'configmaps is forbidden: User "system:serviceaccount:stagingbot:stagingbot" cannot '
        'list resource "configmaps" in API group "" at the cluster scope',
        'secrets is forbidden: User "system:serviceaccount:stagingbot:stagingbot" cannot '
        'list resource "secrets" in API group "" at the cluster scope',
    ]


async def test_a_staging_lives_its_whole_life_with_the_shipped_rbac(
    kube: FakeKube, policy: rbac.Rbac, provisioner: KubernetesProvisioner
) -> None:
    target = shipped_target()

    await provisioner.apply(target)
    assert (await until_ready(provisioner, target)).ready
    [binding] = kube.objects("RoleBinding", NAMESPACE)
    assert binding["metadata"]["name"] == access.ROLE_BINDING
    assert binding["roleRef"]["name"] == "stagingbot-staging"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "stagingbot", "namespace": "stagingbot"}
    ]

    await provisioner.apply(replace(target, sha="2" * 40, image="registry.example.com/hello:2"))
    await retried(lambda: provisioner.archive(target))
    assert kube.get("Deployment", NAMESPACE, "web")["spec"]["replicas"] == 0
    await retried(lambda: provisioner.restore(target))
    assert kube.get("Deployment", NAMESPACE, "web")["spec"]["replicas"] == 1

    for _ in range(2):  # the second sweep goes straight to the namespaces
        [found] = await provisioner.list_stagings("test")
        assert (found.key, dict(found.overrides)) == (KEY, {"FEATURE_X": "on"})
        assert dict(found.secret_overrides) == {"API_KEY": "k-123"}
    assert (await until_ready(provisioner, target)).ready  # restored pods are up before the health
    assert await provisioner.health("test", [target]) == {}

    decision = Decision(key=KEY, sha=SHA, by="octocat")
    await provisioner.remember_decision("test", decision)
    assert list(await provisioner.decisions("test")) == [KEY]
    await provisioner.forget_decision("test", KEY)

    for _ in range(100):
        if await provisioner.destroy(target):
            break
        await asyncio.sleep(0.02)
    assert kube.namespace(NAMESPACE) is None
    only_cluster_wide_reads_of_overrides_were_refused(policy)


async def test_the_wildcard_certificate_is_copied_with_the_optional_reader_role(
    kube: FakeKube, policy: rbac.Rbac, provisioner: KubernetesProvisioner
) -> None:
    kube.add(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"},
            "metadata": {"name": "wildcard-staging", "namespace": "cert-manager"},
        }
    )

    await provisioner.apply(shipped_target(tls_secret="cert-manager/wildcard-staging"))

    assert kube.get("Secret", NAMESPACE, "stagingbot-tls") is not None
    assert policy.refused == []


async def test_without_binding_its_role_the_bot_may_write_nothing_in_a_staging(
    kube: FakeKube, policy: rbac.Rbac, tmp_path: Path
) -> None:
    prov = await connect(kube, tmp_path, grant=None)
    try:
        with pytest.raises(PermanentError, match="HTTP 403") as caught:
            await prov.apply(shipped_target())
    finally:
        await prov.close()
    assert "is forbidden" in str(caught.value)
    assert f'in the namespace "{NAMESPACE}"' in str(caught.value)
    assert kube.objects("Deployment", NAMESPACE) == []


async def test_the_bot_cannot_bind_any_other_role(
    kube: FakeKube, policy: rbac.Rbac, tmp_path: Path
) -> None:
    prov = await connect(kube, tmp_path, grant=replace(ACCESS, role="cluster-admin"))
    try:
        with pytest.raises(PermanentError, match="attempting to grant RBAC permissions"):
            await prov.apply(shipped_target())
    finally:
        await prov.close()
    assert kube.objects("RoleBinding", NAMESPACE) == []


async def test_the_access_binding_survives_pruning(
    kube: FakeKube, policy: rbac.Rbac, provisioner: KubernetesProvisioner, tmp_path: Path
) -> None:
    await provisioner.apply(shipped_target())
    fewer = tmp_path / "fewer"
    fewer.mkdir()
    (fewer / "app.yaml").write_text((ROOT / "manifests" / "staging" / "app.yaml").read_text())
    (fewer / "database.yaml").write_text(
        (ROOT / "manifests" / "staging" / "database.yaml").read_text()
    )

    await provisioner.apply(shipped_target(manifests=str(fewer)))

    assert kube.objects("NetworkPolicy", NAMESPACE) == []  # pruned with policy.yaml
    assert [b["metadata"]["name"] for b in kube.objects("RoleBinding", NAMESPACE)] == [
        access.ROLE_BINDING
    ]
    assert overrides.CONFIGMAP in [
        c["metadata"]["name"] for c in kube.objects("ConfigMap", NAMESPACE)
    ]


# --- the optional admission policy ------------------------------------------------------

POLICY_FILE = BOT / "optional" / "admission-policy.yaml"


def shipped_policy() -> dict[str, Any]:
    (policy,) = [
        doc
        for doc in yaml.safe_load_all(POLICY_FILE.read_text())
        if doc["kind"] == "ValidatingAdmissionPolicy"
    ]
    return policy


def request(operation: str, resource: str, user: str = USER) -> dict[str, Any]:
    group = "rbac.authorization.k8s.io" if resource == "rolebindings" else ""
    return {
        "operation": operation,
        "userInfo": {"username": user},
        "resource": {"group": group, "version": "v1", "resource": resource},
    }


MANAGED = {
    "metadata": {"name": NAMESPACE, "labels": {"app.kubernetes.io/managed-by": "stagingbot"}}
}
KUBE_SYSTEM = {"metadata": {"name": "kube-system", "labels": {}}}
OUR_BINDING = {"roleRef": {"kind": "ClusterRole", "name": "stagingbot-staging"}}


def test_the_policy_keeps_the_bot_to_namespaces_carrying_its_label() -> None:
    policy = shipped_policy()
    assert admission.evaluate(policy, request("DELETE", "namespaces"), None, MANAGED, None) == []
    assert admission.evaluate(policy, request("CREATE", "namespaces"), MANAGED, None, None) == []
    assert admission.evaluate(policy, request("DELETE", "namespaces"), None, KUBE_SYSTEM, None) == [
        "stagingbot may only change namespaces labelled app.kubernetes.io/managed-by=stagingbot"
    ]
    # Anyone else is not the policy's business.
    admin = request("DELETE", "namespaces", user="kubernetes-admin")
    assert admission.evaluate(policy, admin, None, KUBE_SYSTEM, None) == []


def test_the_policy_lets_the_bot_bind_only_its_staging_role_only_in_its_namespaces() -> None:
    policy = shipped_policy()
    binding = request("CREATE", "rolebindings")
    assert admission.evaluate(policy, binding, OUR_BINDING, None, MANAGED) == []
    admin_role = {"roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}}
    assert admission.evaluate(policy, binding, admin_role, None, MANAGED) == [
        "stagingbot may only bind the ClusterRole stagingbot-staging"
    ]
    assert admission.evaluate(policy, binding, OUR_BINDING, None, KUBE_SYSTEM) == [
        "stagingbot may only change namespaces labelled app.kubernetes.io/managed-by=stagingbot"
    ]


async def test_with_the_policy_too_a_staging_lives_its_whole_life(
    kube: FakeKube, policy: rbac.Rbac, tmp_path: Path
) -> None:
    guard = admission.Admission(kube, shipped_policy(), USER)

    def both(*request: Any) -> None:
        policy(*request)
        guard(*request)

    kube.authorize = both
    prov = await connect(kube, tmp_path)
    target = shipped_target()
    try:
        await prov.apply(target)
        await retried(lambda: prov.archive(target))
        await retried(lambda: prov.restore(target))
        for _ in range(100):
            if await prov.destroy(target):
                break
            await asyncio.sleep(0.02)
    finally:
        await prov.close()
    assert kube.namespace(NAMESPACE) is None
    assert guard.denied == []
