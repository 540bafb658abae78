"""The dashboard: server-rendered pages listing stagings, one page per staging, actions.

Sign-in is with an API token, kept as the token's name and a fingerprint (never the token)
in a signed, HttpOnly, SameSite=Lax session cookie; every form carries a CSRF token. The
pages show what the API shows (`bot.stagings`) and act through the same path
(`bot.steering`). Viewers see no buttons. Little JavaScript: none.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from redis.exceptions import RedisError
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from bot import commands, proxy_auth, stagings, sweep_summary, tokens
from bot.config import Config
from bot.model import Phase
from bot.steering import ACTIONS, NOT_A_DURATION, QA_ACTIONS, Refused, Steering
from bot.tokens import Caller

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
REFRESH_SECONDS = 15
SORTS = {
    "updated": (lambda item: -(item["updated_at"] or 0)),
    "repo": (lambda item: (item["repo"].lower(), item["number"])),
    "state": (lambda item: (item["state"], item["repo"].lower(), item["number"])),
    "author": (lambda item: (item["author"].lower(), item["repo"].lower())),
    "branch": (lambda item: (item["branch"].lower(), item["repo"].lower())),
}
_PATH = re.compile(r"(?P<ref>[^/]+?:.+?[#!]\d+)(?:/(?P<tail>.*))?", re.DOTALL)
BAD_CSRF = "the form's CSRF token is missing or wrong: reload the page and try again"
DESTROY_UNCONFIRMED = "tick the confirmation box to destroy the staging"
REDIS_DOWN = "the state store (Redis) is unavailable: try again in a moment"


def middleware(config: Config) -> list[Middleware]:
    return [
        Middleware(
            SessionMiddleware,
            secret_key=tokens.session_secret(config),
            session_cookie="stagingbot_session",
            max_age=int(config.dashboard.session_max_age),
            same_site="lax",
            https_only=config.dashboard.secure_cookie,
        )
    ]


def signed_in(request: Request) -> Caller | None:
    """The person the authentication proxy names (when the request came through it), else
    the one this session signed in with a token."""
    user, role = proxy_identity(request)
    if user and role:
        return Caller(user, role, "dashboard", proxied=True)
    session = request.session
    return tokens.from_session(request.app.state.config, session.get("name"), session.get("mark"))


def proxy_identity(request: Request) -> tuple[str, str]:
    """`(user, role)` from the proxy's header, trusted only from a configured proxy address
    (the connection's own peer, never a forwarded-for header)."""
    dashboard = request.app.state.config.dashboard
    if not dashboard.proxy_user_header:
        return "", ""
    client = request.scope.get("client")
    peer = client[0] if client else None
    values = request.headers.getlist(dashboard.proxy_user_header)
    return proxy_auth.identify(dashboard, peer, values)


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


async def checked_form(request: Request) -> dict[str, str] | None:
    """The posted form, or None when its CSRF token is not this session's."""
    form = await request.form()
    given, expected = form.get("csrf"), request.session.get("csrf")
    if not isinstance(given, str) or not isinstance(expected, str):
        return None
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return None
    return {key: value for key, value in form.items() if isinstance(value, str)}


def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    caller = signed_in(request)
    flash = request.session.pop("flash", None)
    base = {"caller": caller, "csrf": csrf_token(request), "flash": flash, "now": time.time()}
    base["offline"] = request.app.state.config.offline
    return TEMPLATES.TemplateResponse(request, name, {**base, **context}, status_code=status)


def refused(request: Request, status: int, message: str) -> Response:
    return page(request, "error.html", status, message=message)


def to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def link(ref: str) -> str:
    return "/stagings/" + quote(ref, safe="")


def commit_url(item: dict[str, Any]) -> str:
    """The commit on its host, from the request's URL; "" when it cannot be told."""
    pr, sha = item.get("pr_url") or "", item.get("sha") or ""
    if not pr or not sha:
        return ""
    if item.get("host") == "github":
        return f"{pr}/commits/{sha}"
    project, found, _ = pr.partition("/-/merge_requests/")
    return f"{project}/-/commit/{sha}" if found else ""


def query(request: Request, **changes: str) -> str:
    """The list's query string with some parameters changed (sort links keep the filters)."""
    params = {**request.query_params, **changes}
    return urlencode({k: v for k, v in params.items() if v})


TEMPLATES.env.globals.update(link=link, commit_url=commit_url)


async def index(request: Request) -> Response:
    caller = signed_in(request)
    if caller is None:
        return to_login(request)
    params = request.query_params
    q, state, repo = params.get("q", ""), params.get("state", ""), params.get("repo", "")
    sort = params.get("sort", "updated") if params.get("sort") in SORTS else "updated"
    try:
        everything = [item for _, item in await stagings.load_all(request.app.state.store)]
        prefix = config_of(request).redis.key_prefix
        swept = await sweep_summary.load(request.app.state.redis, prefix)
    except RedisError:
        return refused(request, 503, REDIS_DOWN)
    shown = sorted(
        (item for item in everything if stagings.matches(item, "", repo, state, q)),
        key=SORTS[sort],
    )
    archived = [item for item in shown if item["state"] == Phase.ARCHIVED]
    details = caller.operator or config_of(request).dashboard.show_details
    return page(
        request,
        "list.html",
        active=[item for item in shown if item["state"] != Phase.ARCHIVED],
        archived=archived,
        total=len(everything),
        states=stagings.states(everything),
        repos=sorted({item["repo"] for item in everything}, key=str.lower),
        q=q,
        state=state,
        repo=repo,
        sort=sort,
        sorts=list(SORTS),
        refresh=REFRESH_SECONDS,
        query=lambda **changes: query(request, **changes),
        orphans=sweep_summary.orphans(swept),
        sweep_failed=bool((swept or {}).get("failed")),
        # Details (namespaces, the hosts' error texts) as for a staging's failure details.
        sweep_problems=(swept or {}).get("problems") or [] if details else [],
        show_namespaces=details,
    )


def config_of(request: Request) -> Config:
    config: Config = request.app.state.config
    return config


async def staging(request: Request) -> Response:
    caller = signed_in(request)
    if caller is None:
        return to_login(request) if request.method == "GET" else refused(request, 401, "sign in")
    match = _PATH.fullmatch(request.path_params["rest"])
    if match is None:
        return refused(request, 404, "no such staging")
    ref, tail = match["ref"], match["tail"]
    try:
        record = await stagings.resolve(request.app.state.store, ref)
        if record is None:
            return refused(request, 404, f"no staging {ref}")
        if request.method == "GET" and tail is None:
            return await _detail(request, record, caller)
        if request.method == "POST" and tail is not None:
            return await _post(request, record, caller, tail)
    except RedisError:
        return refused(request, 503, REDIS_DOWN)
    return refused(request, 405 if tail is None or tail in ACTIONS else 404, "not here")


async def _detail(request: Request, record: Any, caller: Caller) -> Response:
    history = await request.app.state.store.history(record.key)
    config: Config = request.app.state.config
    view = stagings.detail(record, history, config, operator=caller.operator)
    return page(request, "detail.html", staging=view, secret_keys=config.commands.secret_keys)


async def _post(request: Request, record: Any, caller: Caller, tail: str) -> Response:
    form = await checked_form(request)
    if form is None:
        return refused(request, 403, BAD_CSRF)
    if tail in QA_ACTIONS:
        return await _sign_off(request, record, caller, tail, form.get("note", ""))
    if not caller.operator:
        return refused(request, 403, f"this needs the operator role; you are a {caller.role}")
    state = request.app.state
    steering = Steering(state.store, state.redis, state.config)
    ref = str(stagings.ref_of(record))
    try:
        if tail in ACTIONS:
            if tail == "destroy" and form.get("confirm") != "yes":
                raise Refused(400, DESTROY_UNCONFIRMED)
            duration = extend_for(form) if tail == "extend" else None
            decision = await steering.act(record.key, tail, caller, duration=duration)
            message = f"{tail}: accepted, the staging is being updated"
            if tail == "extend":
                message = f"{tail}: {decision.result}"
        elif tail == "overrides":
            key = form.get("key", "").strip()
            await steering.override(record.key, key, form.get("value", ""), caller)
            secret = key in state.config.commands.secret_keys
            message = f"{key} set{' (secret)' if secret else ''}: the staging restarts with it"
        elif tail == "overrides/delete":
            key = form.get("key", "")
            await steering.override(record.key, key, None, caller)
            message = f"{key} removed: the staging restarts without it"
        else:
            return refused(request, 404, "no such action")
    except Refused as exc:
        message = f"{tail.split('/')[0]}: {exc.reason}"
        request.session["flash"] = {"text": message, "error": True}
    else:
        request.session["flash"] = {"text": message, "error": False}
    return RedirectResponse(link(ref), status_code=303)


async def _sign_off(
    request: Request, record: Any, caller: Caller, action: str, note: str
) -> Response:
    """QA's sign-off: the qa and operator roles (viewers are shown no buttons)."""
    if not caller.may(tokens.QA):
        return refused(request, 403, f"this needs the qa or operator role; you are a {caller.role}")
    state = request.app.state
    steering = Steering(state.store, state.redis, state.config)
    try:
        await steering.sign_off(record.key, action, note, caller)
    except Refused as exc:
        request.session["flash"] = {"text": f"{action}: {exc.reason}", "error": True}
    else:
        text = f"{action}: recorded; staging/qa on the head commit follows in a moment"
        request.session["flash"] = {"text": text, "error": False}
    return RedirectResponse(link(str(stagings.ref_of(record))), status_code=303)


def extend_for(form: dict[str, str]) -> float | None:
    """The extend form's optional duration (`2d`, `12h`); None when left empty."""
    text = form.get("duration", "").strip()
    if not text:
        return None
    seconds = commands.parse_duration(text)
    if seconds is None:
        raise Refused(422, NOT_A_DURATION)
    return seconds


async def login(request: Request) -> Response:
    config: Config = request.app.state.config
    target = _safe_next(request.query_params.get("next", "/"))
    if request.method == "GET":
        user, _ = proxy_identity(request)  # signed in by the proxy, but given no role here
        return page(
            request,
            "login.html",
            next=target,
            configured=bool(config.api.tokens),
            proxy_user=user,
        )
    form = await checked_form(request)
    if form is None:
        return refused(request, 403, BAD_CSRF)
    token = tokens.find(config, form.get("token", "").strip())
    if token is None:
        request.session["flash"] = {"text": "that token is not valid", "error": True}
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    request.session.clear()  # a fresh session (and CSRF token) for the signed-in person
    request.session.update(name=token.name, mark=tokens.fingerprint(config, token))
    return RedirectResponse(target, status_code=303)


async def logout(request: Request) -> Response:
    if await checked_form(request) is None:
        return refused(request, 403, BAD_CSRF)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


def _safe_next(target: str) -> str:
    """Only a path on this site: never `//other.example` or a full URL."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def routes() -> list[BaseRoute]:
    return [
        Route("/", index, methods=["GET"]),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/stagings/{rest:path}", staging, methods=["GET", "POST"]),
    ]
