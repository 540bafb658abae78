"""Who is calling: bearer tokens from the config, their roles, and dashboard sign-ins (pure).

Tokens are compared in constant time, every configured one each time, so neither the
answer's timing nor its content tells how much of a guess was right.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from bot.config import ROLES, ApiToken, Config

VIEWER, QA, OPERATOR = ROLES
NO_TOKENS = (
    "no API tokens are configured: add an [[api.tokens]] table (name, token, role) to the "
    "config, or set STAGINGBOT_API_TOKENS (see docs/api.md)"
)
BAD_TOKEN = "missing or invalid bearer token: send `Authorization: Bearer <token>`"  # noqa: S105
NEEDS_ROLE = "this needs the {role} role; the token {name!r} has the {has} role"


@dataclass(frozen=True)
class Caller:
    """A person or pipeline acting through the API or the dashboard."""

    name: str
    role: str
    via: str = "API"  # "API" or "dashboard": said in history
    proxied: bool = False  # signed in by the authentication proxy (bot.proxy_auth), not a token

    def may(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    @property
    def operator(self) -> bool:
        return self.may(OPERATOR)


def bearer(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, "" when there is none."""
    scheme, _, token = (header or "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def find(config: Config, presented: str) -> ApiToken | None:
    """The configured token equal to `presented`, compared in constant time with each."""
    found = None
    given = presented.encode("utf-8", "replace")
    for token in config.api.tokens:
        if hmac.compare_digest(given, token.token.reveal().encode()) and found is None:
            found = token
    return found if presented else None


def caller_of(config: Config, presented: str, via: str = "API") -> Caller | None:
    token = find(config, presented)
    return Caller(token.name, token.role, via) if token else None


def session_secret(config: Config) -> str:
    """The key signing dashboard session cookies, derived from `staging.secret_key` (a
    random one, so sessions end with the process, when none is configured)."""
    key = config.staging.secret_key.reveal() or secrets.token_hex(32)
    return hmac.new(key.encode(), b"stagingbot dashboard session", hashlib.sha256).hexdigest()


def fingerprint(config: Config, token: ApiToken) -> str:
    """What a session keeps instead of the token: changing or removing the token in the
    config ends every session signed in with it."""
    key = session_secret(config).encode()
    return hmac.new(key, token.token.reveal().encode(), hashlib.sha256).hexdigest()


def from_session(config: Config, name: object, mark: object) -> Caller | None:
    """The caller a dashboard session names, if its token is still configured as it was."""
    if not isinstance(name, str) or not isinstance(mark, str):
        return None
    for token in config.api.tokens:
        if token.name == name and hmac.compare_digest(fingerprint(config, token), mark):
            return Caller(token.name, token.role, "dashboard")
    return None
