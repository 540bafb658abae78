"""The Kubernetes provisioner, driving the real `kubernetes.aio` client against the fake API."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kubernetes.aio import client as k8s_client
from kubernetes.aio import config as k8s_config

from bot import naming
from bot.errors import PermanentError, TemporaryError
from bot.model import Rollout, StagingKey, Target
from bot.provision.archive import ANNOTATION_REPLICAS
from bot.provision.kubernetes import ANNOTATION_ARCHIVED, ARCHIVED_REASON, KubernetesProvisioner
from bot.provision.render import ANNOTATION_OVERRIDES_CHECKSUM, OVERRIDES_CONFIGMAP
from tests.conftest import ROOT
from tests.fakes.kube import FakeKube

KEY = StagingKey("github", 186853002, 2)
SHA1 = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
SHA2 = "2b3a4d5c6e7f8091a2b3c4d5e6f708192a3b4c5d"
SHA3 = "3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f"
NAMESPACE = "staging-hello-world-pr-2"

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: app
          image: ${image}
          env:
            - {name: PUBLIC_URL, value: "${url}"}
"""
SERVICE = """
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
    - {port: 80, targetPort: 8080}
"""
CONFIG = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  BRANCH: "${branch}"
"""
MIGRATE = """
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: ${image}
          args: [migrate]
"""


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube(namespace_delete_delay=0.2, rollout_delay=0.05) as fake:
        yield fake


@pytest.fixture
async def provisioner(kube: FakeKube, tmp_path: Path) -> AsyncIterator[KubernetesProvisioner]:
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", context="fake")
    cache = str(tmp_path / "discovery.json")
    prov = await KubernetesProvisioner.create(kubeconfig, "fake", discovery_cache=cache)
    yield prov
    await prov.close()


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    folder = tmp_path / "staging"
    folder.mkdir()
    for name, text in (("web.yaml", WEB), ("service.yaml", SERVICE), ("config.yaml", CONFIG)):
        (folder / name).write_text(text)
    return folder


def make_target(folder: Path, sha: str = SHA1, **changes: Any) -> Target:
    target = Target(
        key=KEY,
        repo="Codertocat/Hello-World",
        number=2,
        sha=sha,
        branch="changes",
        namespace=NAMESPACE,
        name="hello-world-pr-2",
        hostname="hello-world-pr-2.staging.example.com",
        url="https://hello-world-pr-2.staging.example.com/",
        image=f"registry.example.com/hello:{sha}",
        manifests=str(folder),
        instance="test",
    )
    return replace(target, **changes)


async def wait_for(
    provisioner: KubernetesProvisioner, target: Target, done: Callable[[Rollout], bool]
) -> Rollout:
    """Polls status() until `done` (the reconcile job's deferred checks, compressed), ≤ 5 s."""
    rollout = Rollout(ready=False)
    for _ in range(250):
        rollout = await provisioner.status(target)
        if done(rollout):
            return rollout
        await asyncio.sleep(0.02)
    raise AssertionError(f"status never matched; last: {rollout}")


async def test_apply_creates_the_labelled_namespace_and_its_objects(
    kube: FakeKube, provisioner: KubernetesProvisioner, templates: Path
) -> None:
    target = make_target(templates)

    await provisioner.apply(target)

    namespace = kube.namespace(NAMESPACE)
    assert namespace is not None
    selector = naming.selector_labels(KEY, "test")
    assert selector.items() <= namespace["metadata"]["labels"].items()
    [deployment] = kube.objects("Deployment", NAMESPACE)
    assert selector.items() <= deployment["metadata"]["labels"].items()
    assert deployment["metadata"]["labels"][naming.LABEL_SHA] == SHA1
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"registry.example.com/hello:{SHA1}"
    assert [s["metadata"]["name"] for s in kube.objects("Service", NAMESPACE)] == ["web"]
    config = kube.get("ConfigMap", NAMESPACE, "settings")
    assert config is not None and config["data"] == {"BRANCH": "changes"}
    applies = kube.count("PATCH", content_type="application/apply-patch+yaml")
    assert applies == 5  # the namespace, three objects, the overrides: each server-side apply
    managers = {m["manager"] for m in deployment["metadata"]["managedFields"]}
    assert managers == {"stagingbot"}


async def test_reapply_with_a_new_sha_updates_the_image(
    kube: FakeKube, provisioner: KubernetesProvisioner, templates: Path
) -> None:
    await provisioner.apply(make_target(templates, SHA1))

    await provisioner.apply(make_target(templates, SHA2))

    [deployment] = kube.objects("Deployment", NAMESPACE)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"registry.example.com/hello:{SHA2}"
    assert deployment["metadata"]["generation"] == 2
    assert deployment["metadata"]["labels"][naming.LABEL_SHA] == SHA2


async def test_identical_reapply_changes_nothing(
    kube: FakeKube, provisioner: KubernetesProvisioner, templates: Path
) -> None:
    target = make_target(templates)
    await provisioner.apply(target)
    before = kube.objects("Deployment", NAMESPACE)[0]["metadata"]["generation"]

    await provisioner.apply(target)

    assert kube.objects("Deployment", NAMESPACE)[0]["metadata"]["generation"] == before


async def test_an_object_dropped_from_the_templates_is_pruned(
    kube: FakeKube, provisioner: KubernetesProvisioner, templates: Path
) -> None:
    target = make_target(templates)
    await provisioner.apply(target)
    foreign = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"keep": "me"}}
    kube.add({**foreign, "metadata": {"name": "unlabelled", "namespace": NAMESPACE}})
    other_staging = naming.selector_labels(StagingKey("github", 186853002, 3), "test")
    kube.add(
        {**foreign, "metadata": {"name": "other", "namespace": NAMESPACE, "labels": other_staging}}
    )

    (templates / "config.yaml").unlink()
    await provisioner.apply(target)

    names = [c["metadata"]["name"] for c in kube.objects("ConfigMap", NAMESPACE)]
    assert names == ["other", OVERRIDES_CONFIGMAP, "unlabelled"]  # only this staging's
    assert len(kube.objects("Deployment", NAMESPACE)) == 1


async def test_a_kind_dropped_from_every_template_is_pruned_too(
    kube: FakeKube, provisioner: KubernetesProvisioner, templates: Path
) -> None:
    target = make_target(templates)
    await provisioner.apply(target)

    (templates / "service.yaml").unlink()
    await provisioner.apply(target)

    assert kube.objects("Service", NAMESPACE) == []
    seen = len(kube.requests)
    await provisioner.apply(target)  # and the next apply no longer lists Services
    assert not any(r.path.endswith("/services") for r in kube.requests[seen:])


async def test_migration_jobs_are_named_per_sha_and_the_old_one_is_pruned(
    kube: FakeKube, provisioner: KubernetesProvisioner, templates: Path
) -> None:
    (templates / "migrate.yaml").write_text(MIGRATE)

    await provisioner.apply(make_target(templates, SHA1))
    await provisioner.apply(make_target(templates, SHA2))

    names = [j["metadata"]["name"] for j in kube.objects("Job", NAMESPACE)]
    assert names == [f"migrate-{SHA2[:7]}"]


async def test_status_goes_ready_once_the_rollout_converges(
    provisioner: KubernetesProvisioner, templates: Path
) -> None:
    target = make_target(templates)
    await provisioner.apply(target)

    rollout = await wait_for(provisioner, target, lambda r: r.ready)

    assert rollout == Rollout(ready=True)


async def test_status_says_which_workload_it_is_waiting_for(
    kube: FakeKube, provisioner: KubernetesProvisioner, templates: Path
) -> None:
    kube.never_ready("registry.example.com/hello")
    target = make_target(templates)
    await provisioner.apply(target)

    rollout = await wait_for(provisioner, target, lambda r: "available" in r.reason)

    assert rollout == Rollout(ready=False, reason="waiting for deployment web: 0/1 available")


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (
            lambda kube: kube.fail_image_pull("hello"),
            f"image cannot be pulled: registry.example.com/hello:{SHA1}: "
            f'Back-off pulling image "registry.example.com/hello:{SHA1}"',
        ),
        (
            lambda kube: kube.crash_loop("hello", exit_code=137, restarts=4),
            "container app is crash-looping (exit code 137, restarted 4 times)",
        ),
        (
            lambda kube: kube.unschedulable("hello", "0/3 nodes are available: insufficient cpu"),
            "pod cannot be scheduled: 0/3 nodes are available: insufficient cpu",
        ),
    ],
    ids=["image-pull", "crash-loop", "unschedulable"],
)
async def test_status_explains_a_failed_rollout_in_words(
    kube: FakeKube,
    provisioner: KubernetesProvisioner,
    templates: Path,
    fault: Callable[[FakeKube], None],
    reason: str,
) -> None:
    fault(kube)
    target = make_target(templates)
    await provisioner.apply(target)

    rollout = await wait_for(provisioner, target, lambda r: r.failed)

    assert rollout == Rollout(ready=False, failed=True, reason=reason)


async def test_a_fixed_image_recovers_from_the_previous_failure(
    kube: FakeKube, provisioner: KubernetesProvisioner, templates: Path
) -> None:
    kube.crash_loop(SHA1)
    await provisioner.apply(make_target(templates, SHA1))
    await wait_for(provisioner, make_target(templates, SHA1), lambda r: r.failed)

    await provisioner.apply(make_target(templates, SHA2))

    assert (await wait_for(provisioner, make_target(templates, SHA2), lambda r: r.ready)).ready


async def test_archived_workloads_are_not_scaled_back_up(
    kube: FakeKube, provisioner: KubernetesProvisioner, templates: Path, tmp_path: Path
) -> None:
    await provisioner.apply(make_target(templates, SHA1))
    await archive_by_hand(kube, tmp_path, "web")

    await provisioner.apply(make_target(templates, SHA2))

    [deployment] = kube.objects("Deployment", NAMESPACE)
    assert deployment["spec"]["replicas"] == 0
    assert deployment["metadata"]["annotations"][ANNOTATION_ARCHIVED] == "true"
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith(SHA2)


async def archive_by_hand(kube: FakeKube, tmp_path: Path, name: str) -> None:
    """What the (later) archive step does: another writer scales to 0 and marks it."""
    configuration = k8s_client.Configuration()
    path = kube.write_kubeconfig(tmp_path / "archiver")
    await k8s_config.load_kube_config(config_file=path, client_configuration=configuration)
    async with k8s_client.ApiClient(configuration) as api:
        patch = {
            "metadata": {"annotations": {ANNOTATION_ARCHIVED: "true"}},
            "spec": {"replicas": 0},
        }
        await k8s_client.AppsV1Api(api).patch_namespaced_deployment(
            name, NAMESPACE, patch, field_manager="archiver"
        )


async def test_the_wildcard_tls_secret_is_copied_into_the_staging(
    kube: FakeKube, provisioner: KubernetesProvisioner, templates: Path
) -> None:
    data = {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}
    kube.add(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "data": data,
            "metadata": {"name": "wildcard-tls", "namespace": "default"},
        }
    )

    await provisioner.apply(make_target(templates, tls_secret="default/wildcard-tls"))

    [secret] = kube.objects("Secret", NAMESPACE)
    assert secret["metadata"]["name"] == "stagingbot-tls"
    assert (secret["type"], secret["data"]) == ("kubernetes.io/tls", data)


async def test_a_missing_tls_secret_is_permanent(
    provisioner: KubernetesProvisioner, templates: Path
) -> None:
    with pytest.raises(PermanentError, match="TLS secret default/nope does not exist"):
        await provisioner.apply(make_target(templates, tls_secret="default/nope"))


async def test_destroy_deletes_the_namespace_and_reports_when_it_is_gone(
    kube: FakeKube, provisioner: KubernetesProvisioner, templates: Path
) -> None:
    target = make_target(templates)
    await provisioner.apply(target)

    assert await provisioner.destroy(target) is False  # terminating
    assert await provisioner.destroy(target) is False  # still terminating: no second delete
    for _ in range(100):
        if await provisioner.destroy(target):
            break
        await asyncio.sleep(0.02)

    assert kube.namespace(NAMESPACE) is None
    assert kube.objects("Deployment", NAMESPACE) == []
    assert await provisioner.destroy(target) is True  # idempotent
    assert kube.count("DELETE", path_contains=f"/namespaces/{NAMESPACE}") == 1


async def test_destroy_refuses_a_namespace_that_is_not_this_stagings(
    kube: FakeKube, provisioner: KubernetesProvisioner, templates: Path
) -> None:
    kube.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})

    with pytest.raises(PermanentError, match="not labelled as this staging's"):
        await provisioner.destroy(make_target(templates))
    with pytest.raises(PermanentError, match="refusing to update it"):
        await provisioner.apply(make_target(templates))

    assert kube.namespace(NAMESPACE) is not None


async def test_apply_into_a_terminating_namespace_waits_for_it(
    kube: FakeKube, provisioner: KubernetesProvisioner, templates: Path
) -> None:
    target = make_target(templates)
    await provisioner.apply(target)
    await provisioner.destroy(target)  # the request closed...

    with pytest.raises(TemporaryError) as caught:  # ...and was reopened right away
        await provisioner.apply(target)

    assert caught.value.reason == f"namespace {NAMESPACE} is still terminating"
    assert caught.value.delay == 2
    for _ in range(250):
        if kube.namespace(NAMESPACE) is None:
            break
        await asyncio.sleep(0.02)
    await provisioner.apply(target)
    assert len(kube.objects("Deployment", NAMESPACE)) == 1


async def test_a_namespace_that_starts_terminating_mid_apply_is_temporary(
    kube: FakeKube, provisioner: KubernetesProvisioner, templates: Path
) -> None:
    kube.namespace_delete_delay = 30.0  # stays terminating for the whole test
    target = make_target(templates)
    await provisioner.apply(target)
    (templates / "later.yaml").write_text(CONFIG.replace("settings", "later"))
    # The namespace is deleted between the provisioner's check and its writes.
    original = provisioner._apply_namespace

    async def delete_then_apply(target: Target, kinds: list[str]) -> None:
        await original(target, kinds)
        await provisioner._dynamic.delete(
            await provisioner._resource("v1", "Namespace"), name=NAMESPACE
        )

    provisioner._apply_namespace = delete_then_apply  # type: ignore[method-assign]

    with pytest.raises(TemporaryError, match="still terminating"):
        await provisioner.apply(target)


@pytest.mark.parametrize(("status", "retry_after"), [(503, 7), (429, 3), (500, None)])
async def test_an_unavailable_api_is_a_temporary_error(
    kube: FakeKube,
    provisioner: KubernetesProvisioner,
    templates: Path,
    status: int,
    retry_after: int | None,
) -> None:
    target = make_target(templates)
    await provisioner.apply(target)
    kube.fail_next(3, status=status, retry_after=retry_after)

    with pytest.raises(TemporaryError) as caught:
        await provisioner.apply(target)

    assert caught.value.delay == retry_after
    assert f"HTTP {status}" in caught.value.reason


async def test_an_unreachable_api_server_is_a_temporary_error(tmp_path: Path) -> None:
    with FakeKube() as fake:
        kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
    # The fake has stopped: nothing listens on that port any more.
    with pytest.raises(TemporaryError, match="discover the Kubernetes API: HTTP 0"):
        await KubernetesProvisioner.create(kubeconfig, "", discovery_cache=str(tmp_path / "d"))


async def test_an_invalid_object_is_a_permanent_error_in_words(
    provisioner: KubernetesProvisioner, templates: Path
) -> None:
    (templates / "web.yaml").write_text(
        WEB.replace("spec:\n  selector", "spec:\n  replicas: two\n  selector")
    )

    with pytest.raises(PermanentError) as caught:
        await provisioner.apply(make_target(templates))

    assert caught.value.reason == (
        'invalid manifest: Deployment/web: Deployment.apps "web" is invalid: '
        "spec.replicas: 'two' is not of type 'integer', 'null'"
    )


async def test_an_unknown_kind_is_a_permanent_error(
    provisioner: KubernetesProvisioner, templates: Path
) -> None:
    widget = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"
    (templates / "widget.yaml").write_text(widget)

    with pytest.raises(PermanentError, match="Widget/w: the cluster does not serve Widget"):
        await provisioner.apply(make_target(templates))


async def test_the_kubeconfig_context_is_honoured(kube: FakeKube, tmp_path: Path) -> None:
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", context="staging-cluster")

    with pytest.raises(PermanentError, match="cannot load the Kubernetes configuration"):
        await KubernetesProvisioner.create(kubeconfig, "no-such-context")
    cache = str(tmp_path / "discovery.json")
    prov = await KubernetesProvisioner.create(kubeconfig, "staging-cluster", discovery_cache=cache)
    await prov.close()


SHIPPED = ROOT / "manifests" / "staging"


@pytest.mark.skipif(
    not any(SHIPPED.glob("*.y*ml")), reason="manifests/staging has no templates yet"
)
async def test_the_shipped_templates_apply_and_roll_out(
    kube: FakeKube, provisioner: KubernetesProvisioner
) -> None:
    target = make_target(SHIPPED, db_password="not-a-real-password")  # noqa: S106

    await provisioner.apply(target)

    assert kube.objects("Deployment", NAMESPACE) or kube.objects("StatefulSet", NAMESPACE)
    assert (await wait_for(provisioner, target, lambda r: r.ready or r.failed)).ready


async def test_without_any_kubeconfig_the_error_says_no_cluster_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    with pytest.raises(PermanentError, match="no cluster configured: not running in a pod"):
        await KubernetesProvisioner.create("", "")


# Per-staging overrides


async def test_overrides_reach_the_pods_and_only_a_change_rolls_them(
    kube: FakeKube, provisioner: KubernetesProvisioner, templates: Path
) -> None:
    nasty = '$(rm -rf /)"; echo: {x}'
    await provisioner.apply(make_target(templates, overrides=(("FEATURE_X", nasty),)))
    configmap = kube.get("ConfigMap", NAMESPACE, OVERRIDES_CONFIGMAP)
    assert configmap is not None and configmap["data"] == {"FEATURE_X": nasty}
    deployment = kube.get("Deployment", NAMESPACE, "web")
    assert deployment is not None
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"configMapRef": {"name": OVERRIDES_CONFIGMAP}}]
    generation = deployment["metadata"]["generation"]

    await provisioner.apply(make_target(templates, SHA1, overrides=(("FEATURE_X", nasty),)))
    assert generation_of(kube, "web") == generation  # same overrides: the pods stay

    await provisioner.apply(make_target(templates, overrides=(("FEATURE_X", "off"),)))
    assert generation_of(kube, "web") == generation + 1  # a new checksum rolls them

    await provisioner.apply(make_target(templates))  # `/staging unset FEATURE_X`
    configmap = kube.get("ConfigMap", NAMESPACE, OVERRIDES_CONFIGMAP)
    assert configmap is not None and configmap.get("data", {}) == {}
    assert generation_of(kube, "web") == generation + 2
    deployment = kube.get("Deployment", NAMESPACE, "web")
    assert deployment is not None
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations[ANNOTATION_OVERRIDES_CHECKSUM] == hashlib.sha256(b"[]").hexdigest()


def generation_of(kube: FakeKube, name: str) -> int:
    deployment = kube.get("Deployment", NAMESPACE, name)
    assert deployment is not None
    generation: int = deployment["metadata"]["generation"]
    return generation


# Archive and restore

SCALED_WEB = WEB.replace("spec:\n  selector", "spec:\n  replicas: 2\n  selector")
DATABASE = """
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
        - name: postgres
          image: postgres:16-alpine
          volumeMounts:
            - {name: data, mountPath: /var/lib/postgresql/data}
  volumeClaimTemplates:
    - metadata:
        name: data
      spec:
        accessModes: [ReadWriteOnce]
        resources:
          requests: {storage: 1Gi}
"""
NIGHTLY = """
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: report
              image: ${image}
"""
PAUSED = NIGHTLY.replace("name: nightly", "name: paused").replace(
    'schedule: "0 3 * * *"', 'schedule: "0 4 * * *"\n  suspend: true'
)
WORKER = WEB.replace("name: web", "name: worker").replace("app: web", "app: worker")
MERGE_PATCH = "application/merge-patch+json"


@pytest.fixture
def archivable(tmp_path: Path) -> Path:
    """A web Deployment with 2 replicas, a StatefulSet with the default 1 and a volume
    claim template (as manifests/staging/database.yaml), two CronJobs (one suspended by
    its template), a Service and a ConfigMap."""
    folder = tmp_path / "archivable"
    folder.mkdir()
    files = {
        "web.yaml": SCALED_WEB,
        "db.yaml": DATABASE,
        "cron.yaml": NIGHTLY + "---\n" + PAUSED,
        "service.yaml": SERVICE,
        "config.yaml": CONFIG,
    }
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def live(kube: FakeKube, kind: str, name: str) -> dict[str, Any]:
    obj = kube.get(kind, NAMESPACE, name)
    assert obj is not None, f"{kind}/{name} is missing"
    return obj


def replicas(kube: FakeKube, kind: str, name: str) -> int:
    count: int = live(kube, kind, name)["spec"]["replicas"]
    return count


def marks(kube: FakeKube, kind: str, name: str) -> dict[str, str]:
    annotations = live(kube, kind, name)["metadata"].get("annotations") or {}
    return {k: v for k, v in annotations.items() if k.startswith("stagingbot.dev/archived")}


def claims(kube: FakeKube) -> dict[str, str]:
    """The namespace's PersistentVolumeClaims: name -> uid (a new claim is new, empty storage)."""
    found = kube.objects("PersistentVolumeClaim", NAMESPACE)
    return {c["metadata"]["name"]: c["metadata"]["uid"] for c in found}


def mounted_claims(kube: FakeKube, pod: str) -> list[str]:
    volumes = live(kube, "Pod", pod)["spec"].get("volumes", [])
    return [claim["claimName"] for v in volumes if (claim := v.get("persistentVolumeClaim"))]


async def running(provisioner: KubernetesProvisioner, folder: Path, sha: str = SHA1) -> Target:
    target = make_target(folder, sha)
    await provisioner.apply(target)
    await wait_for(provisioner, target, lambda r: r.ready)
    return target


async def test_archive_scales_to_zero_recording_the_counts_and_keeps_everything_else(
    kube: FakeKube, provisioner: KubernetesProvisioner, archivable: Path
) -> None:
    target = await running(provisioner, archivable)
    database = claims(kube)
    assert list(database) == ["data-db-0"]

    await provisioner.archive(target)

    assert (replicas(kube, "Deployment", "web"), replicas(kube, "StatefulSet", "db")) == (0, 0)
    archived = {ANNOTATION_ARCHIVED: "true"}
    assert marks(kube, "Deployment", "web") == {**archived, ANNOTATION_REPLICAS: "2"}
    assert marks(kube, "StatefulSet", "db") == {**archived, ANNOTATION_REPLICAS: "1"}
    namespace = kube.namespace(NAMESPACE)
    assert namespace is not None
    assert namespace["metadata"]["annotations"][ANNOTATION_ARCHIVED] == "true"
    for kind, name in (("Service", "web"), ("ConfigMap", "settings")):
        assert kube.get(kind, NAMESPACE, name) is not None
    for _ in range(100):
        if not kube.objects("Pod", NAMESPACE):
            break
        await asyncio.sleep(0.02)
    assert kube.objects("Pod", NAMESPACE) == []
    assert claims(kube) == database  # the database's data: the very same claim


async def test_archive_refuses_a_database_that_would_delete_its_claims_when_scaled_down(
    kube: FakeKube, provisioner: KubernetesProvisioner, archivable: Path
) -> None:
    db = archivable / "db.yaml"
    db.write_text(
        db.read_text().replace(
            "  serviceName: db\n",
            "  serviceName: db\n  persistentVolumeClaimRetentionPolicy: {whenScaled: Delete}\n",
        )
    )
    target = await running(provisioner, archivable)
    database = claims(kube)

    with pytest.raises(PermanentError, match=r"not archived: StatefulSet db deletes its volume"):
        await provisioner.archive(target)

    # Nothing changed: still running, not marked, and the claim (the data) is still there.
    assert (replicas(kube, "Deployment", "web"), replicas(kube, "StatefulSet", "db")) == (2, 1)
    namespace = kube.namespace(NAMESPACE)
    assert namespace is not None
    assert ANNOTATION_ARCHIVED not in (namespace["metadata"].get("annotations") or {})
    assert kube.count("PATCH", content_type=MERGE_PATCH) == 0
    assert claims(kube) == database != {}


async def test_archiving_twice_keeps_the_first_counts_and_writes_nothing(
    kube: FakeKube, provisioner: KubernetesProvisioner, archivable: Path
) -> None:
    target = await running(provisioner, archivable)
    await provisioner.archive(target)
    writes = kube.count("PATCH", content_type=MERGE_PATCH)

    await provisioner.archive(target)

    assert kube.count("PATCH", content_type=MERGE_PATCH) == writes
    assert marks(kube, "Deployment", "web")[ANNOTATION_REPLICAS] == "2"
    assert marks(kube, "StatefulSet", "db")[ANNOTATION_REPLICAS] == "1"


async def test_an_apply_while_archived_updates_the_staging_but_keeps_it_at_zero(
    kube: FakeKube, provisioner: KubernetesProvisioner, archivable: Path
) -> None:
    await provisioner.archive(await running(provisioner, archivable))

    await provisioner.apply(make_target(archivable, SHA2))

    web = live(kube, "Deployment", "web")
    assert web["spec"]["replicas"] == 0
    assert web["spec"]["template"]["spec"]["containers"][0]["image"].endswith(SHA2)
    assert marks(kube, "Deployment", "web")[ANNOTATION_REPLICAS] == "2"
    assert replicas(kube, "StatefulSet", "db") == 0
    assert live(kube, "CronJob", "nightly")["spec"]["suspend"] is True


async def test_restore_brings_back_the_recorded_counts_and_a_later_apply_keeps_them(
    kube: FakeKube, provisioner: KubernetesProvisioner, archivable: Path
) -> None:
    await provisioner.archive(await running(provisioner, archivable))
    database = claims(kube)
    await provisioner.apply(make_target(archivable, SHA2))  # a sweep while archived

    await provisioner.restore(make_target(archivable, SHA2))

    assert (replicas(kube, "Deployment", "web"), replicas(kube, "StatefulSet", "db")) == (2, 1)
    assert marks(kube, "Deployment", "web") == marks(kube, "StatefulSet", "db") == {}
    namespace = kube.namespace(NAMESPACE)
    assert namespace is not None
    assert ANNOTATION_ARCHIVED not in namespace["metadata"]["annotations"]

    target = await running(provisioner, archivable, SHA3)

    assert (replicas(kube, "Deployment", "web"), replicas(kube, "StatefulSet", "db")) == (2, 1)
    assert await provisioner.status(target) == Rollout(ready=True)
    # The database runs again on the claim it had before archiving: no new, empty one.
    assert claims(kube) == database
    assert mounted_claims(kube, "db-0") == ["data-db-0"]
    # The count the template does not set is the restore's: the bot's apply does not claim
    # it, so it can never reset it to the default.
    db_owners = owned_spec_fields(live(kube, "StatefulSet", "db"))
    assert "f:replicas" in db_owners["stagingbot-archive"]
    assert "f:replicas" not in db_owners["stagingbot"]


def owned_spec_fields(obj: dict[str, Any]) -> dict[str, set[str]]:
    return {
        entry["manager"]: set(entry["fieldsV1"].get("f:spec", {}))
        for entry in obj["metadata"]["managedFields"]
    }


async def test_restoring_twice_or_a_running_staging_changes_nothing(
    kube: FakeKube, provisioner: KubernetesProvisioner, archivable: Path
) -> None:
    target = await running(provisioner, archivable)
    await provisioner.restore(target)
    assert kube.count("PATCH", content_type=MERGE_PATCH) == 0

    await provisioner.archive(target)
    await provisioner.restore(target)
    writes = kube.count("PATCH", content_type=MERGE_PATCH)
    await provisioner.restore(target)

    assert kube.count("PATCH", content_type=MERGE_PATCH) == writes
    assert (replicas(kube, "Deployment", "web"), replicas(kube, "StatefulSet", "db")) == (2, 1)


async def test_cronjobs_are_suspended_and_only_those_the_bot_suspended_resume(
    kube: FakeKube, provisioner: KubernetesProvisioner, archivable: Path
) -> None:
    target = await running(provisioner, archivable)

    await provisioner.archive(target)

    assert live(kube, "CronJob", "nightly")["spec"]["suspend"] is True
    assert marks(kube, "CronJob", "nightly") == {ANNOTATION_ARCHIVED: "true"}
    assert marks(kube, "CronJob", "paused") == {}  # suspended by its template, not by us

    await provisioner.restore(target)

    assert live(kube, "CronJob", "nightly")["spec"]["suspend"] is False
    assert marks(kube, "CronJob", "nightly") == {}
    assert live(kube, "CronJob", "paused")["spec"]["suspend"] is True


async def test_what_the_templates_gain_while_archived_waits_for_the_restore(
    kube: FakeKube, provisioner: KubernetesProvisioner, archivable: Path
) -> None:
    await provisioner.archive(await running(provisioner, archivable))
    (archivable / "worker.yaml").write_text(
        WORKER.replace("spec:\n  selector", "spec:\n  replicas: 3\n  selector")
    )
    (archivable / "migrate.yaml").write_text(MIGRATE)

    await provisioner.apply(make_target(archivable, SHA2))

    assert replicas(kube, "Deployment", "worker") == 0
    assert marks(kube, "Deployment", "worker")[ANNOTATION_REPLICAS] == "3"
    job = live(kube, "Job", f"migrate-{SHA2[:7]}")
    assert job["spec"]["suspend"] is True  # no migration against a database scaled to zero
    await asyncio.sleep(0.2)
    assert not live(kube, "Job", f"migrate-{SHA2[:7]}").get("status", {}).get("succeeded")

    await provisioner.restore(make_target(archivable, SHA2))

    assert replicas(kube, "Deployment", "worker") == 3
    assert live(kube, "Job", f"migrate-{SHA2[:7]}")["spec"]["suspend"] is False
    for _ in range(100):
        if live(kube, "Job", f"migrate-{SHA2[:7]}").get("status", {}).get("succeeded"):
            break
        await asyncio.sleep(0.02)
    assert live(kube, "Job", f"migrate-{SHA2[:7]}")["status"]["succeeded"] == 1


async def test_an_archived_staging_does_not_read_as_failed(
    kube: FakeKube, provisioner: KubernetesProvisioner, archivable: Path
) -> None:
    kube.crash_loop(SHA1)
    target = make_target(archivable)
    await provisioner.apply(target)
    await wait_for(provisioner, target, lambda r: r.failed)
    # The web pods fail at once; let the database's rollout land too, or the fake controller
    # may change it between the archive's read and its patch (a 409, which the job retries).
    for _ in range(100):
        if live(kube, "StatefulSet", "db").get("status", {}).get("readyReplicas"):
            break
        await asyncio.sleep(0.02)

    await provisioner.archive(target)

    assert await provisioner.status(target) == Rollout(ready=True, reason=ARCHIVED_REASON)


async def test_archive_and_restore_of_a_staging_without_a_namespace_do_nothing(
    kube: FakeKube, provisioner: KubernetesProvisioner, archivable: Path
) -> None:
    target = make_target(archivable)

    await provisioner.archive(target)
    await provisioner.restore(target)

    assert kube.namespace(NAMESPACE) is None
    assert kube.count("PATCH") == kube.count("POST") == 0


async def test_archive_refuses_a_namespace_that_is_not_this_stagings(
    kube: FakeKube, provisioner: KubernetesProvisioner, archivable: Path
) -> None:
    kube.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})

    with pytest.raises(PermanentError, match="refusing to archive it"):
        await provisioner.archive(make_target(archivable))
    with pytest.raises(PermanentError, match="refusing to restore it"):
        await provisioner.restore(make_target(archivable))
