"""The JSON API seen from the command line: staging references, exit codes, an httpx client.

No token ever reaches a message: every text shown from the server or the network is
scrubbed of it first.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from bot import __version__


class Exit(enum.IntEnum):
    """The command line's exit codes (docs/cli.md)."""

    OK = 0
    SERVER = 1  # the server failed (5xx, 501) or could not be reached
    USAGE = 2  # bad arguments or configuration: nothing was sent
    AUTH = 3  # 401 / 403: no, wrong or too weak a token
    NOT_FOUND = 4  # 404: no such staging
    REFUSED = 5  # 400 / 409 / 422: the server refused the request as asked
    FAILED = 6  # --wait: the staging failed
    TIMEOUT = 7  # --wait: neither running nor failed before --timeout


class CliError(Exception):
    """A failure the command line reports in one line and turns into an exit code."""

    def __init__(self, code: Exit, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


BAD_REF = (
    "{ref!r} is not a staging: write github:owner/repo#12 or gitlab:group/project!12 "
    "(owner/repo#12 and group/project!12 also work)"
)
NO_URL = "no server: give --url or set STAGINGBOT_URL"
NO_TOKEN = "no token: give --token or set STAGINGBOT_TOKEN"  # noqa: S105 - a message
BAD_URL = "--url / STAGINGBOT_URL must be an http:// or https:// URL, got {url!r}"
UNREACHABLE = "cannot reach {url}: {problem}"
NOT_JSON = "the server at {url} answered {status} without JSON: is it a stagingbot?"
REDACTED = "****"

_REF = re.compile(
    r"(?:(?P<host>github|gitlab):)?(?P<repo>[^\s:#!]+/[^\s:#!]+)(?P<sep>[#!])(?P<n>\d+)"
)
_SEPARATOR = {"github": "#", "gitlab": "!"}
_EXIT_BY_STATUS = {
    400: Exit.REFUSED,
    401: Exit.AUTH,
    403: Exit.AUTH,
    404: Exit.NOT_FOUND,
    409: Exit.REFUSED,
    422: Exit.REFUSED,
}
_WORDS_BY_STATUS = {
    401: "not signed in",
    403: "not allowed",
    404: "not found",
    409: "conflict",
    422: "refused",
    501: "not implemented by this server",
}
TIMEOUT = 30.0


def parse_ref(text: str) -> str:
    """`github:owner/repo#12` or `gitlab:group/sub/project!12`; `#` alone means GitHub and
    `!` alone GitLab. Raises CliError(USAGE) for anything else."""
    match = _REF.fullmatch(text.strip())
    if match is None or int(match["n"]) < 1:
        raise CliError(Exit.USAGE, BAD_REF.format(ref=text))
    host = match["host"] or ("github" if match["sep"] == "#" else "gitlab")
    if _SEPARATOR[host] != match["sep"]:
        raise CliError(Exit.USAGE, BAD_REF.format(ref=text))
    return f"{host}:{match['repo']}{match['sep']}{int(match['n'])}"


def ref_path(ref: str) -> str:
    """The reference as one path segment: `/`, `:`, `#` and `!` percent-encoded."""
    return quote(ref, safe="")


def server(url: str | None, token: str | None) -> tuple[str, str]:
    """The server's base URL and the token, or CliError(USAGE) saying which is missing."""
    if not url:
        raise CliError(Exit.USAGE, NO_URL)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CliError(Exit.USAGE, BAD_URL.format(url=shown_url(url)))
    if not token:
        raise CliError(Exit.USAGE, NO_TOKEN)
    return url.rstrip("/"), token


def shown_url(url: str) -> str:
    """A URL fit to print: a password in it replaced."""
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:{REDACTED}@{parts.hostname or ''}"
        netloc += f":{parts.port}" if parts.port else ""
        return urlunsplit(parts._replace(netloc=netloc))
    return url


class Api:
    """One server, one token; every answer checked and mapped to an exit code."""

    def __init__(self, url: str, token: str, *, timeout: float = TIMEOUT) -> None:
        self.url = url
        self._token = token
        self._http = httpx.Client(
            base_url=url,
            timeout=timeout,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": f"stagingbot-cli/{__version__}",
            },
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def list(self, filters: Mapping[str, str]) -> dict[str, Any]:
        params = {name: value for name, value in filters.items() if value}
        return self._json("GET", "/api/stagings", params=params)

    def show(self, ref: str) -> dict[str, Any]:
        return self._json("GET", f"/api/stagings/{ref_path(ref)}")

    def act(self, ref: str, action: str, body: Mapping[str, str] | None = None) -> dict[str, Any]:
        return self._json("POST", f"/api/stagings/{ref_path(ref)}/{action}", json=body)

    def set_override(
        self, ref: str, key: str, value: str, *, secret: bool = False
    ) -> dict[str, Any]:
        path = f"/api/stagings/{ref_path(ref)}/overrides/{quote(key, safe='')}"
        body: dict[str, Any] = {"value": value, "secret": True} if secret else {"value": value}
        return self._json("PUT", path, json=body)

    def unset_override(self, ref: str, key: str) -> None:
        self._send("DELETE", f"/api/stagings/{ref_path(ref)}/overrides/{quote(key, safe='')}")

    def sweep(self) -> dict[str, Any]:
        return self._json("POST", "/api/sweep")

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._send(method, path, **kwargs)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            status = response.status_code
            raise CliError(Exit.SERVER, NOT_JSON.format(url=shown_url(self.url), status=status))
        return answer

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            problem = self.scrub(str(exc) or type(exc).__name__)
            raise CliError(
                Exit.SERVER, UNREACHABLE.format(url=shown_url(self.url), problem=problem)
            ) from None
        if response.is_success:
            return response
        raise CliError(_EXIT_BY_STATUS.get(response.status_code, Exit.SERVER), self._why(response))

    def _why(self, response: httpx.Response) -> str:
        """`HTTP 404 not found: unknown staging …`, from the server's `{"error": …}`."""
        status = response.status_code
        try:
            body = response.json()
            error = body.get("error") if isinstance(body, dict) else None
        except ValueError:
            error = None
        detail = str(error) if error else response.reason_phrase or "no reason given"
        words = _WORDS_BY_STATUS.get(status, "server error" if status >= 500 else "error")
        return self.scrub(f"HTTP {status} {words}: {detail[:500]}")

    def scrub(self, text: str) -> str:
        return text.replace(self._token, REDACTED) if self._token else text
