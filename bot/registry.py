"""Whether an image exists yet: Docker Registry HTTP API v2, with the registry's token flow.

On a push the commit's image usually does not exist yet (CI is still building it), and
deploying it then ends in ImagePullBackOff. `Registry.exists` asks the registry first:
`HEAD /v2/<name>/manifests/<reference>`, accepting OCI and Docker manifests and indexes.
A registry that wants a token answers `401` with `WWW-Authenticate: Bearer realm=...`;
the token is fetched from the realm (with the configured credentials, or anonymously)
and cached until it expires.
https://distribution.github.io/distribution/spec/api/#existing-manifests
https://distribution.github.io/distribution/spec/auth/token/
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import httpx

from bot.config import RegistryConfig, Secret
from bot.errors import PermanentError, TemporaryError, classify_http

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
DOCKER_HUB = "registry-1.docker.io"
DOCKER_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
TOKEN_LIFETIME = 60.0  # the spec's default when the token answer gives no expires_in
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class ImageRef:
    registry: str  # host[:port]
    repository: str  # e.g. "acme/shop", "library/redis"
    reference: str  # a tag or a digest

    def manifest_url(self, scheme: str = "https") -> str:
        return f"{scheme}://{self.registry}/v2/{self.repository}/manifests/{self.reference}"


def parse_image(image: str) -> ImageRef:
    """`registry.example.com:5000/acme/shop:abc`, `shop@sha256:...`, `redis` → parts.

    As Docker does: the first path part is a registry when it has a `.` or `:` or is
    `localhost`; otherwise the image is on Docker Hub, where one-part names are `library/`.
    """
    rest, _, digest = image.partition("@")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
    else:
        registry, path = DOCKER_HUB, rest
    name, tag = (path.rsplit(":", 1) + [""])[:2] if ":" in path else (path, "")
    if not name or (":" in path and not tag) or (rest.count("@") or "@" in digest):
        raise PermanentError(f"image {image!r} is not a valid image reference")
    if registry in DOCKER_HUB_NAMES:
        registry = DOCKER_HUB
        name = name if "/" in name else f"library/{name}"
    return ImageRef(registry, name, digest or tag or "latest")


def bearer_challenge(header: str) -> dict[str, str] | None:
    """The parameters of a `WWW-Authenticate: Bearer realm="...",service="...",scope="..."`."""
    scheme, _, params = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    found = dict(_CHALLENGE_PARAM.findall(params))
    return found if found.get("realm", "").startswith(("https://", "http://")) else None


class Registry:
    """Asks registries whether images exist; one instance per worker (tokens are cached)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        credentials: Mapping[str, tuple[str, Secret]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        plain_http: Iterable[str] = (),
    ) -> None:
        self._client = client
        self._credentials = dict(credentials or {})  # registry host -> (username, password)
        self._plain_http = frozenset(plain_http)  # hosts spoken to without TLS
        self._clock = clock
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}  # (registry, scope)

    @classmethod
    def from_config(cls, config: RegistryConfig) -> Registry:
        """One client for the worker, with the configured credentials (if any)."""
        credentials = {config.host: (config.username, config.password)} if config.host else {}
        # Redirects: registries send blob and manifest reads to storage; a HEAD may follow.
        client = httpx.AsyncClient(timeout=15.0, follow_redirects=True)
        return cls(client, credentials, plain_http=config.plain_http)

    async def close(self) -> None:
        await self._client.aclose()

    async def exists(self, image: str) -> bool:
        """True when the manifest is there, False when the registry says it is not."""
        ref = parse_image(image)
        scope = f"repository:{ref.repository}:pull"
        token = self._cached(ref.registry, scope)
        response = await self._head(ref, token)
        if response.status_code == 401:
            challenge = bearer_challenge(response.headers.get("www-authenticate", ""))
            if challenge is None:
                raise PermanentError(f"registry {ref.registry} refused access to {ref.repository}")
            token = await self._token(ref.registry, challenge, scope)
            response = await self._head(ref, token)
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        if response.status_code == 401:
            raise PermanentError(
                f"registry {ref.registry} refused the credentials for {ref.repository}"
            )
        raise classify_http(response.status_code, response.headers, "", f"registry {ref.registry}")

    async def _head(self, ref: ImageRef, token: str | None) -> httpx.Response:
        headers = {"Accept": ", ".join(MANIFEST_TYPES)}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        scheme = "http" if ref.registry in self._plain_http else "https"
        return await self._send("HEAD", ref.manifest_url(scheme), ref.registry, headers=headers)

    async def _token(self, registry: str, challenge: Mapping[str, str], scope: str) -> str:
        params = {"scope": challenge.get("scope") or scope}
        if challenge.get("service"):
            params["service"] = challenge["service"]
        auth = None
        if registry in self._credentials:
            username, password = self._credentials[registry]
            auth = httpx.BasicAuth(username, password.reveal())
        response = await self._send("GET", challenge["realm"], registry, params=params, auth=auth)
        if response.status_code in (401, 403):
            raise PermanentError(f"registry {registry} refused the credentials for a token")
        if response.status_code != 200:
            raise classify_http(response.status_code, response.headers, "", f"{registry} token")
        try:
            body = response.json()
            token = str(body.get("token") or body.get("access_token") or "")
            lifetime = float(body.get("expires_in") or TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError):
            token, lifetime = "", 0.0
        if not token:
            raise TemporaryError(f"registry {registry} answered without a token")
        # Refresh a little early: a token that expires in flight costs a failed request.
        self._tokens[registry, scope] = (token, self._clock() + max(0.0, lifetime - 10))
        return token

    def _cached(self, registry: str, scope: str) -> str | None:
        token, expires = self._tokens.get((registry, scope), ("", 0.0))
        return token if token and self._clock() < expires else None

    async def _send(self, method: str, url: str, registry: str, **kwargs: object) -> httpx.Response:
        try:
            return await self._client.request(method, url, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            raise TemporaryError(f"registry {registry} unreachable: {type(exc).__name__}") from None
