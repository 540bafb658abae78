"""Dashboard sign-in through an authentication proxy (oauth2-proxy) in front of the bot (pure).

When `dashboard.proxy_user_header` is set, a request whose *direct* peer address is in
`dashboard.proxy_addresses` is signed in as the user that header names, with the role the
`dashboard.proxy_*` lists give (or `proxy_default_role`). From any other address the
header is ignored: anyone can send it, only the proxy is trusted to have set it. The peer
is the TCP connection's (uvicorn runs with `proxy_headers` off, so `X-Forwarded-For`
never replaces it). The API does not take the header: it has no CSRF protection, as a
browser never sends a bearer token on its own, but it would send the proxy's cookie.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.config import ROLES

if TYPE_CHECKING:
    from bot.config import DashboardConfig

_HEADER = re.compile(r"[A-Za-z0-9-]+")  # an HTTP field name, as proxies send them
LISTS = {"viewer": "proxy_viewers", "qa": "proxy_qa", "operator": "proxy_operators"}
MAX_USER = 256


def problems(dashboard: DashboardConfig) -> list[str]:
    """What is wrong with the proxy keys, each naming its key (for `bot.config`)."""
    found = []
    header = dashboard.proxy_user_header
    if header and not _HEADER.fullmatch(header):
        found.append(
            f"dashboard.proxy_user_header: {header!r} is not an HTTP header name "
            "(e.g. X-Forwarded-User)"
        )
    if header and not dashboard.proxy_addresses:
        found.append(
            "dashboard.proxy_addresses: required with dashboard.proxy_user_header: the "
            'addresses the proxy connects from, e.g. ["10.0.0.0/8"] or ["127.0.0.1/32"]'
        )
    for index, text in enumerate(dashboard.proxy_addresses):
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            found.append(
                f"dashboard.proxy_addresses[{index}]: {text!r} is not an IP address or "
                "network (CIDR like 10.0.0.0/8)"
            )
    if dashboard.proxy_default_role not in ("", *ROLES):
        found.append(
            f'dashboard.proxy_default_role: expected one of {", ".join(ROLES)} or "" '
            f"(no access), got {dashboard.proxy_default_role!r}"
        )
    seen: dict[str, str] = {}
    for key in LISTS.values():
        for user in getattr(dashboard, key):
            first = seen.setdefault(user.casefold(), key)
            if first != key:
                found.append(f"dashboard.{key}: {user!r} is listed in dashboard.{first} too")
    return found


def trusted(dashboard: DashboardConfig, peer: str | None) -> bool:
    """Whether the direct peer address is one of the configured proxies."""
    if not dashboard.proxy_user_header or not peer:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:  # a Unix socket, or a test client's name
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    for text in dashboard.proxy_addresses:
        network = ipaddress.ip_network(text, strict=False)
        if address.version == network.version and address in network:
            return True
    return False


def role_of(dashboard: DashboardConfig, user: str) -> str:
    """The role the config gives `user` (case-insensitive), "" for none."""
    wanted = user.casefold()
    for role, key in LISTS.items():
        if any(name.casefold() == wanted for name in getattr(dashboard, key)):
            return role
    return dashboard.proxy_default_role


def user_of(values: Sequence[str]) -> str:
    """The user the proxy names, from every value the header came with: "" when it is
    absent, repeated (a client's own copy the proxy did not replace), or unusable."""
    if len(values) != 1:
        return ""
    value = values[0].strip()
    if not value or len(value) > MAX_USER or "," in value:
        return ""
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        return ""
    return value


def identify(
    dashboard: DashboardConfig, peer: str | None, values: Sequence[str]
) -> tuple[str, str]:
    """`(user, role)` of the person the proxy signed in, when the request came through it;
    ("", "") when it did not or names nobody, (user, "") when the config gives no role."""
    if not trusted(dashboard, peer):
        return "", ""
    user = user_of(values)
    return (user, role_of(dashboard, user)) if user else ("", "")
