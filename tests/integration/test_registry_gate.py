"""`staging.wait_for_image`: the registry client against a local registry that demands the
bearer-token flow (401 + WWW-Authenticate, a token for Basic credentials), and the gate
that waits for the rendered image before deploying."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.config import Config, RegistryConfig, Secret
from bot.errors import PermanentError
from bot.registry import Registry
from tests.fakes.github import FakeGitHub
from tests.fakes.kube import FakeKube
from tests.fakes.registry import FakeRegistry
from tests.helpers import REPO, pr_payload
from tests.integration.test_end_to_end import (
    NAMESPACE,
    SHA1,
    bot_config,
    deliver,
    eventually,
    running_bot,
    web_image,
)


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    with FakeRegistry() as fake:
        yield fake


def client(registry: FakeRegistry, password: str) -> Registry:
    config = RegistryConfig(
        host=registry.host,
        username=registry.username,
        password=Secret(password),
        plain_http=(registry.host,),
    )
    return Registry.from_config(config)


async def test_an_image_is_found_through_the_token_flow(registry: FakeRegistry) -> None:
    registry.push("acme/shop", SHA1)
    reg = client(registry, registry.password)
    try:
        assert await reg.exists(f"{registry.host}/acme/shop:{SHA1}") is True
        assert await reg.exists(f"{registry.host}/acme/shop:{SHA1}") is True  # token cached
    finally:
        await reg.close()
    flow = [(seen.method, seen.authorization, seen.status) for seen in registry.seen]
    assert flow == [
        ("HEAD", "none", 401),
        ("GET", "basic", 200),
        ("HEAD", "bearer", 200),
        ("HEAD", "bearer", 200),
    ]


async def test_a_missing_image_is_not_an_error(registry: FakeRegistry) -> None:
    reg = client(registry, registry.password)
    try:
        assert await reg.exists(f"{registry.host}/acme/shop:{SHA1}") is False
    finally:
        await reg.close()


async def test_wrong_credentials_are_refused_without_showing_them(registry: FakeRegistry) -> None:
    registry.push("acme/shop", SHA1)
    wrong = "not-the-password-3b9d"
    reg = client(registry, wrong)
    try:
        with pytest.raises(PermanentError) as refused:
            await reg.exists(f"{registry.host}/acme/shop:{SHA1}")
    finally:
        await reg.close()
    assert "refused the credentials" in refused.value.reason
    assert wrong not in refused.value.reason


def image_config(config: Config, registry: FakeRegistry, password: str) -> Config:
    return replace(
        config,
        staging=replace(
            config.staging, image=f"{registry.host}/acme/shop:{{sha}}", wait_for_image=True
        ),
        registry=RegistryConfig(
            host=registry.host,
            username=registry.username,
            password=Secret(password),
            plain_http=(registry.host,),
        ),
    )


def comment_saying(github: FakeGitHub, text: str) -> str:
    return next((c["body"] for c in github.comments(REPO, 2) if text in c["body"]), "")


async def test_the_staging_waits_for_its_image_and_deploys_once_it_is_pushed(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path, registry: FakeRegistry
) -> None:
    base = bot_config(redis_url, github, kube, tmp_path, app=True)
    config = image_config(base, registry, registry.password)
    async with running_bot(config) as bot:
        await deliver(bot, pr_payload("opened"))
        body = await eventually(lambda: comment_saying(github, "waiting for the image"), "waits")
        assert f"{registry.host}/acme/shop:{SHA1}" in body and "not in the registry yet" in body
        assert kube.namespace(NAMESPACE) is None

        registry.push("acme/shop", SHA1)  # no webhook says so: the job looks again by itself

        await eventually(lambda: web_image(kube) == f"{registry.host}/acme/shop:{SHA1}", "deployed")


async def test_wrong_registry_credentials_are_reported_on_the_pull_request_never_shown(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path, registry: FakeRegistry
) -> None:
    wrong = "wrong-registry-secret-51aa"
    registry.push("acme/shop", SHA1)
    config = image_config(bot_config(redis_url, github, kube, tmp_path, app=True), registry, wrong)
    async with running_bot(config) as bot:
        await deliver(bot, pr_payload("opened"))
        body = await eventually(lambda: comment_saying(github, "cannot check the image"), "said")

    assert "refused the credentials" in body
    assert all(wrong not in c["body"] for c in github.comments(REPO, 2))
    assert kube.namespace(NAMESPACE) is None
