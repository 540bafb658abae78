"""Staging references and URLs as the command line reads and shows them."""

from __future__ import annotations

import pytest

from bot.client import CliError, Exit, parse_ref, ref_path, shown_url


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("github:octo/shop#12", "github:octo/shop#12"),
        ("gitlab:grp/sub/app!3", "gitlab:grp/sub/app!3"),
        ("octo/shop#12", "github:octo/shop#12"),
        ("grp/sub/app!3", "gitlab:grp/sub/app!3"),
        (" octo/shop#007 ", "github:octo/shop#7"),
    ],
)
def test_a_reference_names_its_host_and_a_short_one_is_told_by_its_separator(
    text: str, ref: str
) -> None:
    assert parse_ref(text) == ref


@pytest.mark.parametrize(
    "text",
    ["", "octo/shop", "shop#12", "github:octo/shop!12", "gitlab:grp/app#3", "bitbucket:a/b#1"],
)
def test_anything_else_is_a_usage_error_that_shows_both_forms(text: str) -> None:
    with pytest.raises(CliError) as error:
        parse_ref(text)
    assert error.value.code is Exit.USAGE
    assert "github:owner/repo#12" in error.value.message


def test_a_reference_is_one_path_segment() -> None:
    assert ref_path("gitlab:grp/sub/app!3") == "gitlab%3Agrp%2Fsub%2Fapp%213"


def test_a_password_in_a_url_is_masked_when_shown() -> None:
    assert (
        shown_url("https://ci:hunter2@bot.example.com:8443/x")
        == "https://ci:****@bot.example.com:8443/x"
    )
    assert shown_url("https://bot.example.com") == "https://bot.example.com"
