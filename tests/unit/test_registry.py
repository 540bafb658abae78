"""Asking a registry whether an image exists, through its token flow (httpx, mocked by respx)."""

from __future__ import annotations

import httpx
import pytest
import respx

from bot.config import Secret
from bot.errors import PermanentError, TemporaryError
from bot.registry import MANIFEST_TYPES, ImageRef, Registry, bearer_challenge, parse_image

MANIFEST = "https://registry.example.com/v2/acme/shop/manifests/abc123"
REALM = "https://auth.example.com/token"
CHALLENGE = (
    f'Bearer realm="{REALM}",service="registry.example.com",scope="repository:acme/shop:pull"'
)
PASSWORD = "registry-password-9f2c"


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (
            "registry.example.com/acme/shop:abc123",
            ImageRef("registry.example.com", "acme/shop", "abc123"),
        ),
        ("localhost:5000/shop:1", ImageRef("localhost:5000", "shop", "1")),
        ("redis", ImageRef("registry-1.docker.io", "library/redis", "latest")),
        ("docker.io/bitnami/redis:7", ImageRef("registry-1.docker.io", "bitnami/redis", "7")),
        (
            "ghcr.io/acme/shop@sha256:" + "a" * 64,
            ImageRef("ghcr.io", "acme/shop", "sha256:" + "a" * 64),
        ),
        ("acme/shop:feature-x", ImageRef("registry-1.docker.io", "acme/shop", "feature-x")),
    ],
)
def test_image_references_are_read_as_docker_reads_them(image: str, expected: ImageRef) -> None:
    assert parse_image(image) == expected


@pytest.mark.parametrize("image", ["", "shop:", "registry.example.com/", "a@b@c"])
def test_a_broken_image_reference_is_a_permanent_error(image: str) -> None:
    with pytest.raises(PermanentError):
        parse_image(image)


def test_a_bearer_challenge_is_parsed_and_anything_else_is_not() -> None:
    assert bearer_challenge(CHALLENGE) == {
        "realm": REALM,
        "service": "registry.example.com",
        "scope": "repository:acme/shop:pull",
    }
    assert bearer_challenge('Basic realm="x"') is None
    assert bearer_challenge('Bearer realm="file:///etc/passwd"') is None


async def check(image: str = "registry.example.com/acme/shop:abc123", **kwargs: object) -> bool:
    async with httpx.AsyncClient() as client:
        return await Registry(client, **kwargs).exists(image)  # type: ignore[arg-type]


@respx.mock
async def test_an_image_that_is_there_exists() -> None:
    route = respx.head(MANIFEST).respond(200)
    assert await check()
    accept = route.calls.last.request.headers["accept"]
    assert all(kind in accept for kind in MANIFEST_TYPES)


@respx.mock
async def test_an_image_not_pushed_yet_does_not_exist() -> None:
    respx.head(MANIFEST).respond(404)
    assert not await check()


@respx.mock
async def test_the_token_flow_uses_the_credentials_and_the_token_is_cached() -> None:
    head = respx.head(MANIFEST)
    head.side_effect = [
        httpx.Response(401, headers={"WWW-Authenticate": CHALLENGE}),
        httpx.Response(200),
        httpx.Response(200),
    ]
    token = respx.get(REALM).respond(200, json={"token": "t-1", "expires_in": 300})
    async with httpx.AsyncClient() as client:
        registry = Registry(client, {"registry.example.com": ("bot", Secret(PASSWORD))})
        assert await registry.exists("registry.example.com/acme/shop:abc123")
        assert await registry.exists("registry.example.com/acme/shop:abc123")
    assert token.call_count == 1
    request = token.calls.last.request
    assert request.url.params["scope"] == "repository:acme/shop:pull"
    assert request.url.params["service"] == "registry.example.com"
    assert request.headers["authorization"].startswith("Basic ")
    assert head.calls[1].request.headers["authorization"] == "Bearer t-1"


@respx.mock
async def test_anonymous_tokens_work_for_public_images() -> None:
    respx.head(MANIFEST).mock(
        side_effect=[
            httpx.Response(401, headers={"WWW-Authenticate": CHALLENGE}),
            httpx.Response(200),
        ]
    )
    token = respx.get(REALM).respond(200, json={"access_token": "anon"})
    assert await check()
    assert "authorization" not in token.calls.last.request.headers


@respx.mock
async def test_refused_credentials_are_permanent_and_never_show_the_password() -> None:
    respx.head(MANIFEST).respond(401, headers={"WWW-Authenticate": CHALLENGE})
    respx.get(REALM).respond(401)
    with pytest.raises(PermanentError) as caught:
        await check(credentials={"registry.example.com": ("bot", Secret(PASSWORD))})
    assert "refused" in caught.value.reason and PASSWORD not in str(caught.value)


@respx.mock
async def test_a_registry_outage_is_temporary_and_honours_retry_after() -> None:
    respx.head(MANIFEST).respond(503, headers={"Retry-After": "30"})
    with pytest.raises(TemporaryError) as caught:
        await check()
    assert caught.value.delay == 30


@respx.mock
async def test_an_unreachable_registry_is_temporary() -> None:
    respx.head(MANIFEST).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(TemporaryError):
        await check()
