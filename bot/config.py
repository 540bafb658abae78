"""Typed configuration: one TOML file plus environment overrides, validated once at start-up.

`load_config(path, environ)` is the way in; the environment is an argument, so tests never
touch `os.environ`. Every key is documented in `config.example.toml`, the override rules in
`docs/configuration.md`. Conversion machinery lives in `bot._configparse`.
"""

from __future__ import annotations

import json
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from functools import partial
from typing import Any, TypeVar

from bot import _configparse as parse
from bot._configparse import Invalid, Kind
from bot.provision import access, command_config
from bot.schedule import cron_fields


class Secret:
    """A configuration value that must never be printed: its repr and str are masked."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class ConfigError(Exception):
    """The configuration is invalid; the message names the key and never shows a secret."""


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 5 * 1024 * 1024
    delivery_ttl: float = 7 * 86400.0  # seconds a delivery id is remembered
    # "online": the Git hosts are asked and written to. "offline" (a local trial, set
    # explicitly, never inferred): signed payloads are trusted and reports go to the log
    # and the dashboard (bot/hosts/offline.py). Also settable as a top-level `mode` key.
    mode: str = "online"


@dataclass(frozen=True)
class RedisConfig:
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "stagingbot"  # every key and the arq queue live under this prefix


@dataclass(frozen=True)
class GitHubConfig:
    webhook_secret: Secret = field(default_factory=lambda: Secret(""))
    api_url: str = "https://api.github.com"
    app_id: int | None = None
    private_key_file: str = ""
    token: Secret = field(default_factory=lambda: Secret(""))
    check_name: str = "staging"

    @property
    def app_mode(self) -> bool:
        return self.app_id is not None


@dataclass(frozen=True)
class GitLabConfig:
    url: str = "https://gitlab.com"  # gitlab.com or a self-managed instance
    token: Secret = field(default_factory=lambda: Secret(""))
    webhook_secret: Secret = field(default_factory=lambda: Secret(""))
    status_name: str = "staging"  # commit status name on the MR's head commit
    environment_prefix: str = "review/mr-"  # GitLab environment, e.g. "review/mr-12"
    delete_environments: bool = False  # stop on close, and delete too when true


@dataclass(frozen=True)
class KubernetesConfig:
    kubeconfig: str = ""  # "": in-cluster when running in a pod, else KUBECONFIG / ~/.kube/config
    context: str = ""
    manifests: str = "manifests/staging"
    namespace_prefix: str = "staging-"
    instance: str = "default"  # value of the instance label: two bots in a cluster never collide
    # The bot's own namespace, where it keeps decisions that must outlive Redis (a person's
    # destroy): "" = the pod's own namespace (its service account says), else `default`.
    state_namespace: str = ""
    # Least privilege (manifests/bot/rbac.yaml): the ClusterRole the bot binds to its own
    # service account ("namespace/name") in each staging namespace it creates; "": none.
    staging_role: str = ""
    service_account: str = ""
    rollout_deadline: float = 600.0
    rollout_poll: float = 5.0


@dataclass(frozen=True)
class StagingConfig:
    base_domain: str = ""
    secret_key: Secret = field(default_factory=lambda: Secret(""))
    url_scheme: str = "https"
    image: str = ""  # e.g. "registry.example.com/shop:{sha}"
    ingress_class: str = ""
    tls_secret: str = ""  # wildcard certificate Secret (namespace/name) copied into each staging
    cert_manager_issuer: str = ""  # or: annotate the Ingress for cert-manager
    environment_prefix: str = "pr-"  # GitHub Deployment environment, e.g. "pr-12"
    provisioner: str = "kubernetes"  # or "command": the [command] programs (docs/provisioners.md)
    # Which requests get a staging. Labels and logins are stored casefolded: both hosts
    # compare label names case-insensitively, and logins are case-insensitive too.
    require_label: str = ""  # only requests carrying this label; "": every request
    skip_labels: tuple[str, ...] = ()
    skip_authors: tuple[str, ...] = ()  # e.g. "dependabot[bot]"
    drafts: bool = True  # whether draft requests get a staging
    # Life cycle (docs/lifecycle.md). Idle: no push, command or dashboard/API action for
    # idle_ttl archives the staging (0: never), after a warning idle_warning before.
    idle_ttl: float = 3 * 86400.0
    idle_warning: float = 86400.0
    archive_retention: float = 14 * 86400.0  # an archived staging is removed after this; 0: kept
    max_extend: float = 14 * 86400.0  # the longest `extend` accepts
    # A closed request's gone staging: its record and history are forgotten after this; 0: kept
    history_retention: float = 30 * 86400.0
    max_active: int = 0  # stagings deployed at once, the whole bot; 0: no limit
    max_active_per_repo: int = 0  # the same per repository; 0: no limit
    # The gate before a new head is deployed (README "Wait for the build"): check-run names
    # or commit-status contexts (GitHub), job names of the head's pipeline (GitLab) that
    # must have succeeded; and whether the rendered image must exist in its registry.
    wait_for: tuple[str, ...] = ()
    wait_for_image: bool = False

    def __post_init__(self) -> None:
        _casefold(self)


@dataclass(frozen=True)
class RepoConfig:
    host: str  # "github" or "gitlab"
    repo: str  # "acme/shop"
    manifests: str | None = None
    image: str | None = None
    base_domain: str | None = None
    enabled: bool = True
    # None: inherit the [staging] value (see Config.rules).
    require_label: str | None = None
    skip_labels: tuple[str, ...] | None = None
    skip_authors: tuple[str, ...] | None = None
    drafts: bool | None = None
    wait_for: tuple[str, ...] | None = None
    wait_for_image: bool | None = None
    # Stagings of this repository deployed at once, in place of staging.max_active_per_repo
    # (0: no limit of its own; staging.max_active still counts them).
    max_active: int | None = None

    def __post_init__(self) -> None:
        _casefold(self)


def _casefold(config: StagingConfig | RepoConfig) -> None:
    """Store label names and logins casefolded, however they were written or built."""
    if config.require_label is not None:
        object.__setattr__(config, "require_label", config.require_label.casefold())
    for name in ("skip_labels", "skip_authors"):
        names: tuple[str, ...] | None = getattr(config, name)
        if names is not None:
            object.__setattr__(config, name, tuple(text.casefold() for text in names))


@dataclass(frozen=True)
class Rules:
    """Which requests of one repository get a staging; every name casefolded."""

    require_label: str  # "": every request
    skip_labels: frozenset[str]
    skip_authors: frozenset[str]
    drafts: bool


@dataclass(frozen=True)
class Gate:
    """What must be ready before a new head of one repository is deployed."""

    wait_for: tuple[str, ...]  # check runs / statuses (GitHub), pipeline jobs (GitLab)
    wait_for_image: bool

    @property
    def active(self) -> bool:
        return bool(self.wait_for) or self.wait_for_image


@dataclass(frozen=True)
class RegistryConfig:
    """Credentials for the registry `staging.wait_for_image` asks (Docker Registry API v2)."""

    host: str = ""  # e.g. "registry.example.com" or "ghcr.io"; "": anonymous everywhere
    username: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))  # a password or a token
    # Registries spoken to over plain HTTP (a registry on localhost, as Docker allows).
    plain_http: tuple[str, ...] = ()


@dataclass(frozen=True)
class CommandsConfig:
    prefix: str = "/staging"  # a comment starting with this word talks to the bot
    secret_keys: tuple[str, ...] = ()  # override keys a (public) comment may never set
    max_value_length: int = 1024  # longest value `set KEY=VALUE` accepts


@dataclass(frozen=True)
class SweepConfig:
    # How often the sweep compares the cluster and the Git hosts with Redis; 0: never
    # (`stagingbot sweep` still runs one). At least a minute, dividing an hour or a day.
    interval: float = 300.0
    # Delete staging namespaces whose repository the bot no longer serves (removed from
    # [[repos]], or the host says it is gone); false: report them only.
    delete_orphans: bool = False


@dataclass(frozen=True)
class DashboardConfig:
    # false: only operators see namespaces and failure details (error output, reasons);
    # logs and internals can carry credentials that viewers must not read.
    show_details: bool = True
    secure_cookie: bool = False  # mark the session cookie Secure (the bot is served over HTTPS)
    session_max_age: float = 12 * 3600.0  # seconds a dashboard sign-in lasts
    # Sign-in through an authentication proxy (bot.proxy_auth): the header naming the user
    # ("" = off), the addresses the proxy connects from, and the roles of its users.
    proxy_user_header: str = ""  # e.g. "X-Forwarded-User" (oauth2-proxy)
    proxy_addresses: tuple[str, ...] = ()  # IPs or CIDRs: only these are trusted
    proxy_viewers: tuple[str, ...] = ()
    proxy_qa: tuple[str, ...] = ()
    proxy_operators: tuple[str, ...] = ()
    proxy_default_role: str = ""  # a user no list names: "" (no access), viewer, qa, operator


@dataclass(frozen=True)
class QaConfig:
    # Who may sign off with `/staging qa-pass` / `qa-fail`: logins, GitHub teams as
    # "org/team-slug", GitLab groups by full path. Empty: anyone with write access
    # (GitLab: Developer or higher). The API and dashboard use the qa/operator roles.
    allowed: tuple[str, ...] = ()
    # true: `staging/qa` is pending on every open request's head until someone signs off
    # (so a required check blocks from the start); false: it appears with the first sign-off.
    report_waiting: bool = False


ROLES = ("viewer", "qa", "operator")  # each role may do what the ones before it may


@dataclass(frozen=True)
class ApiToken:
    """A bearer token for the API, the dashboard's sign-in and the CLI."""

    name: str  # who acts: shown in history ("approved via API by ci")
    token: Secret
    role: str = "viewer"


@dataclass(frozen=True)
class ApiConfig:
    tokens: tuple[ApiToken, ...] = ()  # none: the API and the dashboard refuse everyone


@dataclass(frozen=True)
class CommandConfig:
    """The `command` provisioner's programs: argv lists run without a shell; None: not set."""

    create: tuple[str, ...] | None = None
    update: tuple[str, ...] | None = None  # None: create's
    archive: tuple[str, ...] | None = None
    restore: tuple[str, ...] | None = None
    check: tuple[str, ...] | None = None  # None: ready once applied
    destroy: tuple[str, ...] | None = None
    info: tuple[str, ...] | None = None  # prints `name,url` lines: extra links
    notify: tuple[str, ...] | None = None  # told every change of state
    timeout: float = 600.0
    workdir: str = ""  # "": the bot's working directory
    env_prefix: str = "STAGING_ENV_"  # overrides reach the programs as <prefix><KEY>
    pass_env: tuple[str, ...] = ()  # variables inherited besides PATH, HOME and LANG
    output_limit: int = 65536  # bytes of output kept per run
    # A folder where the bot keeps decisions that must outlive Redis (decisions.json);
    # "": kept in Redis only, so a Redis wipe forgets that a person destroyed a staging.
    state_dir: str = ""


@dataclass(frozen=True)
class MetricsConfig:
    # `stagingbot worker` serves its own /metrics on this port (on server.host); 0: it
    # serves none. The web app always serves /metrics; `stagingbot run` shares it.
    worker_port: int = 0


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "json"  # "json" or "text"


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    github: GitHubConfig = field(default_factory=GitHubConfig)
    gitlab: GitLabConfig = field(default_factory=GitLabConfig)
    kubernetes: KubernetesConfig = field(default_factory=KubernetesConfig)
    command: CommandConfig = field(default_factory=CommandConfig)
    staging: StagingConfig = field(default_factory=StagingConfig)
    commands: CommandsConfig = field(default_factory=CommandsConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    log: LogConfig = field(default_factory=LogConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    qa: QaConfig = field(default_factory=QaConfig)
    repos: tuple[RepoConfig, ...] = ()
    api: ApiConfig = field(default_factory=ApiConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)

    @property
    def offline(self) -> bool:
        """The local trial: no Git host is called; reports go to the log and the dashboard."""
        return self.server.mode == "offline"

    def repo(self, host: str, full_name: str) -> RepoConfig | None:
        """The enabled `[[repos]]` entry serving this repository, or None."""
        wanted = full_name.lower()
        for entry in self.repos:
            if entry.host == host and entry.repo.lower() == wanted and entry.enabled:
                return entry
        return None

    def rules(self, repo: RepoConfig | None = None) -> Rules:
        """The staging rules for a repository: its own values where set, else [staging]'s.

        None (no entry to look at) gives the [staging] rules alone.
        """
        staging = self.staging
        own = repo or _NO_OVERRIDES
        return Rules(
            require_label=_inherit(own.require_label, staging.require_label),
            skip_labels=frozenset(_inherit(own.skip_labels, staging.skip_labels)),
            skip_authors=frozenset(_inherit(own.skip_authors, staging.skip_authors)),
            drafts=_inherit(own.drafts, staging.drafts),
        )

    def gate(self, repo: RepoConfig | None = None) -> Gate:
        """What must be ready before a new head is deployed: the repository's own values
        where set, else [staging]'s."""
        own = repo or _NO_OVERRIDES
        return Gate(
            wait_for=_inherit(own.wait_for, self.staging.wait_for),
            wait_for_image=_inherit(own.wait_for_image, self.staging.wait_for_image),
        )


_NO_OVERRIDES = RepoConfig(host="", repo="")


T = TypeVar("T")


def _inherit(own: T | None, default: T) -> T:
    return default if own is None else own


# --- loading -----------------------------------------------------------------------------

CONFIG_ENV = "STAGINGBOT_CONFIG"
ENV_PREFIX = "STAGINGBOT_"
REPOS_ENV = "STAGINGBOT_REPOS"
TOKENS_ENV = "STAGINGBOT_API_TOKENS"
MIN_TOKEN_LENGTH = 16
MASK = "**********"
SECTIONS: dict[str, type[Any]] = {
    "server": ServerConfig,
    "redis": RedisConfig,
    "github": GitHubConfig,
    "gitlab": GitLabConfig,
    "kubernetes": KubernetesConfig,
    "command": CommandConfig,
    "staging": StagingConfig,
    "commands": CommandsConfig,
    "sweep": SweepConfig,
    "dashboard": DashboardConfig,
    "log": LogConfig,
    "metrics": MetricsConfig,
    "qa": QaConfig,
    "registry": RegistryConfig,
}
DURATIONS = frozenset(
    {
        ("server", "delivery_ttl"),
        ("kubernetes", "rollout_deadline"),
        ("kubernetes", "rollout_poll"),
        ("sweep", "interval"),
        ("command", "timeout"),
        ("dashboard", "session_max_age"),
        ("staging", "idle_ttl"),
        ("staging", "idle_warning"),
        ("staging", "archive_retention"),
        ("staging", "history_retention"),
        ("staging", "max_extend"),
    }
)
HOSTS = ("github", "gitlab")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "text")
URL_SCHEMES = ("http", "https")
PROVISIONERS = ("kubernetes", "command")
MODES = ("online", "offline")


def _kind(annotation: object, duration: bool) -> Kind:
    if annotation is float:
        return "duration" if duration else "float"
    if annotation == int | None:
        return "int?"
    if annotation == str | None:
        return "str?"
    if annotation == bool | None:
        return "bool?"
    if annotation == tuple[str, ...] | None:
        return "list?"
    simple: dict[object, Kind] = {
        str: "str",
        int: "int",
        bool: "bool",
        Secret: "secret",
        tuple[str, ...]: "list",
    }
    return simple[annotation]


def _kinds(cls: type[Any], section: str = "") -> dict[str, Kind]:
    hints = typing.get_type_hints(cls)
    return {f.name: _kind(hints[f.name], (section, f.name) in DURATIONS) for f in fields(cls)}


SCHEMA: parse.Schema = {name: _kinds(cls, name) for name, cls in SECTIONS.items()}
REPO_SCHEMA: dict[str, Kind] = _kinds(RepoConfig)
TOKEN_SCHEMA: dict[str, Kind] = _kinds(ApiToken)


def load_config(path: str | None, environ: Mapping[str, str]) -> Config:
    """The validated configuration from a TOML file (or none) and `STAGINGBOT_*` variables.

    `path` None means `$STAGINGBOT_CONFIG`, or no file at all when that is unset too.
    Raises ConfigError naming every wrong key, one problem per line.
    """
    path = path if path is not None else environ.get(CONFIG_ENV) or None
    try:
        document = parse.read_toml(path) if path else {}
    except Invalid as exc:
        raise ConfigError(str(exc)) from None
    problems: list[str] = []
    values = parse.convert_sections(document, SCHEMA, ("repos", "api", "mode"), problems)
    _top_level_mode(document, values, problems)
    repos = _repos(document.get("repos", []), "", problems)
    parse.apply_env(values, SCHEMA, environ, ENV_PREFIX, problems)
    if REPOS_ENV in environ:
        entries = parse.json_list(environ[REPOS_ENV], REPOS_ENV, problems)
        repos = _repos(entries, f" (from {REPOS_ENV})", problems)
    api = _api(document.get("api", {}), environ, problems)
    _raise_if(problems)
    sections = {name: _section(name, values[name]) for name in SECTIONS}
    config = Config(**sections, repos=repos, api=api)
    _raise_if(_validate(config))
    return config


def _top_level_mode(document: dict[str, object], values: parse.Values, problems: list[str]) -> None:
    """`mode = "offline"` before the first table means `[server] mode`; both must agree."""
    if "mode" not in document:
        return
    top = document["mode"]
    if not isinstance(top, str):
        problems.append(f"mode: expected a string, got {parse.show(top)}")
    elif values["server"].setdefault("mode", top) != top:
        problems.append(
            f"mode: {parse.show(top)} contradicts server.mode "
            f"{parse.show(values['server']['mode'])}; set it once"
        )


def _raise_if(problems: list[str]) -> None:
    if problems:
        raise ConfigError("\n".join(problems))


def _section(name: str, values: dict[str, object]) -> Any:
    secret = {key for key, kind in SCHEMA[name].items() if kind == "secret"}
    return SECTIONS[name](**{k: Secret(str(v)) if k in secret else v for k, v in values.items()})


def _repos(entries: object, origin: str, problems: list[str]) -> tuple[RepoConfig, ...]:
    """`[[repos]]` (or the JSON list in STAGINGBOT_REPOS) as RepoConfigs, each one checked."""
    repos: list[RepoConfig] = []
    seen: dict[tuple[str, str], int] = {}
    for index, values in parse.convert_list(
        "repos", entries, REPO_SCHEMA, ("host", "repo"), origin, problems
    ):
        repo = RepoConfig(**values)  # type: ignore[arg-type]  # keys and kinds checked
        problems.extend(f"{p}{origin}" for p in _repo_problems(f"repos[{index}]", repo))
        first = seen.setdefault((repo.host, repo.repo.lower()), index)
        if first != index:
            duplicate = f"duplicate of repos[{first}] ({repo.host} {repo.repo})"
            problems.append(f"repos[{index}].repo: {duplicate}{origin}")
        repos.append(repo)
    return tuple(repos)


def _api(table: object, environ: Mapping[str, str], problems: list[str]) -> ApiConfig:
    """`[[api.tokens]]`, or the JSON list in STAGINGBOT_API_TOKENS (or a file named by
    STAGINGBOT_API_TOKENS_FILE), which replaces the file's list. No message shows a token."""
    if not isinstance(table, dict) or set(table) - {"tokens"}:
        unknown = sorted(set(table) - {"tokens"}) if isinstance(table, dict) else []
        problems.append(f"api.{unknown[0]}: unknown key" if unknown else "api: expected a table")
        return ApiConfig()
    entries, origin = _token_entries(table.get("tokens", []), environ, problems)
    tokens: list[ApiToken] = []
    names: set[str] = set()
    secrets: set[str] = set()
    for index, values in parse.convert_list(
        "api.tokens", entries, TOKEN_SCHEMA, ("name", "token", "role"), origin, problems
    ):
        token = ApiToken(**{**values, "token": Secret(str(values["token"]))})  # type: ignore[arg-type]
        where = f"api.tokens[{index}]"
        problems.extend(f"{p}{origin}" for p in _token_problems(where, token, names, secrets))
        names.add(token.name)
        secrets.add(token.token.reveal())
        tokens.append(token)
    return ApiConfig(tuple(tokens))


def _token_entries(
    entries: object, environ: Mapping[str, str], problems: list[str]
) -> tuple[object, str]:
    """The token list to read, and where it came from (for messages)."""
    file_name = f"{TOKENS_ENV}_FILE"
    if TOKENS_ENV in environ and file_name in environ:
        problems.append(f"api.tokens: both {TOKENS_ENV} and {file_name} are set; use one")
        return [], ""
    name = TOKENS_ENV if TOKENS_ENV in environ else file_name if file_name in environ else ""
    if not name:
        return entries, ""
    try:
        text = parse.read_secret_file(environ[name]) if name == file_name else environ[name]
        return json.loads(text), f" (from {name})"
    except parse.Invalid as exc:
        problems.append(f"api.tokens: {exc} (from {name})")
    except (ValueError, RecursionError):  # a message could quote a token: say where, not what
        problems.append(f"api.tokens: {name} is not valid JSON")
    return [], ""


def _token_problems(where: str, token: ApiToken, names: set[str], secrets: set[str]) -> list[str]:
    problems = parse.run_checks(
        [
            (f"{where}.name", token.name, parse.check_not_blank),
            (f"{where}.role", token.role, partial(_one_of, ROLES)),
        ]
    )
    if token.name in names:
        problems.append(f"{where}.name: {parse.show(token.name)} is used by another token")
    if len(token.token.reveal()) < MIN_TOKEN_LENGTH:
        problems.append(
            f"{where}.token: too short, at least {MIN_TOKEN_LENGTH} characters "
            "(e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    elif token.token.reveal() in secrets:
        problems.append(f"{where}.token: the same as another token's")
    return problems


def _repo_problems(where: str, repo: RepoConfig) -> list[str]:
    checks: list[parse.Check] = [
        (f"{where}.host", repo.host, partial(_one_of, HOSTS)),
        (f"{where}.image", repo.image, parse.check_image_template),
        (f"{where}.base_domain", repo.base_domain, parse.check_dns_name),
        *_name_checks(where, repo),
    ]
    if repo.host in HOSTS:  # the repository's shape depends on its host
        checks.append((f"{where}.repo", repo.repo, partial(parse.check_repo_path, repo.host)))
    problems = parse.run_checks(checks)
    if repo.max_active is not None and repo.max_active < 0:
        problems.append(f"{where}.max_active: expected at least 0, got {repo.max_active}")
    return problems


def _validate(config: Config) -> list[str]:
    """Rules across keys, and values of the right type whose content is wrong."""
    staging, log, commands = config.staging, config.log, config.commands
    return (
        _required(config)
        + (_github_auth(config.github) if uses_github(config) and not config.offline else [])
        + _offline(config)
        + _ranges(config)
        + parse.run_checks(
            [
                ("staging.base_domain", staging.base_domain or None, parse.check_dns_name),
                ("staging.url_scheme", staging.url_scheme, partial(_one_of, URL_SCHEMES)),
                ("staging.provisioner", staging.provisioner, partial(_one_of, PROVISIONERS)),
                ("server.mode", config.server.mode, partial(_one_of, MODES)),
                ("staging.image", staging.image, parse.check_image_template),
                ("redis.url", config.redis.url, parse.check_redis_url),
                ("github.api_url", config.github.api_url, parse.check_http_url),
                ("gitlab.url", config.gitlab.url, parse.check_http_url),
                ("log.level", log.level, partial(_one_of, LOG_LEVELS)),
                ("log.format", log.format, partial(_one_of, LOG_FORMATS)),
                ("commands.prefix", config.commands.prefix, parse.check_command_prefix),
                *parse.each("commands.secret_keys", commands.secret_keys, parse.check_env_key),
                *parse.each("qa.allowed", config.qa.allowed, parse.check_not_blank),
                *_name_checks("staging", staging),
            ]
        )
        + _contradictions(config)
        + _gate_problems(config)
        + _sweep(config.sweep)
        + _state_namespace(config.kubernetes.state_namespace)
        + _proxy_problems(config)
        + _idle(config.staging)
        + command_config.problems(config.command, config.staging.provisioner)
        + access.problems(config.kubernetes.staging_role, config.kubernetes.service_account)
    )


def _name_checks(where: str, config: StagingConfig | RepoConfig) -> list[parse.Check]:
    """Label names and logins must say something; "" for require_label means "any request"."""
    return [
        (f"{where}.require_label", config.require_label or None, parse.check_not_blank),
        *parse.each(f"{where}.skip_labels", config.skip_labels, parse.check_not_blank),
        *parse.each(f"{where}.skip_authors", config.skip_authors, parse.check_not_blank),
    ]


def _contradictions(config: Config) -> list[str]:
    """A required label that is also a skip label would give no request a staging."""
    scopes: list[tuple[str, RepoConfig | None]] = [("staging", None)]
    scopes += [
        (f"repos[{index}]", repo)
        for index, repo in enumerate(config.repos)
        if repo.require_label is not None or repo.skip_labels is not None
    ]
    problems = []
    for where, repo in scopes:
        rules = config.rules(repo)
        if rules.require_label and rules.require_label in rules.skip_labels:
            label = parse.show(rules.require_label)
            problems.append(
                f"{where}.require_label: {label} is also a skip label, "
                "so no request could get a staging"
            )
    return problems


def _gate_problems(config: Config) -> list[str]:
    """Names that say something, and never the bot's own check (it would wait for itself)."""
    own = {config.github.check_name.casefold(), config.gitlab.status_name.casefold()}
    scopes = [("staging.wait_for", config.staging.wait_for)]
    scopes += [
        (f"repos[{index}].wait_for", repo.wait_for)
        for index, repo in enumerate(config.repos)
        if repo.wait_for is not None
    ]
    problems: list[str] = []
    for where, names in scopes:
        problems += parse.run_checks(parse.each(where, names, parse.check_not_blank))
        problems += [
            f"{where}: {parse.show(name)} is the bot's own check; the bot would wait for itself"
            for name in names
            if name.casefold() in own
        ]
    registry = config.registry
    if (registry.username or registry.password) and not registry.host:
        problems.append("registry.host: required when registry.username or password is set")
    if bool(registry.username) != bool(registry.password) and registry.host:
        missing = "password" if registry.username else "username"
        problems.append(f"registry.{missing}: required together with the other credential")
    return problems


def _proxy_problems(config: Config) -> list[str]:
    from bot import proxy_auth  # it reads ROLES from here: imported once this module is

    return proxy_auth.problems(config.dashboard)


def _sweep(sweep: SweepConfig) -> list[str]:
    # At least a minute: arq keeps a cron job's id busy for 60 s after each run anyway.
    if sweep.interval == 0 or (sweep.interval >= 60 and cron_fields(sweep.interval)):
        return []
    return [
        f"sweep.interval: expected 0 (off) or a duration of at least a minute that divides "
        f'an hour or a day, like "1m", "5m", "15m" or "1h"; got {sweep.interval:g} s'
    ]


def _state_namespace(name: str) -> list[str]:
    if not name or _DNS_LABEL.fullmatch(name):
        return []
    return [
        "kubernetes.state_namespace: expected a namespace name (lower-case a-z, 0-9 and -, "
        f'at most 63 characters), like "stagingbot"; got {name!r}'
    ]


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _idle(staging: StagingConfig) -> list[str]:
    """A warning as long as the idle time would come at once after every push."""
    if staging.idle_ttl > 0 and staging.idle_warning >= staging.idle_ttl:
        return [
            f"staging.idle_warning: must be shorter than staging.idle_ttl "
            f"({staging.idle_ttl:g} s), got {staging.idle_warning:g} s"
        ]
    return []


def _one_of(options: tuple[str, ...], text: str) -> None:
    parse.check_choice(text, options)


def uses_gitlab(config: Config) -> bool:
    """GitLab credentials are needed once a `[[repos]]` entry is on GitLab."""
    return any(repo.host == "gitlab" and repo.enabled for repo in config.repos)


def uses_github(config: Config) -> bool:
    """GitHub is the default host: needed unless every repository is on GitLab."""
    served = any(repo.host == "github" and repo.enabled for repo in config.repos)
    return served or not uses_gitlab(config)


def _required(config: Config) -> list[str]:
    required: dict[str, Secret | str] = {
        "staging.base_domain": config.staging.base_domain,
        "staging.secret_key": config.staging.secret_key,
    }
    if uses_github(config):
        required["github.webhook_secret"] = config.github.webhook_secret
    if uses_gitlab(config) and not config.offline:
        required["gitlab.token"] = config.gitlab.token
    if uses_gitlab(config):  # offline too: an unsigned delivery is never trusted
        required["gitlab.webhook_secret"] = config.gitlab.webhook_secret
    hint = "set it in the file or as {}"
    return [
        f"{key}: required ({hint.format(parse.env_name(ENV_PREFIX, *key.split('.')))})"
        for key, value in required.items()
        if not value
    ]


def _offline(config: Config) -> list[str]:
    """Offline mode never calls a host: credentials beside it mean a production config that
    says offline by mistake, which would trust every signed payload. Refuse, don't guess."""
    if not config.offline:
        return []
    github, gitlab = config.github, config.gitlab
    given = {
        "github.token": bool(github.token),
        "github.app_id": github.app_id is not None,
        "github.private_key_file": bool(github.private_key_file),
        "gitlab.token": bool(gitlab.token),
    }
    return [
        f'{key}: set, but mode is "offline", which never calls the Git host; remove it, '
        'or set mode = "online" (the default) to use it'
        for key, value in given.items()
        if value
    ]


def _github_auth(github: GitHubConfig) -> list[str]:
    """Exactly one way to authenticate: a GitHub App (id + private key) or a token."""
    app = github.app_id is not None or bool(github.private_key_file)
    if app and github.token:
        return [
            "github.token: set together with github.app_id/github.private_key_file; "
            "configure either a token or a GitHub App, not both"
        ]
    if not app and not github.token:
        return [
            "github.token: required, or github.app_id with github.private_key_file "
            "to act as a GitHub App"
        ]
    if not app:
        return []  # token mode
    if github.app_id is None:
        return ["github.app_id: required when github.private_key_file is set"]
    if not github.private_key_file:
        return ["github.private_key_file: required when github.app_id is set"]
    key_file = github.private_key_file  # checked now so a typo fails at start, not on first use
    if not os.path.isfile(key_file):
        return [f"github.private_key_file: {key_file} does not exist or is not a file"]
    if not os.access(key_file, os.R_OK):
        return [f"github.private_key_file: {key_file} is not readable"]
    return []


def _ranges(config: Config) -> list[str]:
    numbers: dict[str, tuple[float, float, float]] = {  # key: (value, lowest, highest)
        "server.port": (config.server.port, 1, 65535),
        "server.max_body_bytes": (config.server.max_body_bytes, 1, float("inf")),
        "server.delivery_ttl": (config.server.delivery_ttl, 1, float("inf")),
        "kubernetes.rollout_deadline": (config.kubernetes.rollout_deadline, 1, float("inf")),
        "kubernetes.rollout_poll": (config.kubernetes.rollout_poll, 0.1, float("inf")),
        "commands.max_value_length": (config.commands.max_value_length, 1, 65536),
        "dashboard.session_max_age": (config.dashboard.session_max_age, 60, float("inf")),
        "metrics.worker_port": (config.metrics.worker_port, 0, 65535),
        "staging.idle_ttl": (config.staging.idle_ttl, 0, float("inf")),
        "staging.idle_warning": (config.staging.idle_warning, 0, float("inf")),
        "staging.archive_retention": (config.staging.archive_retention, 0, float("inf")),
        "staging.history_retention": (config.staging.history_retention, 0, float("inf")),
        "staging.max_extend": (config.staging.max_extend, 60, float("inf")),
        "staging.max_active": (config.staging.max_active, 0, float("inf")),
        "staging.max_active_per_repo": (config.staging.max_active_per_repo, 0, float("inf")),
    }
    return [
        f"{key}: expected {f'at least {low:g}' if high == float('inf') else f'{low:g}..{high:g}'}"
        f", got {value:g}"
        for key, (value, low, high) in numbers.items()
        if not low <= value <= high
    ]


# --- showing -----------------------------------------------------------------------------


def redacted(config: Config) -> dict[str, Any]:
    """The effective configuration as JSON-able data, every set secret shown as "**********"."""
    return typing.cast(dict[str, Any], _plain(config))


def _plain(value: object) -> object:
    if isinstance(value, Secret):
        return MASK if value else ""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value
