"""From config, stored record and the host's truth to the provisioner's `Target` (pure)."""

from __future__ import annotations

import string
from collections.abc import Mapping

from bot import naming, sealed
from bot.config import Config, RepoConfig
from bot.errors import PermanentError
from bot.model import PullRequest, StagingKey, Target

IMAGE_FIELDS = ("sha", "short_sha", "branch", "number")


def image_for(template: str, pr: PullRequest) -> str:
    """Fill an image template such as `registry.example.com/shop:{sha}`.

    The template comes from the operator's config; the branch arrives as an inert value,
    slugified to what a Docker tag may hold.
    """
    values = {
        "sha": pr.head_sha,
        "short_sha": pr.head_sha[:7],
        "branch": naming.slugify(pr.branch, 128),
        "number": str(pr.number),
    }
    used = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    unknown = used - set(values)
    if unknown:
        raise PermanentError(f"image template {template!r} uses unknown {sorted(unknown)}")
    return template.format_map(values)


def build_target(
    config: Config,
    repo: RepoConfig,
    key: StagingKey,
    pr: PullRequest,
    redeploy_token: str = "",
    namespace: str = "",
    overrides: Mapping[str, str] | None = None,
    secret_overrides: Mapping[str, Mapping[str, str]] | None = None,
) -> Target:
    """Everything the provisioner needs for this staging at the request's current head.

    `namespace` is the one the staging already lives in, if any: a renamed repository
    keeps its staging's namespace rather than getting a second one.
    """
    base_domain = repo.base_domain or config.staging.base_domain
    image_template = repo.image or config.staging.image
    if not image_template and config.staging.provisioner != "command":  # programs may not need one
        raise PermanentError(
            f"no image configured for {pr.repo.full_name}: set staging.image or the "
            'repository\'s image in [[repos]], e.g. "registry.example.com/shop:{sha}"'
        )
    host = naming.hostname(key, pr.repo.full_name, base_domain)
    secret_key = config.staging.secret_key.reveal()
    try:
        secret_values = sealed.open_all(secret_key, secret_overrides or {})
    except sealed.Unreadable as exc:
        raise PermanentError(str(exc)) from None
    return Target(
        key=key,
        repo=pr.repo.full_name,
        number=pr.number,
        sha=pr.head_sha,
        branch=pr.branch,
        namespace=namespace
        or naming.namespace_name(config.kubernetes.namespace_prefix, key, pr.repo.full_name),
        name=naming.staging_name(key, pr.repo.full_name),
        hostname=host,
        url=f"{config.staging.url_scheme}://{host}/",
        image=image_for(image_template, pr) if image_template else "",
        manifests=repo.manifests or config.kubernetes.manifests,
        instance=config.kubernetes.instance,
        db_password=naming.derive_secret(config.staging.secret_key.reveal(), key, "database"),
        tls_secret=config.staging.tls_secret,
        ingress_class=config.staging.ingress_class,
        cert_manager_issuer=config.staging.cert_manager_issuer,
        redeploy_token=redeploy_token,
        overrides=tuple(sorted((overrides or {}).items())),
        secret_overrides=tuple(sorted(secret_values.items())),
        secret_checksum=sealed.checksum(secret_key, secret_values),
    )


def environment_name(config: Config, pr: PullRequest) -> str:
    """The host's environment for this request: GitHub `pr-12`, GitLab `review/mr-12`."""
    if pr.repo.host == "gitlab":
        return f"{config.gitlab.environment_prefix}{pr.number}"
    return f"{config.staging.environment_prefix}{pr.number}"
