"""A local fake of a Docker Registry HTTP API v2 that demands the bearer-token flow.

`HEAD /v2/<name>/manifests/<reference>` without a token is answered `401` with
`WWW-Authenticate: Bearer realm=...,service=...,scope=...`; `GET /token` hands out a token
for that scope to a client with the right Basic credentials (and refuses anyone else); a
manifest request with the token answers 200 when the image was pushed, 404 otherwise.
https://distribution.github.io/distribution/spec/api/#existing-manifests
https://distribution.github.io/distribution/spec/auth/token/
A Starlette app served by uvicorn in a thread, on 127.0.0.1:<random port>.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conftest import free_port

SERVICE = "fake-registry"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    authorization: str  # "bearer", "basic" or "none": never the credential itself
    status: int


class FakeRegistry:
    def __init__(self, username: str = "ci-puller", password: str = "registry-pass-7c1e") -> None:
        self.username = username
        self.password = password
        self.port = free_port()
        self.seen: list[Seen] = []
        self._images: set[tuple[str, str]] = set()
        self._tokens: dict[str, str] = {}  # token -> scope
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def push(self, name: str, tag: str) -> None:
        with self._lock:
            self._images.add((name, tag))

    # -- the app -------------------------------------------------------------------------

    def _record(self, request: Request, status: int) -> None:
        header = request.headers.get("authorization", "")
        kind = header.split(" ", 1)[0].lower() if header else "none"
        with self._lock:
            self.seen.append(Seen(request.method, request.url.path, kind, status))

    async def _manifest(self, request: Request) -> Response:
        name, reference = request.path_params["name"], request.path_params["reference"]
        scope = f"repository:{name}:pull"
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self._lock:
            granted = scheme.lower() == "bearer" and self._tokens.get(token) == scope
            found = (name, reference) in self._images
        if not granted:
            challenge = (
                f'Bearer realm="http://{self.host}/token",service="{SERVICE}",scope="{scope}"'
            )
            self._record(request, 401)
            body = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
            return JSONResponse(body, 401, headers={"WWW-Authenticate": challenge})
        if not found:
            self._record(request, 404)
            body = {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}
            return JSONResponse(body, 404)
        if OCI_INDEX not in request.headers.get("accept", ""):
            self._record(request, 404)  # as a registry holding only an index answers
            return JSONResponse({"errors": [{"code": "MANIFEST_UNKNOWN"}]}, 404)
        self._record(request, 200)
        digest = "sha256:" + hashlib.sha256(f"{name}:{reference}".encode()).hexdigest()
        return Response(
            b"",
            200,
            headers={"Content-Type": OCI_INDEX, "Docker-Content-Digest": digest},
        )

    async def _token(self, request: Request) -> Response:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        ok = scheme.lower() == "basic" and secrets.compare_digest(credential, expected)
        if not ok or request.query_params.get("service") != SERVICE:
            self._record(request, 401)
            return JSONResponse({"details": "incorrect username or password"}, 401)
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._tokens[token] = request.query_params.get("scope", "")
        self._record(request, 200)
        return JSONResponse({"token": token, "expires_in": 300, "issued_at": time.time()})

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> FakeRegistry:
        app = Starlette(
            routes=[
                Route(
                    "/v2/{name:path}/manifests/{reference}",
                    self._manifest,
                    methods=["GET", "HEAD"],
                ),
                Route("/token", self._token, methods=["GET"]),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake registry did not start")
            time.sleep(0.01)
        return self

    def _serve(self) -> None:
        assert self._server is not None
        asyncio.run(self._server.serve())

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
