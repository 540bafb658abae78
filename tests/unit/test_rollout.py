"""Rollout status in words, from Deployment and Pod objects shaped as the API returns them."""

from __future__ import annotations

from typing import Any

from bot.provision.rollout import pod_failure, workload_rollout


def deployment(desired: int = 1, **status: Any) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": "web", "generation": 2},
        "spec": {
            "replicas": desired,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "web", "image": "shop:abc"}]}},
        },
        "status": {"observedGeneration": 2, **status},
    }


def pod(image: str = "shop:abc", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web-1", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": image}]},
        "status": status,
    }


def waiting(reason: str, message: str = "", **extra: Any) -> dict[str, Any]:
    container = {
        "name": "web",
        "image": "shop:abc",
        "state": {"waiting": {"reason": reason, "message": message}},
    }
    return {"containerStatuses": [{**container, **extra}]}


def test_an_available_deployment_is_ready() -> None:
    rolled = deployment(desired=2, replicas=2, updatedReplicas=2, availableReplicas=2)
    assert workload_rollout(rolled, []).ready


def test_a_deployment_still_rolling_says_what_it_waits_for() -> None:
    rollout = workload_rollout(deployment(updatedReplicas=1, availableReplicas=0), [])
    assert not rollout.ready and not rollout.failed
    assert rollout.reason == "waiting for deployment web: 0/1 available"


def test_an_unobserved_update_is_not_ready_yet() -> None:
    stale = deployment(updatedReplicas=1, availableReplicas=1)
    stale["status"]["observedGeneration"] = 1
    assert "not yet observed" in workload_rollout(stale, []).reason


def test_an_image_that_cannot_be_pulled_fails_the_rollout_in_words() -> None:
    failing = pod(**waiting("ImagePullBackOff", 'Back-off pulling image "shop:abc"'))
    rollout = workload_rollout(deployment(), [failing])
    assert rollout.failed
    assert rollout.reason == 'image cannot be pulled: shop:abc: Back-off pulling image "shop:abc"'


def test_a_crash_loop_names_the_container_exit_code_and_restarts() -> None:
    status = waiting("CrashLoopBackOff", restartCount=5, lastState={"terminated": {"exitCode": 3}})
    assert (
        pod_failure(pod(**status))
        == "container web is crash-looping (exit code 3, restarted 5 times)"
    )


def test_an_unschedulable_pod_quotes_the_scheduler() -> None:
    status = {
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient cpu.",
            }
        ]
    }
    assert (
        pod_failure(pod(**status))
        == "pod cannot be scheduled: 0/3 nodes are available: 3 Insufficient cpu."
    )


def test_a_crashing_pod_of_the_previous_image_does_not_fail_the_fix() -> None:
    old = pod(image="shop:old", **waiting("CrashLoopBackOff"))
    rollout = workload_rollout(deployment(updatedReplicas=1, availableReplicas=0), [old])
    assert not rollout.failed
