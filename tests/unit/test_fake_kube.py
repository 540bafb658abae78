"""The fake Kubernetes API answers like a real API server does, on the wire."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.kube import FakeKube

APPLY = "application/apply-patch+yaml"


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube(namespace_delete_delay=0.2, rollout_delay=0.05) as fake:
        yield fake


@pytest.fixture
def http(kube: FakeKube) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {kube.token}"}
    with httpx.Client(base_url=kube.url, headers=headers, timeout=5) as client:
        yield client


def apply(http: httpx.Client, path: str, obj: dict[str, Any], **params: str) -> httpx.Response:
    params = {"fieldManager": "test", **params}
    return http.patch(path, content=json.dumps(obj), params=params, headers={"Content-Type": APPLY})


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def config_map(name: str, ns: str = "demo", **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": data,
    }


def deployment(name: str = "web", image: str = "nginx:1.27", replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "demo"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def eventually(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


def test_discovery_describes_core_and_group_resources(http: httpx.Client) -> None:
    core = http.get("/api/v1").json()
    groups = http.get("/apis").json()
    apps = http.get("/apis/apps/v1").json()

    by_name = {r["name"]: r for r in core["resources"]}
    assert by_name["namespaces"]["namespaced"] is False
    assert by_name["configmaps"]["shortNames"] == ["cm"]
    assert {"apps", "batch", "networking.k8s.io"} <= {g["name"] for g in groups["groups"]}
    deployments = next(r for r in apps["resources"] if r["name"] == "deployments")
    assert (deployments["kind"], deployments["singularName"]) == ("Deployment", "deployment")
    assert "patch" in deployments["verbs"]
    assert http.get("/version").json()["gitVersion"].startswith("v1.")


def test_requests_without_the_token_are_unauthorized(kube: FakeKube) -> None:
    answer = httpx.get(f"{kube.url}/api/v1/namespaces")

    assert answer.status_code == 401
    assert answer.json()["kind"] == "Status"


def test_namespaces_are_listed_by_label_selector(http: httpx.Client) -> None:
    apply(http, "/api/v1/namespaces/a", namespace("a", team="x", tier="web"))
    apply(http, "/api/v1/namespaces/b", namespace("b", team="x"))
    apply(http, "/api/v1/namespaces/c", namespace("c", team="y"))

    def names(selector: str) -> list[str]:
        answer = http.get("/api/v1/namespaces", params={"labelSelector": selector}).json()
        return [item["metadata"]["name"] for item in answer["items"]]

    assert names("team=x") == ["a", "b"]
    assert names("team=x,tier=web") == ["a"]
    assert names("team,!tier") == ["b", "c"]
    assert names("team in (x,y),team!=x") == ["c"]
    items = http.get("/api/v1/namespaces", params={"labelSelector": "team=y"}).json()["items"]
    assert "kind" not in items[0]  # like the real API: list items carry no kind
    assert items[0]["status"]["phase"] == "Active"


def test_a_deleted_namespace_terminates_then_disappears_with_its_objects(
    kube: FakeKube, http: httpx.Client
) -> None:
    apply(http, "/api/v1/namespaces/demo", namespace("demo"))
    apply(http, "/api/v1/namespaces/demo/configmaps/one", config_map("one"))

    deleted = http.delete("/api/v1/namespaces/demo").json()
    again = http.delete("/api/v1/namespaces/demo")
    refused = apply(http, "/api/v1/namespaces/demo/configmaps/two", config_map("two"))

    assert deleted["status"]["phase"] == "Terminating"
    assert deleted["metadata"]["deletionTimestamp"]
    assert again.status_code == 409
    assert "ensuring all content is removed" in again.json()["message"]
    assert refused.status_code == 403
    assert refused.json()["reason"] == "Forbidden"
    assert refused.json()["message"] == (
        'configmaps "two" is forbidden: unable to create new content in namespace demo '
        "because it is being terminated"
    )
    eventually(lambda: http.get("/api/v1/namespaces/demo").status_code == 404)
    assert kube.objects("ConfigMap", "demo") == []


def test_writing_into_a_missing_namespace_is_not_found(http: httpx.Client) -> None:
    answer = apply(http, "/api/v1/namespaces/nope/configmaps/one", config_map("one", "nope"))

    assert answer.status_code == 404
    assert answer.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'namespaces "nope" not found',
        "reason": "NotFound",
        "code": 404,
        "details": {"name": "nope", "kind": "namespaces"},
    }


def test_server_side_apply_needs_a_field_manager(http: httpx.Client) -> None:
    apply(http, "/api/v1/namespaces/demo", namespace("demo"))

    answer = http.patch(
        "/api/v1/namespaces/demo/configmaps/one",
        content=json.dumps(config_map("one")),
        headers={"Content-Type": APPLY},
    )

    assert answer.status_code == 422
    assert "fieldManager: Required value" in answer.json()["message"]


def test_server_side_apply_creates_merges_and_drops_what_the_manager_stopped_applying(
    http: httpx.Client,
) -> None:
    apply(http, "/api/v1/namespaces/demo", namespace("demo"))
    path = "/api/v1/namespaces/demo/configmaps/one"

    created = apply(http, path, config_map("one", a="1", b="2"))
    other = apply(http, path, config_map("one", c="3"), fieldManager="someone-else")
    updated = apply(http, path, config_map("one", a="10"))

    assert created.status_code == 201
    assert other.status_code == 200
    assert updated.json()["data"] == {"a": "10", "c": "3"}  # b dropped, c kept (other owner)
    meta = updated.json()["metadata"]
    assert meta["uid"] == created.json()["metadata"]["uid"]
    assert int(meta["resourceVersion"]) > int(created.json()["metadata"]["resourceVersion"])
    assert {m["manager"] for m in meta["managedFields"]} == {"test", "someone-else"}


def test_server_side_apply_conflicts_unless_forced(http: httpx.Client) -> None:
    apply(http, "/api/v1/namespaces/demo", namespace("demo"))
    path = "/api/v1/namespaces/demo/configmaps/one"
    apply(http, path, config_map("one", a="1"), fieldManager="someone-else")

    conflict = apply(http, path, config_map("one", a="2"))
    forced = apply(http, path, config_map("one", a="2"), force="true")

    assert conflict.status_code == 409
    assert conflict.json()["message"].startswith("Apply failed with 1 conflict")
    assert forced.json()["data"] == {"a": "2"}


def merge_patch(
    http: httpx.Client, path: str, patch: dict[str, Any], manager: str
) -> httpx.Response:
    return http.patch(
        path,
        content=json.dumps(patch),
        params={"fieldManager": manager},
        headers={"Content-Type": "application/merge-patch+json"},
    )


def owners(answer: httpx.Response) -> dict[str, set[str]]:
    """Which manager owns which `data` keys."""
    return {
        entry["manager"]: {key[2:] for key in entry["fieldsV1"].get("f:data", {})}
        for entry in answer.json()["metadata"]["managedFields"]
    }


def test_a_merge_patch_takes_over_only_the_fields_whose_value_it_changes(
    http: httpx.Client,
) -> None:
    apply(http, "/api/v1/namespaces/demo", namespace("demo"))
    path = "/api/v1/namespaces/demo/configmaps/one"
    apply(http, path, config_map("one", a="1", b="2", c="3"))

    patched = merge_patch(http, path, {"data": {"a": "10", "b": "2", "c": None}}, "editor")

    assert patched.json()["data"] == {"a": "10", "b": "2"}
    assert owners(patched) == {"test": {"b"}, "editor": {"a"}}
    # The applier no longer owns `a`: applying without it leaves the editor's value.
    assert apply(http, path, config_map("one", b="2")).json()["data"] == {"a": "10", "b": "2"}


def test_a_merge_patch_with_a_stale_resource_version_conflicts(http: httpx.Client) -> None:
    apply(http, "/api/v1/namespaces/demo", namespace("demo"))
    path = "/api/v1/namespaces/demo/configmaps/one"
    version = apply(http, path, config_map("one", a="1")).json()["metadata"]["resourceVersion"]
    apply(http, path, config_map("one", a="2"))

    stale = {"metadata": {"resourceVersion": version}, "data": {"a": "3"}}
    answer = merge_patch(http, path, stale, "editor")

    assert answer.status_code == 409
    assert "the object has been modified" in answer.json()["message"]


def test_a_suspended_job_does_not_run_until_resumed(kube: FakeKube, http: httpx.Client) -> None:
    apply(http, "/api/v1/namespaces/demo", namespace("demo"))
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate", "namespace": "demo"},
        "spec": {
            "suspend": True,
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "a:1"}]}
            },
        },
    }
    path = "/apis/batch/v1/namespaces/demo/jobs/migrate"
    apply(http, path, job)
    time.sleep(0.2)
    assert not http.get(path).json().get("status", {}).get("succeeded")

    merge_patch(http, path, {"spec": {"suspend": False}}, "resumer")

    eventually(lambda: http.get(path).json().get("status", {}).get("succeeded") == 1)


def test_an_invalid_object_is_unprocessable(http: httpx.Client) -> None:
    apply(http, "/api/v1/namespaces/demo", namespace("demo"))
    bad = deployment()
    bad["spec"]["replicas"] = "two"

    answer = apply(http, "/apis/apps/v1/namespaces/demo/deployments/web", bad)

    assert answer.status_code == 422
    assert answer.json()["reason"] == "Invalid"
    assert answer.json()["message"] == (
        "Deployment.apps \"web\" is invalid: spec.replicas: 'two' is not of type 'integer', 'null'"
    )


def test_a_deployment_selector_must_match_its_template(http: httpx.Client) -> None:
    apply(http, "/api/v1/namespaces/demo", namespace("demo"))
    bad = deployment()
    bad["spec"]["selector"]["matchLabels"]["app"] = "other"

    answer = apply(http, "/apis/apps/v1/namespaces/demo/deployments/web", bad)

    assert answer.status_code == 422
    assert "`selector` does not match template `labels`" in answer.json()["message"]


def test_a_jobs_pod_template_is_immutable(http: httpx.Client) -> None:
    apply(http, "/api/v1/namespaces/demo", namespace("demo"))
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate", "namespace": "demo"},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "m", "image": "app:1"}],
                }
            }
        },
    }
    path = "/apis/batch/v1/namespaces/demo/jobs/migrate"
    assert apply(http, path, job).status_code == 201
    assert apply(http, path, job).status_code == 200  # the same template again is fine

    job["spec"]["template"]["spec"]["containers"][0]["image"] = "app:2"
    answer = apply(http, path, job)

    assert answer.status_code == 422
    message = answer.json()["message"]
    assert message.startswith('Job.batch "migrate" is invalid: spec.template: Invalid value:')
    assert message.endswith("field is immutable")


def test_the_controller_rolls_a_deployment_out_into_pods(
    kube: FakeKube, http: httpx.Client
) -> None:
    apply(http, "/api/v1/namespaces/demo", namespace("demo"))
    path = "/apis/apps/v1/namespaces/demo/deployments/web"
    apply(http, path, deployment())

    def rolled_out() -> bool:
        status = http.get(path).json().get("status", {})
        return status.get("availableReplicas") == 2 and status.get("observedGeneration") == 1

    eventually(rolled_out)
    pods = http.get("/api/v1/namespaces/demo/pods", params={"labelSelector": "app=web"}).json()
    assert len(pods["items"]) == 2
    owner = pods["items"][0]["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("Deployment", "web")
    conditions = {c["type"]: c["status"] for c in http.get(path).json()["status"]["conditions"]}
    assert conditions == {"Available": "True", "Progressing": "True"}


def test_faults_show_in_pod_statuses_like_a_kubelet_reports_them(
    kube: FakeKube, http: httpx.Client
) -> None:
    kube.fail_image_pull("does-not-exist")
    kube.crash_loop("crashes", exit_code=2, restarts=3)
    kube.unschedulable("too-big")
    apply(http, "/api/v1/namespaces/demo", namespace("demo"))
    for name, image in (("a", "does-not-exist:1"), ("b", "crashes:1"), ("c", "too-big:1")):
        apply(http, f"/apis/apps/v1/namespaces/demo/deployments/{name}", deployment(name, image, 1))

    def pod(name: str) -> dict[str, Any]:
        items = kube.objects("Pod", "demo")
        return next((p for p in items if p["metadata"]["labels"]["app"] == name), {})

    eventually(lambda: all(pod(n).get("status") for n in "abc"))
    waiting = pod("a")["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting == {
        "reason": "ImagePullBackOff",
        "message": 'Back-off pulling image "does-not-exist:1"',
    }
    crashed = pod("b")["status"]["containerStatuses"][0]
    assert crashed["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert (crashed["restartCount"], crashed["lastState"]["terminated"]["exitCode"]) == (3, 2)
    [scheduled] = pod("c")["status"]["conditions"]
    assert (scheduled["type"], scheduled["status"], scheduled["reason"]) == (
        "PodScheduled",
        "False",
        "Unschedulable",
    )
    status = kube.get("Deployment", "demo", "b")
    assert status is not None and "availableReplicas" not in status["status"]

    kube.clear_faults()
    eventually(
        lambda: (kube.get("Deployment", "demo", "b") or {})["status"].get("availableReplicas") == 1
    )


def test_injected_failures_answer_with_retry_after(kube: FakeKube, http: httpx.Client) -> None:
    kube.fail_next(2, status=429, retry_after=5)

    first, second, third = (http.get("/api/v1/namespaces") for _ in range(3))

    assert (first.status_code, first.headers["Retry-After"]) == (429, "5")
    assert first.json()["reason"] == "TooManyRequests"
    assert second.status_code == 429
    assert third.status_code == 200
    assert kube.count("GET", path_contains="/api/v1/namespaces") == 3


# StatefulSet volume claims (the real controller's volumeClaimTemplates handling)

STS = "/apis/apps/v1/namespaces/demo/statefulsets/db"
CLAIMS = "/api/v1/namespaces/demo/persistentvolumeclaims"


def statefulset(replicas: int = 2, **retention: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "serviceName": "db",
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "db"}},
        "template": {
            "metadata": {"labels": {"app": "db"}},
            "spec": {
                "containers": [
                    {
                        "name": "postgres",
                        "image": "postgres:16-alpine",
                        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql"}],
                    }
                ]
            },
        },
        "volumeClaimTemplates": [
            {
                "metadata": {"name": "data", "labels": {"tier": "storage"}},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
        ],
    }
    if retention:
        spec["persistentVolumeClaimRetentionPolicy"] = retention
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "demo"},
        "spec": spec,
    }


def claim_uids(http: httpx.Client) -> dict[str, str]:
    return {c["metadata"]["name"]: c["metadata"]["uid"] for c in http.get(CLAIMS).json()["items"]}


def mounted_claims(http: httpx.Client) -> dict[str, list[str]]:
    """Pod name -> the claims its volumes refer to."""
    pods = http.get("/api/v1/namespaces/demo/pods", params={"labelSelector": "app=db"}).json()
    return {
        p["metadata"]["name"]: [
            v["persistentVolumeClaim"]["claimName"]
            for v in p["spec"].get("volumes", [])
            if "persistentVolumeClaim" in v
        ]
        for p in pods["items"]
    }


def scale(http: httpx.Client, replicas: int) -> None:
    assert merge_patch(http, STS, {"spec": {"replicas": replicas}}, "scaler").status_code == 200


def running_pods(http: httpx.Client, count: int) -> Callable[[], bool]:
    return lambda: len(mounted_claims(http)) == count


def test_a_statefulset_gets_one_bound_claim_per_pod_mounted_by_that_pod(
    http: httpx.Client,
) -> None:
    apply(http, "/api/v1/namespaces/demo", namespace("demo"))
    apply(http, STS, statefulset())

    eventually(running_pods(http, 2))

    assert mounted_claims(http) == {"db-0": ["data-db-0"], "db-1": ["data-db-1"]}
    claim = http.get(f"{CLAIMS}/data-db-0").json()
    assert claim["metadata"]["labels"] == {"tier": "storage", "app": "db"}
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"] == {"requests": {"storage": "1Gi"}}
    assert claim["status"]["phase"] == "Bound"
    assert "ownerReferences" not in claim["metadata"]  # Retain: nothing deletes it
    policy = http.get(STS).json()["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert policy == {"whenDeleted": "Retain", "whenScaled": "Retain"}  # the API's default


def test_claims_outlive_a_scale_to_zero_and_the_pods_come_back_on_the_same_ones(
    http: httpx.Client,
) -> None:
    apply(http, "/api/v1/namespaces/demo", namespace("demo"))
    apply(http, STS, statefulset())
    eventually(running_pods(http, 2))
    before = claim_uids(http)

    scale(http, 0)
    eventually(running_pods(http, 0))
    assert claim_uids(http) == before

    scale(http, 2)
    eventually(running_pods(http, 2))
    assert claim_uids(http) == before
    assert mounted_claims(http) == {"db-0": ["data-db-0"], "db-1": ["data-db-1"]}


def test_when_scaled_delete_removes_only_the_claims_of_the_removed_pods(
    http: httpx.Client,
) -> None:
    apply(http, "/api/v1/namespaces/demo", namespace("demo"))
    apply(http, STS, statefulset(whenScaled="Delete"))
    eventually(running_pods(http, 2))
    kept = claim_uids(http)["data-db-0"]

    scale(http, 1)
    eventually(running_pods(http, 1))

    assert claim_uids(http) == {"data-db-0": kept}
    scale(http, 2)
    eventually(running_pods(http, 2))
    fresh = claim_uids(http)
    assert fresh["data-db-0"] == kept
    assert "data-db-1" in fresh  # a new, empty claim


def test_when_deleted_decides_whether_claims_go_with_the_statefulset(
    http: httpx.Client,
) -> None:
    apply(http, "/api/v1/namespaces/demo", namespace("demo"))
    apply(http, STS, statefulset(replicas=1, whenDeleted="Delete"))
    eventually(lambda: "data-db-0" in claim_uids(http))
    owner = http.get(f"{CLAIMS}/data-db-0").json()["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("StatefulSet", "db", True)

    assert http.delete(STS).status_code == 200
    eventually(lambda: claim_uids(http) == {})

    apply(http, STS, statefulset(replicas=1))  # default: Retain
    eventually(lambda: "data-db-0" in claim_uids(http))
    assert http.delete(STS).status_code == 200
    eventually(running_pods(http, 0))
    assert list(claim_uids(http)) == ["data-db-0"]


def test_a_deleted_namespace_takes_the_claims_with_it(kube: FakeKube, http: httpx.Client) -> None:
    apply(http, "/api/v1/namespaces/demo", namespace("demo"))
    apply(http, STS, statefulset(replicas=1))
    eventually(lambda: "data-db-0" in claim_uids(http))

    http.delete("/api/v1/namespaces/demo")

    eventually(lambda: http.get("/api/v1/namespaces/demo").status_code == 404)
    assert kube.objects("PersistentVolumeClaim", "demo") == []
