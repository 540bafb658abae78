"""Names a user's input reaches are DNS-1123 labels, short, stable and distinct."""

from __future__ import annotations

import re

import pytest

from bot.model import StagingKey
from bot.naming import derive_secret, hostname, namespace_name, slugify, staging_name

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@pytest.mark.parametrize(
    "text",
    [
        "Hello-World",
        "feature/ÜBER_cool.branch",
        "---",
        "",
        "a" * 200,
        "x; rm -rf /",
        "ünïcødé☃",
        "A--B",
    ],
)
def test_slugs_are_dns_labels(text: str) -> None:
    slug = slugify(text)
    assert DNS_LABEL.match(slug) and len(slug) <= 63


def test_cut_names_keep_different_inputs_apart() -> None:
    assert slugify("a" * 100 + "x") != slugify("a" * 100 + "y")
    assert len(slugify("a" * 100)) == 63


GITHUB_KEY = StagingKey("github", 186853002, 2)


def test_namespace_and_host_come_from_repository_name_and_number() -> None:
    namespace = namespace_name("staging-", GITHUB_KEY, "Codertocat/Hello-World")
    assert namespace == "staging-hello-world-pr-2-0085"
    assert hostname(GITHUB_KEY, "Codertocat/Hello-World", "Staging.Example.com.") == (
        "hello-world-pr-2-0085.staging.example.com"
    )


def test_same_repository_name_and_number_on_two_hosts_or_owners_never_collide() -> None:
    names = {
        namespace_name("staging-", StagingKey("github", 1, 12), "acme/app"),
        namespace_name("staging-", StagingKey("gitlab", 1, 12), "acme/app"),
        namespace_name("staging-", StagingKey("github", 2, 12), "other/app"),
    }
    assert len(names) == 3
    assert namespace_name("staging-", StagingKey("gitlab", 1, 12), "acme/app").startswith(
        "staging-app-mr-12-"
    )


def test_long_repository_names_still_fit_one_dns_label() -> None:
    key = StagingKey("github", 7, 123456)
    name = namespace_name("staging-", key, "org/" + "very-long-repository-name-" * 5)
    assert DNS_LABEL.match(name) and len(name) <= 63
    assert "-pr-123456-" in name
    assert len(staging_name(StagingKey("github", 7, 7), "org/" + "x" * 300)) <= 40


def test_derived_secrets_are_stable_and_differ_per_staging_and_key() -> None:
    one, two = StagingKey("github", 1, 2), StagingKey("github", 1, 3)
    assert derive_secret("k", one, "database") == derive_secret("k", one, "database")
    assert derive_secret("k", one, "database") != derive_secret("k", two, "database")
    assert derive_secret("k", one, "database") != derive_secret("other", one, "database")
