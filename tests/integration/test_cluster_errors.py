"""The cluster's own failures are told apart from other temporary errors, in words fit for a
pull request (the real `kubernetes.aio` client against the fake API; handlers/outage.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.errors import ClusterError, TemporaryError
from bot.model import StagingKey, Target
from bot.provision.kubernetes import KubernetesProvisioner
from tests.fakes.kube import FakeKube

KEY = StagingKey("github", 186853002, 2)
SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
CONFIG = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  GREETING: hello
"""


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube() as fake:
        yield fake


@pytest.fixture
async def provisioner(kube: FakeKube, tmp_path: Path) -> AsyncIterator[KubernetesProvisioner]:
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", context="fake")
    cache = str(tmp_path / "discovery.json")
    prov = await KubernetesProvisioner.create(kubeconfig, "fake", discovery_cache=cache)
    yield prov
    await prov.close()


@pytest.fixture
def target(tmp_path: Path) -> Target:
    folder = tmp_path / "staging"
    folder.mkdir()
    (folder / "config.yaml").write_text(CONFIG)
    return Target(
        key=KEY,
        repo="Codertocat/Hello-World",
        number=2,
        sha=SHA,
        branch="changes",
        namespace="staging-hello-world-pr-2",
        name="hello-world-pr-2",
        hostname="hello-world-pr-2.staging.example.com",
        url="https://hello-world-pr-2.staging.example.com/",
        image=f"registry.example.com/hello:{SHA}",
        manifests=str(folder),
        instance="test",
    )


async def test_an_api_server_answering_503_is_a_cluster_error_shown_by_status_only(
    kube: FakeKube, provisioner: KubernetesProvisioner, target: Target
) -> None:
    await provisioner.apply(target)
    kube.go_down(503)
    with pytest.raises(ClusterError) as caught:
        await provisioner.apply(target)
    assert caught.value.shown == "HTTP 503 Service Unavailable"
    assert "unable to handle the request" in caught.value.reason  # the log's, not the request's


async def test_an_api_server_that_drops_connections_is_a_cluster_error(
    kube: FakeKube, provisioner: KubernetesProvisioner, target: Target
) -> None:
    kube.go_down(None)
    with pytest.raises(ClusterError) as caught:
        await provisioner.status(target)
    assert caught.value.shown.startswith("no answer (") and "127.0.0.1" not in caught.value.shown


async def test_throttling_is_temporary_but_not_the_cluster_being_down(
    kube: FakeKube, provisioner: KubernetesProvisioner, target: Target
) -> None:
    await provisioner.apply(target)
    kube.fail_next(3, status=429, retry_after=2)
    with pytest.raises(TemporaryError) as caught:
        await provisioner.apply(target)
    assert not isinstance(caught.value, ClusterError)
