"""Without a cluster the bot still starts: calls fail temporarily with a clear reason."""

from __future__ import annotations

import pytest

from bot.errors import TemporaryError
from bot.model import Phase, StagingKey, Target
from bot.provision import lazy
from bot.provision.base import Provisioner, StepOutput
from tests.fakes.recording import RecordingProvisioner

TARGET = Target(
    key=StagingKey("github", 1, 2),
    repo="a/b",
    number=2,
    sha="a" * 40,
    branch="x",
    namespace="staging-b-pr-2",
    name="b-pr-2",
    hostname="b-pr-2.example.com",
    url="https://b-pr-2.example.com/",
    image="img:1",
    manifests="manifests/staging",
    instance="default",
)


async def test_calls_fail_temporarily_saying_what_is_missing_then_connect_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts: list[int] = []
    real = RecordingProvisioner()

    async def factory() -> Provisioner:
        attempts.append(1)
        if len(attempts) == 1:
            raise FileNotFoundError("no kubeconfig at /root/.kube/config")
        return real

    provisioner = lazy.LazyProvisioner(factory, "Kubernetes")
    with pytest.raises(
        TemporaryError, match="Kubernetes is not configured or not reachable: no kubeconfig"
    ):
        await provisioner.apply(TARGET)
    with pytest.raises(TemporaryError):  # not retried at once: no hammering
        await provisioner.apply(TARGET)
    assert len(attempts) == 1
    monkeypatch.setattr(lazy, "RETRY_CONNECT", 0.0)
    await provisioner.apply(TARGET)
    assert real.applied == [TARGET] and len(attempts) == 2


async def test_archive_and_restore_reach_the_real_provisioner_once_connected() -> None:
    real = RecordingProvisioner()

    async def factory() -> Provisioner:
        return real

    provisioner = lazy.LazyProvisioner(factory, "Kubernetes")
    await provisioner.archive(TARGET)
    await provisioner.restore(TARGET)

    assert real.calls == ["archive staging-b-pr-2", "restore staging-b-pr-2"]


async def test_archive_without_a_cluster_fails_temporarily() -> None:
    async def factory() -> Provisioner:
        raise FileNotFoundError("no kubeconfig at /root/.kube/config")

    provisioner = lazy.LazyProvisioner(factory, "Kubernetes")
    with pytest.raises(TemporaryError, match="Kubernetes is not configured or not reachable"):
        await provisioner.archive(TARGET)
    with pytest.raises(TemporaryError):
        await provisioner.restore(TARGET)


async def test_output_and_notifications_never_connect_and_pass_through_once_connected() -> None:
    real = RecordingProvisioner(outputs={"staging-b-pr-2": StepOutput("$ ./deploy.sh")})
    attempts: list[int] = []

    async def factory() -> Provisioner:
        attempts.append(1)
        return real

    provisioner = lazy.LazyProvisioner(factory, "Kubernetes")
    assert provisioner.take_output(TARGET) == StepOutput()
    await provisioner.notify(TARGET, Phase.RUNNING, "")
    assert attempts == [] and real.notified == []

    await provisioner.connect()
    await provisioner.notify(TARGET, Phase.FAILED, "image cannot be pulled")
    assert provisioner.take_output(TARGET) == StepOutput("$ ./deploy.sh")
    assert real.notified == [("staging-b-pr-2", Phase.FAILED, "image cannot be pulled")]
