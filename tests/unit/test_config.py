"""The config loader: defaults, file, environment overrides, validation that names the key."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from bot import _configparse
from bot.config import (
    SCHEMA,
    SECTIONS,
    ApiToken,
    CommandsConfig,
    Config,
    ConfigError,
    RepoConfig,
    Rules,
    Secret,
    StagingConfig,
    load_config,
    redacted,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"
DOCS = ROOT / "docs" / "configuration.md"

WEBHOOK_SECRET = "whsec-Zx81-never-print"
TOKEN = "ghp_tokenValue-never-print"
SECRET_KEY = "staging-key-never-print"
REQUIRED = {
    "STAGINGBOT_GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "STAGINGBOT_GITHUB_TOKEN": TOKEN,
    "STAGINGBOT_STAGING_SECRET_KEY": SECRET_KEY,
    "STAGINGBOT_STAGING_BASE_DOMAIN": "staging.example.com",
}
SECRETS = (WEBHOOK_SECRET, TOKEN, SECRET_KEY)


def write(tmp_path: Path, text: str, name: str = "config.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def error_of(path: str | None, environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ)
    return str(caught.value)


def env(**overrides: str) -> dict[str, str]:
    """The required values plus overrides; an empty value removes the variable."""
    merged = {**REQUIRED, **{f"STAGINGBOT_{k}": v for k, v in overrides.items()}}
    return {k: v for k, v in merged.items() if v != ""}


# --- defaults, file, environment --------------------------------------------------------


def test_without_a_file_every_key_but_the_required_ones_keeps_its_default() -> None:
    config = load_config(None, REQUIRED)

    assert config.server == Config().server
    assert config.redis == Config().redis
    assert config.kubernetes == Config().kubernetes
    assert config.log == Config().log
    assert config.repos == ()
    assert config.github.webhook_secret.reveal() == WEBHOOK_SECRET
    assert config.github.token.reveal() == TOKEN
    assert not config.github.app_mode
    assert config.staging.base_domain == "staging.example.com"
    assert config.staging.secret_key.reveal() == SECRET_KEY


def test_file_values_are_read_and_the_environment_overrides_them(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [server]
        port = 9000
        host = "0.0.0.0"
        [kubernetes]
        rollout_deadline = "15m"
        rollout_poll = 2
        [staging]
        base_domain = "file.example.com"
        image = "registry.example.com/shop:{short_sha}"
        """,
    )
    config = load_config(path, env(SERVER_PORT="9100", KUBERNETES_ROLLOUT_POLL="1.5"))

    assert config.server.host == "0.0.0.0"
    assert config.server.port == 9100
    assert config.kubernetes.rollout_deadline == 900.0
    assert config.kubernetes.rollout_poll == 1.5
    assert config.staging.base_domain == "staging.example.com"  # env beats file
    assert config.staging.image == "registry.example.com/shop:{short_sha}"


def test_the_file_path_comes_from_STAGINGBOT_CONFIG_when_none_is_given(tmp_path: Path) -> None:
    path = write(tmp_path, "[log]\nlevel = 'debug'\n")

    assert load_config(None, env(CONFIG=path)).log.level == "debug"
    assert load_config(None, env(CONFIG="")).log.level == "info"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("3h", 10800.0), ("14d", 1209600.0)],
)
def test_durations_take_seconds_or_a_number_with_a_unit(text: str, seconds: float) -> None:
    config = load_config(None, env(SERVER_DELIVERY_TTL=text))

    assert config.server.delivery_ttl == seconds


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("YES", True), ("1", True), ("false", False), ("no", False), ("0", False)],
)
def test_environment_booleans_accept_true_false_yes_no_1_0(text: str, value: bool) -> None:
    assert _configparse.from_env("bool", text) is value


def test_app_id_from_the_environment_becomes_an_integer(tmp_path: Path) -> None:
    key = write(tmp_path, "-----BEGIN PRIVATE KEY-----\n", "app.pem")
    config = load_config(
        None, env(GITHUB_TOKEN="", GITHUB_APP_ID="42", GITHUB_PRIVATE_KEY_FILE=key)
    )

    assert config.github.app_id == 42
    assert config.github.app_mode
    assert config.github.private_key_file == key


def test_a_secret_can_come_from_a_file_with_one_trailing_newline_dropped(tmp_path: Path) -> None:
    secret_file = write(tmp_path, "from-file\n\n", "webhook")
    environ = env(GITHUB_WEBHOOK_SECRET="", GITHUB_WEBHOOK_SECRET_FILE=secret_file)

    assert load_config(None, environ).github.webhook_secret.reveal() == "from-file\n"


def test_a_secret_file_variable_beats_the_config_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[staging]\nsecret_key = 'in-file'\n")
    secret_file = write(tmp_path, "mounted\r\n", "key")
    environ = env(STAGING_SECRET_KEY="", STAGING_SECRET_KEY_FILE=secret_file)

    assert load_config(path, environ).staging.secret_key.reveal() == "mounted"


def test_setting_a_secret_and_its_file_variable_is_an_error_naming_both(tmp_path: Path) -> None:
    secret_file = write(tmp_path, "x", "token")
    message = error_of(None, env(GITHUB_TOKEN_FILE=secret_file))

    assert message.startswith("github.token: ")
    assert "STAGINGBOT_GITHUB_TOKEN and STAGINGBOT_GITHUB_TOKEN_FILE" in message


def test_an_unreadable_secret_file_names_the_key_variable_and_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    message = error_of(None, env(STAGING_SECRET_KEY="", STAGING_SECRET_KEY_FILE=missing))

    assert message.startswith("staging.secret_key: cannot read ")
    assert missing in message and "STAGINGBOT_STAGING_SECRET_KEY_FILE" in message


def test_repos_come_from_json_in_the_environment_and_replace_the_files(tmp_path: Path) -> None:
    path = write(tmp_path, "[[repos]]\nhost = 'github'\nrepo = 'acme/old'\n")
    repos = [
        {"host": "github", "repo": "acme/shop", "image": "r.example.com/shop:{sha}"},
        {"host": "gitlab", "repo": "group/sub/project", "enabled": False},
    ]
    config = load_config(path, env(REPOS=json.dumps(repos)))

    assert config.repos == (
        RepoConfig(host="github", repo="acme/shop", image="r.example.com/shop:{sha}"),
        RepoConfig(host="gitlab", repo="group/sub/project", enabled=False),
    )
    assert config.repo("github", "ACME/Shop") == config.repos[0]
    assert config.repo("gitlab", "group/sub/project") is None  # disabled


def test_null_in_repos_json_leaves_an_optional_key_unset() -> None:
    repos = '[{"host": "github", "repo": "acme/shop", "image": null}]'

    assert load_config(None, env(REPOS=repos)).repos[0].image is None


def test_repos_json_that_does_not_parse_is_an_error() -> None:
    message = error_of(None, env(REPOS="[{host: github}]"))

    assert message.startswith("repos: STAGINGBOT_REPOS is not valid JSON")


def test_unrelated_stagingbot_variables_are_ignored() -> None:
    config = load_config(
        None,
        env(
            FOO="bar",
            SERVICE_HOST="10.0.0.7",  # Kubernetes service links for a Service "stagingbot"
            PORT="tcp://10.0.0.7:8080",
            PORT_8080_TCP_PORT="8080",
            GITHUB="x",
            SERVER_PORT_EXTRA="x",
            LOG_LEVEL_FILE="/nonexistent",  # only secrets have a _FILE variant
        ),
    )

    assert config.server.port == 8080
    assert config.log.level == "info"


# --- errors name the key ----------------------------------------------------------------


def test_an_unknown_key_is_an_error_suggesting_the_closest_one(tmp_path: Path) -> None:
    path = write(tmp_path, "[github]\nwebhok_secret = 'abc'\n")

    assert error_of(path, REQUIRED) == (
        "github.webhok_secret: unknown key (did you mean github.webhook_secret?)"
    )


def test_an_unknown_section_is_an_error_suggesting_the_closest_one(tmp_path: Path) -> None:
    path = write(tmp_path, "[sever]\nport = 1\n")

    assert error_of(path, REQUIRED) == "sever: unknown section (did you mean server?)"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[server]\nport = 'abc'", 'server.port: expected an integer, got "abc"'),
        ("[server]\nport = true", "server.port: expected an integer, got true"),
        ("[server]\ndelivery_ttl = '7 weeks'", "server.delivery_ttl: expected a number of"),
        ("[log]\nlevel = 3", "log.level: expected a string, got 3"),
        ("server = 3", "server: expected a table ([server])"),
    ],
)
def test_a_value_of_the_wrong_type_names_the_key(tmp_path: Path, toml: str, expected: str) -> None:
    assert error_of(write(tmp_path, toml), REQUIRED).startswith(expected)


def test_a_wrong_environment_value_names_the_key_and_the_variable() -> None:
    assert error_of(None, env(SERVER_PORT="abc")) == (
        'server.port: expected an integer, got "abc" (from STAGINGBOT_SERVER_PORT)'
    )


@pytest.mark.parametrize(
    "variable", ["GITHUB_WEBHOOK_SECRET", "STAGING_BASE_DOMAIN", "STAGING_SECRET_KEY"]
)
def test_a_missing_required_key_is_named(variable: str) -> None:
    section, key = variable.lower().split("_", 1)

    assert error_of(None, env(**{variable: ""})) == (
        f"{section}.{key}: required (set it in the file or as STAGINGBOT_{variable})"
    )


def test_a_github_app_and_a_token_together_are_an_error(tmp_path: Path) -> None:
    key = write(tmp_path, "pem", "app.pem")
    message = error_of(None, env(GITHUB_APP_ID="1", GITHUB_PRIVATE_KEY_FILE=key))

    assert "github.token" in message and "github.app_id" in message and "not both" in message


def test_neither_a_github_app_nor_a_token_is_an_error() -> None:
    message = error_of(None, env(GITHUB_TOKEN=""))

    assert message.startswith("github.token: required, or github.app_id with ")


def test_an_app_id_without_a_private_key_file_is_an_error() -> None:
    assert error_of(None, env(GITHUB_TOKEN="", GITHUB_APP_ID="7")) == (
        "github.private_key_file: required when github.app_id is set"
    )


def test_a_private_key_file_without_an_app_id_is_an_error(tmp_path: Path) -> None:
    key = write(tmp_path, "pem", "app.pem")

    assert error_of(None, env(GITHUB_TOKEN="", GITHUB_PRIVATE_KEY_FILE=key)) == (
        "github.app_id: required when github.private_key_file is set"
    )


def test_a_missing_private_key_file_names_the_key_and_the_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "app.pem")
    environ = env(GITHUB_TOKEN="", GITHUB_APP_ID="7", GITHUB_PRIVATE_KEY_FILE=missing)

    assert error_of(None, environ) == (
        f"github.private_key_file: {missing} does not exist or is not a file"
    )


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([{"host": "github", "repo": "a/b"}, {"host": "gh", "repo": "a/b"}], "repos[1].host"),
        ([{"host": "github", "repo": "a/b/c"}], 'repos[0].repo: expected "owner/name"'),
        ([{"host": "gitlab", "repo": "project"}], 'repos[0].repo: expected "group/project"'),
        ([{"host": "github"}], "repos[0].repo: required"),
        ([{"host": "github", "repo": "a/b", "branch": "x"}], "repos[0].branch: unknown key"),
        ([{"host": "github", "repo": "a/b", "enabled": "no"}], "repos[0].enabled: expected"),
        ([{"host": "github", "repo": "a/b", "base_domain": "A_B"}], "repos[0].base_domain"),
        (["acme/shop"], "repos[0]: expected a table"),
        ({"host": "github"}, "repos: expected a list of tables"),
        (
            [{"host": "github", "repo": "acme/shop"}, {"host": "github", "repo": "Acme/Shop"}],
            "repos[1].repo: duplicate of repos[0]",
        ),
    ],
)
def test_a_bad_repos_entry_names_its_index_and_key(entries: object, expected: str) -> None:
    message = error_of(None, env(REPOS=json.dumps(entries)))

    assert message.startswith(expected)
    assert message.endswith("(from STAGINGBOT_REPOS)")


def test_a_bad_repos_entry_in_the_file_names_its_index(tmp_path: Path) -> None:
    path = write(tmp_path, "[[repos]]\nhost = 'github'\nrepo = 'a/b'\n[[repos]]\nhost = 'x'\n")

    assert error_of(path, REQUIRED).splitlines() == [
        "repos[1].repo: required",
    ]


@pytest.mark.parametrize("image", ["r/shop:{tag}", "r/shop:{}", "r/shop:{sha!r}", "r/shop:{sha"])
def test_an_image_template_with_an_unknown_placeholder_is_an_error(image: str) -> None:
    assert error_of(None, env(STAGING_IMAGE=image)).startswith("staging.image: ")
    repos = json.dumps([{"host": "github", "repo": "a/b", "image": image}])
    assert error_of(None, env(REPOS=repos)).startswith("repos[0].image: ")


def test_an_image_template_may_use_every_documented_placeholder() -> None:
    image = "r.example.com/{branch}:{sha}-{short_sha}-{number}"

    assert load_config(None, env(STAGING_IMAGE=image)).staging.image == image


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("STAGING_BASE_DOMAIN", "Staging.Example.com", "staging.base_domain"),
        ("STAGING_BASE_DOMAIN", "staging.example.com.", "staging.base_domain"),
        ("STAGING_BASE_DOMAIN", "-bad.example.com", "staging.base_domain"),
        ("SERVER_PORT", "0", "server.port"),
        ("SERVER_PORT", "65536", "server.port"),
        ("SERVER_DELIVERY_TTL", "0s", "server.delivery_ttl"),
        ("REDIS_URL", "http://localhost:6379", "redis.url"),
        ("LOG_LEVEL", "verbose", "log.level"),
        ("LOG_FORMAT", "xml", "log.format"),
        ("STAGING_URL_SCHEME", "ftp", "staging.url_scheme"),
        ("GITHUB_API_URL", "api.github.com", "github.api_url"),
    ],
)
def test_a_value_outside_its_rules_names_the_key(variable: str, value: str, key: str) -> None:
    assert error_of(None, env(**{variable: value})).startswith(f"{key}: ")


@pytest.mark.parametrize("url", ["redis://r:6379/1", "rediss://r:6380/0", "unix:///run/r.sock"])
def test_redis_urls_may_use_tcp_tls_or_a_unix_socket(url: str) -> None:
    assert load_config(None, env(REDIS_URL=url)).redis.url == url


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 'x'\nhots = 'y'\n[log]\nlevel = 1\n")

    assert error_of(path, REQUIRED).splitlines() == [
        'server.port: expected an integer, got "x"',
        "server.hots: unknown key (did you mean server.host?)",
        "log.level: expected a string, got 1",
    ]


@pytest.mark.parametrize("text", ["[server\n", "port = = 1\n"])
def test_a_file_that_is_not_toml_is_an_error_naming_the_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)

    assert error_of(path, REQUIRED).startswith(f"config file {path}: invalid TOML")


def test_a_missing_config_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = str(tmp_path / "absent.toml")

    assert error_of(path, REQUIRED).startswith(f"config file {path}: ")


# --- which requests get a staging, and comment commands --------------------------------


def test_staging_rules_and_commands_have_defaults_that_give_every_request_a_staging() -> None:
    config = load_config(None, REQUIRED)

    assert config.commands == CommandsConfig(
        prefix="/staging", secret_keys=(), max_value_length=1024
    )
    assert config.rules(RepoConfig(host="github", repo="acme/shop")) == Rules(
        require_label="", skip_labels=frozenset(), skip_authors=frozenset(), drafts=True
    )


def test_staging_rules_and_commands_are_read_from_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [staging]
        require_label = "staging"
        skip_labels = ["no-staging", "docs-only"]
        skip_authors = ["dependabot[bot]"]
        drafts = false
        [commands]
        prefix = "/preview"
        secret_keys = ["DATABASE_PASSWORD", "_TOKEN2"]
        max_value_length = 65536
        """,
    )
    config = load_config(path, REQUIRED)

    assert config.staging.require_label == "staging"
    assert config.staging.skip_labels == ("no-staging", "docs-only")
    assert config.staging.skip_authors == ("dependabot[bot]",)
    assert config.staging.drafts is False
    assert config.commands == CommandsConfig("/preview", ("DATABASE_PASSWORD", "_TOKEN2"), 65536)


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("dependabot[bot],renovate[bot]", ("dependabot[bot]", "renovate[bot]")),
        (" dependabot[bot] , renovate[bot], ", ("dependabot[bot]", "renovate[bot]")),
        ("dependabot[bot]", ("dependabot[bot]",)),
        ("", ()),
    ],
)
def test_a_list_from_the_environment_is_comma_separated(text: str, items: tuple[str, ...]) -> None:
    environ = REQUIRED | {"STAGINGBOT_STAGING_SKIP_AUTHORS": text}

    assert load_config(None, environ).staging.skip_authors == items


def test_an_empty_list_in_the_environment_clears_the_files_list(tmp_path: Path) -> None:
    path = write(tmp_path, "[staging]\nskip_labels = ['wip']\n")
    environ = REQUIRED | {"STAGINGBOT_STAGING_SKIP_LABELS": ""}

    assert load_config(path, environ).staging.skip_labels == ()


def test_staging_rules_and_commands_are_overridden_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[staging]\ndrafts = true\n[commands]\nprefix = '/preview'\n")
    config = load_config(
        path,
        env(
            STAGING_REQUIRE_LABEL="staging",
            STAGING_SKIP_LABELS="no-staging,wip",
            STAGING_DRAFTS="no",
            COMMANDS_PREFIX="/env",
            COMMANDS_SECRET_KEYS="API_KEY,DB_PASSWORD",
            COMMANDS_MAX_VALUE_LENGTH="64",
        ),
    )

    assert config.staging.require_label == "staging"
    assert config.staging.skip_labels == ("no-staging", "wip")
    assert config.staging.drafts is False
    assert config.commands == CommandsConfig("/env", ("API_KEY", "DB_PASSWORD"), 64)


def test_label_names_and_logins_are_stored_casefolded(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [staging]
        require_label = "Needs-Staging"
        skip_labels = ["WIP", "Straße"]
        skip_authors = ["Dependabot[bot]"]
        [[repos]]
        host = "github"
        repo = "acme/shop"
        skip_labels = ["No-Staging"]
        """,
    )
    config = load_config(path, REQUIRED)

    assert config.staging.require_label == "needs-staging"
    assert config.staging.skip_labels == ("wip", "strasse")
    assert config.staging.skip_authors == ("dependabot[bot]",)
    assert config.repos[0].skip_labels == ("no-staging",)
    assert Config(staging=StagingConfig(skip_labels=("WIP",))).rules().skip_labels == {"wip"}


def test_a_repository_inherits_each_rule_it_does_not_set() -> None:
    repos = [
        {"host": "github", "repo": "acme/shop"},
        {"host": "github", "repo": "acme/docs", "skip_labels": ["Docs"], "drafts": True},
        {"host": "gitlab", "repo": "group/app", "require_label": "", "skip_authors": []},
        {"host": "gitlab", "repo": "group/api", "require_label": None, "drafts": None},
    ]
    environ = env(
        STAGING_REQUIRE_LABEL="staging",
        STAGING_SKIP_LABELS="wip",
        STAGING_SKIP_AUTHORS="renovate[bot]",
        STAGING_DRAFTS="false",
        REPOS=json.dumps(repos),
        GITLAB_TOKEN="glpat-x",
        GITLAB_WEBHOOK_SECRET="hook",
    )
    config = load_config(None, environ)
    shop, docs, app, api = (config.rules(repo) for repo in config.repos)

    everywhere = Rules("staging", frozenset({"wip"}), frozenset({"renovate[bot]"}), False)
    assert shop == everywhere == api == config.rules()
    assert docs == Rules("staging", frozenset({"docs"}), frozenset({"renovate[bot]"}), True)
    assert app == Rules("", frozenset({"wip"}), frozenset(), False)


def test_a_repository_may_set_its_own_max_active_in_place_of_the_per_repo_one(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        """
        [staging]
        max_active_per_repo = 3
        [[repos]]
        host = "github"
        repo = "acme/shop"
        max_active = 1
        [[repos]]
        host = "github"
        repo = "acme/docs"
        max_active = 0
        [[repos]]
        host = "github"
        repo = "acme/blog"
        """,
    )
    config = load_config(path, REQUIRED)

    assert [repo.max_active for repo in config.repos] == [1, 0, None]
    assert config.staging.max_active_per_repo == 3


def test_max_active_in_repos_json_is_read_and_null_leaves_it_unset() -> None:
    repos = [
        {"host": "github", "repo": "a/b", "max_active": 2},
        {"host": "github", "repo": "a/c", "max_active": None},
    ]
    config = load_config(None, env(REPOS=json.dumps(repos)))

    assert [repo.max_active for repo in config.repos] == [2, None]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("-1", "repos[0].max_active: expected at least 0, got -1"),
        ('"2"', 'repos[0].max_active: expected an integer, got "2"'),
        ("1.5", "repos[0].max_active: expected an integer, got 1.5"),
        ("true", "repos[0].max_active: expected an integer, got true"),
    ],
)
def test_a_wrong_max_active_in_a_repos_entry_names_the_key(
    tmp_path: Path, value: str, expected: str
) -> None:
    path = write(tmp_path, f"[[repos]]\nhost = 'github'\nrepo = 'a/b'\nmax_active = {value}\n")

    assert error_of(path, REQUIRED).splitlines() == [expected]


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            "[staging]\nskip_labels = 'wip'",
            'staging.skip_labels: expected a list of strings, got "wip"',
        ),
        (
            "[staging]\nskip_authors = ['dependabot[bot]', 3]",
            "staging.skip_authors: expected a list of strings, element 1 is 3",
        ),
        (
            "[commands]\nsecret_keys = [['API_KEY']]",
            'commands.secret_keys: expected a list of strings, element 0 is ["API_KEY"]',
        ),
        ("[staging]\ndrafts = 'no'", 'staging.drafts: expected true or false, got "no"'),
        ("[staging]\nrequire_label = ['a']", 'staging.require_label: expected a string, got ["a"]'),
        (
            "[commands]\nmax_value_length = '1k'",
            'commands.max_value_length: expected an integer, got "1k"',
        ),
        (
            "[[repos]]\nhost = 'github'\nrepo = 'a/b'\nskip_labels = [true]",
            "repos[0].skip_labels: expected a list of strings, element 0 is true",
        ),
        (
            "[[repos]]\nhost = 'github'\nrepo = 'a/b'\nskip_authors = 'x'",
            'repos[0].skip_authors: expected a list of strings, got "x"',
        ),
    ],
)
def test_a_list_or_rule_of_the_wrong_type_names_the_key_and_the_element(
    tmp_path: Path, toml: str, expected: str
) -> None:
    assert error_of(write(tmp_path, toml), REQUIRED) == expected


def test_a_list_element_of_the_wrong_type_in_repos_json_names_the_entry() -> None:
    repos = json.dumps([{"host": "github", "repo": "a/b", "skip_labels": ["wip", 7]}])

    assert error_of(None, env(REPOS=repos)) == (
        "repos[0].skip_labels: expected a list of strings, element 1 is 7 (from STAGINGBOT_REPOS)"
    )


@pytest.mark.parametrize("prefix", ["", "/staging deploy", " /staging", "/stag\ting"])
def test_a_command_prefix_must_be_one_word(tmp_path: Path, prefix: str) -> None:
    path = write(tmp_path, f"[commands]\nprefix = {json.dumps(prefix)}\n")

    assert error_of(path, REQUIRED).startswith(
        "commands.prefix: expected a non-empty word without spaces"
    )


@pytest.mark.parametrize("key", ["api_key", "1PASSWORD", "API-KEY", "API KEY", "ÄPI", ""])
def test_a_secret_key_that_is_not_a_variable_name_is_an_error_naming_its_index(
    tmp_path: Path, key: str
) -> None:
    path = write(tmp_path, f"[commands]\nsecret_keys = ['DB_PASSWORD', {json.dumps(key)}]\n")

    assert error_of(path, REQUIRED) == (
        f"commands.secret_keys[1]: {json.dumps(key)} is not a valid key name "
        "(upper-case A-Z, 0-9 and _, not starting with a digit)"
    )


@pytest.mark.parametrize("value", ["0", "65537", "-1"])
def test_max_value_length_must_be_between_1_and_65536(value: str) -> None:
    assert error_of(None, env(COMMANDS_MAX_VALUE_LENGTH=value)) == (
        f"commands.max_value_length: expected 1..65536, got {value}"
    )


def test_an_unknown_key_in_commands_suggests_the_closest_one(tmp_path: Path) -> None:
    path = write(tmp_path, "[commands]\nsecret_key = ['API_KEY']\n")

    assert error_of(path, REQUIRED) == (
        "commands.secret_key: unknown key (did you mean commands.secret_keys?)"
    )


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            "[staging]\nskip_labels = ['wip', ' ']",
            'staging.skip_labels[1]: expected a name, got " "',
        ),
        ("[staging]\nskip_authors = ['']", 'staging.skip_authors[0]: expected a name, got ""'),
        ("[staging]\nrequire_label = '  '", 'staging.require_label: expected a name, got "  "'),
        (
            "[[repos]]\nhost = 'github'\nrepo = 'a/b'\nskip_labels = ['']",
            'repos[0].skip_labels[0]: expected a name, got ""',
        ),
    ],
)
def test_an_empty_label_or_login_is_an_error(tmp_path: Path, toml: str, expected: str) -> None:
    assert error_of(write(tmp_path, toml), REQUIRED) == expected


def test_a_required_label_that_is_also_skipped_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [staging]
        require_label = "Staging"
        skip_labels = ["staging"]
        [[repos]]
        host = "github"
        repo = "acme/shop"
        require_label = "preview"
        [[repos]]
        host = "github"
        repo = "acme/docs"
        skip_labels = ["wip", "preview"]
        require_label = "preview"
        """,
    )

    assert error_of(path, REQUIRED).splitlines() == [
        'staging.require_label: "staging" is also a skip label, so no request could get a staging',
        'repos[1].require_label: "preview" is also a skip label, so no request could get a staging',
    ]


# --- secrets ----------------------------------------------------------------------------


def test_secrets_never_appear_in_repr_str_or_the_redacted_view() -> None:
    config = load_config(None, REQUIRED)
    shown = [repr(config), str(config), json.dumps(redacted(config))]

    for text in shown:
        for secret in SECRETS:
            assert secret not in text
    assert redacted(config)["github"]["webhook_secret"] == "**********"


def test_the_redacted_view_is_json_and_shows_unset_secrets_as_empty() -> None:
    config = load_config(None, env(REPOS='[{"host": "github", "repo": "a/b"}]'))
    view = json.loads(json.dumps(redacted(config)))

    assert view["github"]["app_id"] is None
    assert view["repos"] == [
        {"host": "github", "repo": "a/b", "manifests": None, "image": None}
        | {"base_domain": None, "enabled": True}
        | {"require_label": None, "skip_labels": None, "skip_authors": None, "drafts": None}
        | {"wait_for": None, "wait_for_image": None, "max_active": None}
    ]
    assert view["server"]["port"] == 8080
    assert view["staging"]["skip_labels"] == [] and view["commands"]["secret_keys"] == []
    assert set(view) == {f.name for f in fields(Config)}
    assert redacted(Config())["github"]["token"] == ""


@pytest.mark.parametrize(
    "toml",
    [
        "[github]\nwebhook_secret = 987654321\n",  # a number: "expected a string"
        f"[github]\nwebhok_secret = '{WEBHOOK_SECRET}'\n",  # a typo in the key
        f"[github]\nwebhook_secret = ['{WEBHOOK_SECRET}']\n",  # a list
        f"[staging]\nsecret_key = {{ value = '{SECRET_KEY}' }}\n",  # a table
        f"[[repos]]\nhost = 'github'\nrepo = 'a/b'\ntoken = '{TOKEN}'\n",
    ],
)
def test_errors_never_show_a_secret_value(tmp_path: Path, toml: str) -> None:
    message = error_of(write(tmp_path, toml), REQUIRED)

    for secret in (*SECRETS, "987654321"):
        assert secret not in message


def test_a_secret_of_the_wrong_type_says_what_was_expected_without_the_value(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "[github]\nwebhook_secret = 12345\n")

    assert error_of(path, REQUIRED) == "github.webhook_secret: expected a string"


# --- the example file and the docs document every key -----------------------------------

_HEADER = re.compile(r"^(?:# )?\[\[?([\w.]+)\]\]?\s*$")
_SETTING = re.compile(r"^(?:# )?(\w+) = ")


def documented_keys(text: str) -> dict[str, set[str]]:
    """section -> keys shown in the example, set or commented out (`# key = value`)."""
    keys: dict[str, set[str]] = {}
    section = ""
    for line in text.splitlines():
        if header := _HEADER.match(line):
            section = header.group(1)
        elif (setting := _SETTING.match(line)) and section:
            keys.setdefault(section, set()).add(setting.group(1))
    return keys


def schema_keys() -> dict[str, set[str]]:
    keys = {name: {f.name for f in fields(cls)} for name, cls in SECTIONS.items()}
    tokens = {f.name for f in fields(ApiToken)}
    return keys | {"repos": {f.name for f in fields(RepoConfig)}, "api.tokens": tokens}


def env_names() -> list[str]:
    return [f"STAGINGBOT_{s}_{k}".upper() for s in SECTIONS for k in schema_keys()[s]]


def test_the_example_file_loads_once_secrets_come_from_the_environment() -> None:
    secrets = {k: v for k, v in REQUIRED.items() if k != "STAGINGBOT_STAGING_BASE_DOMAIN"}
    config = load_config(str(EXAMPLE), secrets)

    assert config.repos == (RepoConfig(host="github", repo="acme/shop"),)
    assert config.server.delivery_ttl == Config().server.delivery_ttl
    assert config.kubernetes == Config().kubernetes


def test_the_example_file_documents_every_key_and_nothing_else() -> None:
    assert documented_keys(EXAMPLE.read_text()) == schema_keys()


def test_the_example_files_commented_settings_are_valid_toml() -> None:
    uncommented = re.sub(r"(?m)^# (\w+ = )", r"\1", EXAMPLE.read_text())

    assert tomllib.loads(uncommented)["github"]["app_id"] == 123456


def test_the_example_file_and_the_docs_name_every_environment_variable() -> None:
    example, docs = EXAMPLE.read_text(), DOCS.read_text()

    for name in env_names():
        assert name in example
        assert name in docs
    for section, key in (("github", "webhook_secret"), ("github", "token")):
        assert f"STAGINGBOT_{section}_{key}_FILE".upper() in example


def test_the_values_in_the_example_are_the_defaults() -> None:
    example = tomllib.loads(EXAMPLE.read_text())
    defaults = Config()
    examples_not_defaults = {("staging", "base_domain"), ("staging", "image")}

    for section in SECTIONS:
        for key, value in example[section].items():
            if (section, key) not in examples_not_defaults:
                converted = _configparse.from_toml(SCHEMA[section][key], value)
                assert converted == getattr(getattr(defaults, section), key), f"{section}.{key}"


def test_gitlab_repositories_need_gitlab_credentials_and_not_github_ones() -> None:
    repos = json.dumps([{"host": "gitlab", "repo": "group/sub/project"}])
    base = {
        "STAGINGBOT_STAGING_BASE_DOMAIN": "staging.example.com",
        "STAGINGBOT_STAGING_SECRET_KEY": "k",
    }
    with pytest.raises(ConfigError) as error:
        load_config(None, {**base, "STAGINGBOT_REPOS": repos})
    assert "gitlab.token: required" in str(error.value)
    assert "gitlab.webhook_secret: required" in str(error.value)
    assert "github." not in str(error.value)
    config = load_config(
        None,
        {
            **base,
            "STAGINGBOT_REPOS": repos,
            "STAGINGBOT_GITLAB_TOKEN": "glpat-secret-token",
            "STAGINGBOT_GITLAB_WEBHOOK_SECRET": "hook-secret",
            "STAGINGBOT_GITLAB_URL": "https://gitlab.example.com",
        },
    )
    assert config.gitlab.url == "https://gitlab.example.com"
    assert config.gitlab.token.reveal() == "glpat-secret-token"
    assert "glpat-secret-token" not in repr(config)


# --- API tokens ----------------------------------------------------------------------------

API_TOKEN = "tok-0123456789abcdef"


def test_api_tokens_are_read_from_the_file_with_masked_secrets(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
        [[api.tokens]]
        name = "ci"
        token = "{API_TOKEN}"
        role = "operator"

        [[api.tokens]]
        name = "qa-team"
        token = "{API_TOKEN}-qa"
        role = "qa"
        """
    )
    config = load_config(str(path), REQUIRED)

    assert [(t.name, t.role) for t in config.api.tokens] == [("ci", "operator"), ("qa-team", "qa")]
    assert config.api.tokens[0].token.reveal() == API_TOKEN
    assert API_TOKEN not in repr(config) and API_TOKEN not in json.dumps(redacted(config))


def test_api_tokens_from_the_environment_replace_the_files(tmp_path: Path) -> None:
    tokens = json.dumps([{"name": "env", "token": API_TOKEN, "role": "viewer"}])
    config = load_config(None, {**REQUIRED, "STAGINGBOT_API_TOKENS": tokens})
    assert config.api.tokens == (ApiToken("env", Secret(API_TOKEN), "viewer"),)

    file = tmp_path / "tokens.json"
    file.write_text(tokens + "\n")
    from_file = load_config(None, {**REQUIRED, "STAGINGBOT_API_TOKENS_FILE": str(file)})
    assert from_file.api == config.api


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (
            [{"name": "a", "token": API_TOKEN, "role": "admin"}],
            "api.tokens[0].role: expected one of",
        ),
        ([{"name": "a", "token": "short-tok", "role": "qa"}], "api.tokens[0].token: too short"),
        ([{"name": "a", "role": "qa"}], "api.tokens[0].token: required"),
        (
            [
                {"name": "a", "token": API_TOKEN, "role": "qa"},
                {"name": "a", "token": API_TOKEN + "x", "role": "qa"},
            ],
            'api.tokens[1].name: "a" is used by another token',
        ),
        (
            [
                {"name": "a", "token": API_TOKEN, "role": "qa"},
                {"name": "b", "token": API_TOKEN, "role": "qa"},
            ],
            "api.tokens[1].token: the same as another token's",
        ),
        ({"name": "a"}, "api.tokens: expected a list of tables"),
    ],
)
def test_a_bad_api_token_names_its_index_and_key_never_the_token(
    entries: object, expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(None, {**REQUIRED, "STAGINGBOT_API_TOKENS": json.dumps(entries)})
    assert expected in str(error.value)
    assert "(from STAGINGBOT_API_TOKENS)" in str(error.value)
    assert API_TOKEN not in str(error.value) and "short-tok" not in str(error.value)


def test_api_tokens_json_that_does_not_parse_never_shows_its_text() -> None:
    with pytest.raises(ConfigError) as error:
        load_config(None, {**REQUIRED, "STAGINGBOT_API_TOKENS": f'[{{"token": "{API_TOKEN}"'})
    assert str(error.value) == "api.tokens: STAGINGBOT_API_TOKENS is not valid JSON"


def test_an_unknown_key_under_api_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[api]\ntoken = 'x'\n")
    with pytest.raises(ConfigError, match=r"api.token: unknown key"):
        load_config(str(path), REQUIRED)
