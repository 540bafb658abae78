"""Which PyGithub client speaks for the bot: a GitHub App's installations, or a personal token.

Everything here runs in a worker thread (PyGithub is synchronous); errors are PyGithub's,
mapped by the caller.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from github import Auth, Github, GithubIntegration

from bot.config import ConfigError, GitHubConfig
from bot.model import RepoRef

# PyGithub's defaults sleep in the worker thread: 0.25 s between requests, 1 s between
# writes, and GithubRetry sleeps through 403 rate limits and 5xx. The job's own
# Retry(defer=...) decides when to try again, so every error surfaces at once.
NO_SLEEP: dict[str, Any] = {
    "retry": None,  # requests' HTTPAdapter(max_retries=0)
    "seconds_between_requests": None,
    "seconds_between_writes": None,
    "lazy": True,  # get_repo/get_issue/... build objects from ids without a GET
}
USER_AGENT = "stagingbot"


class GitHubClients:
    """The App's JWT client and one client per installation, or the personal token's client.

    App mode finds each repository's installation once — from the webhook that named it
    (`RepoRef.installation`), else with the App's JWT — and keeps one client per
    installation (PyGithub renews its token 20 s before expiry). A repository known only by
    its configured name (the sweep) is kept by name, so a sweep looks it up only once.
    """

    def __init__(self, config: GitHubConfig, *, timeout: int) -> None:
        self._lock = threading.Lock()  # guards the fields below
        self._discovery = threading.Lock()
        self._installations: dict[int, int] = {}  # repository id -> installation id
        self._by_name: dict[str, int] = {}  # lower-cased full name -> installation id
        self._refused: set[int] = set()  # installations that answered 401/404: no hint
        self._clients: dict[int, Github] = {}  # installation id -> client
        self._login: str | None = None
        settings: dict[str, Any] = {
            "base_url": config.api_url.rstrip("/"),
            "timeout": timeout,
            "user_agent": USER_AGENT,
            **NO_SLEEP,
        }
        self._integration: GithubIntegration | None = None
        self._token_client: Github | None = None
        if config.app_id is not None:
            auth = Auth.AppAuth(config.app_id, sign_func=_signer(config.private_key_file))
            self._integration = GithubIntegration(auth=auth, **settings)
        elif config.token:
            self._token_client = Github(auth=Auth.Token(config.token.reveal()), **settings)
        else:
            raise ConfigError("github: set app_id and private_key_file, or token")

    @property
    def app_mode(self) -> bool:
        return self._integration is not None

    def close(self) -> None:
        """Close the HTTP connections of every client."""
        for client in [*self._clients.values(), self._token_client]:
            if client is not None:
                client.close()
        if self._integration is not None:
            self._integration.close()

    def own_login(self) -> str:
        """The login the bot writes as, learnt once: `<app-slug>[bot]` or the token's user."""
        with self._lock:
            known = self._login
        if known is None:
            if self._integration is not None:
                # GET /app with the JWT: an installation token may not read /user.
                known = f"{self._integration.get_app().slug}[bot]"
            else:
                assert self._token_client is not None
                known = self._token_client.get_user().login  # GET /user
            with self._lock:
                self._login = known
        return known

    def for_repo(self, repo: RepoRef) -> tuple[int, Github]:
        """The installation id (0 for the personal token) and the client for `repo`."""
        if self._token_client is not None:
            return 0, self._token_client
        assert self._integration is not None
        installation_id, client = self._cached(repo)
        if client is not None:
            return installation_id or 0, client
        with self._discovery:  # concurrent first calls look the installation up once
            installation_id, client = self._cached(repo)
            if installation_id is None:
                with self._lock:
                    hinted = repo.installation not in self._refused
                if repo.installation and hinted:
                    installation_id = repo.installation  # a signed webhook named it
                else:
                    owner, _, name = repo.full_name.partition("/")
                    installation_id = self._integration.get_repo_installation(owner, name).id
            if client is None:
                client = self._integration.get_github_for_installation(installation_id)
            with self._lock:
                if repo.id:  # 0: known by the configured name only (the sweep)
                    self._installations[repo.id] = installation_id
                self._by_name[repo.full_name.lower()] = installation_id
                return installation_id, self._clients.setdefault(installation_id, client)

    def forget(self, repo: RepoRef) -> None:
        """Uninstalled or moved: look the repository's installation up again next time, and
        no longer trust a webhook's word for that installation."""
        with self._lock:
            installation_id = self._installations.pop(repo.id, None)
            by_name = self._by_name.pop(repo.full_name.lower(), None)
            kept = {*self._installations.values(), *self._by_name.values()}
            for dropped in (installation_id, by_name):
                if dropped is not None:
                    self._refused.add(dropped)
                    if dropped not in kept:
                        self._clients.pop(dropped, None)

    def _cached(self, repo: RepoRef) -> tuple[int | None, Github | None]:
        with self._lock:
            if repo.id:
                installation_id = self._installations.get(repo.id)
            else:
                installation_id = self._by_name.get(repo.full_name.lower())
            if installation_id is None:
                return None, None
            return installation_id, self._clients.get(installation_id)


def _signer(path: str) -> Callable[[dict[str, Any]], str]:
    """Sign App JWTs with the key read and parsed once (PyGithub re-parses it per JWT)."""
    if not path:
        raise ConfigError("github.private_key_file: required when github.app_id is set")
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(f"github.private_key_file: cannot read {path}: {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"github.private_key_file: {path} is not a PEM private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"github.private_key_file: {path} is not an RSA key")

    def sign(payload: dict[str, Any]) -> str:
        return jwt.encode(payload, key, algorithm="RS256")

    return sign
