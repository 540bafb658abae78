"""`[command]` and `staging.provisioner` in the config: every problem names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import CommandConfig, Config, ConfigError, load_config

REQUIRED = {
    "STAGINGBOT_GITHUB_WEBHOOK_SECRET": "whsec-test",
    "STAGINGBOT_GITHUB_TOKEN": "ghp-test",
    "STAGINGBOT_STAGING_SECRET_KEY": "key",
    "STAGINGBOT_STAGING_BASE_DOMAIN": "staging.example.com",
}


def load(tmp_path: Path, toml: str, **environ: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(toml)
    return load_config(str(path), {**REQUIRED, **environ})


def problems(tmp_path: Path, toml: str, **environ: str) -> str:
    with pytest.raises(ConfigError) as error:
        load(tmp_path, toml, **environ)
    return str(error.value)


def script(folder: Path, name: str, mode: int = 0o755) -> str:
    path = folder / name
    path.write_text("#!/bin/sh\n")
    path.chmod(mode)
    return f"./{name}"


COMMAND = '[staging]\nprovisioner = "command"\n'


def test_the_command_provisioner_reads_its_programs_with_defaults(tmp_path: Path) -> None:
    deploy, destroy = script(tmp_path, "deploy.sh"), script(tmp_path, "destroy.sh")
    toml = f'{COMMAND}[command]\ncreate = ["{deploy}", "--wait"]\ndestroy = ["{destroy}"]\n'

    config = load_config(
        None,
        {
            **REQUIRED,
            "STAGINGBOT_STAGING_PROVISIONER": "command",
            "STAGINGBOT_COMMAND_WORKDIR": str(tmp_path),
            "STAGINGBOT_COMMAND_CREATE": f"{deploy},--wait",
            "STAGINGBOT_COMMAND_DESTROY": destroy,
        },
    )
    from_file = load(tmp_path, toml + f'workdir = "{tmp_path}"\n')

    assert config.command == CommandConfig(
        create=(deploy, "--wait"), destroy=(destroy,), workdir=str(tmp_path)
    )
    assert from_file == config
    assert config.command.timeout == 600 and config.command.output_limit == 65536


def test_create_and_destroy_are_required_with_the_command_provisioner(tmp_path: Path) -> None:
    text = problems(tmp_path, COMMAND)

    assert 'command.create: required with staging.provisioner = "command"' in text
    assert 'command.destroy: required with staging.provisioner = "command"' in text


def test_the_kubernetes_provisioner_needs_no_programs(tmp_path: Path) -> None:
    load(tmp_path, '[command]\ntimeout = "5m"\n')


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ('create = "./deploy.sh"', 'command.create: expected a list of strings, got "./deploy.sh"'),
        ("check = [1]", "command.check: expected a list of strings, element 0 is 1"),
        ("destroy = []", "command.destroy: empty: an argv list needs at least the program"),
        ('info = ["  "]', "command.info: the program (element 0) is blank"),
        ('archive = ["./a.sh"]', "command.restore: archive and restore are set together"),
        ('env_prefix = "env_"', "command.env_prefix: expected upper-case A-Z, 0-9 and _"),
        ('env_prefix = "LD_"', "command.env_prefix: 'LD_' may not start with LD_"),
        ('env_prefix = "STAGING_"', "would let an override replace STAGING_STEP"),
        ('pass_env = ["A-B"]', "command.pass_env[0]: 'A-B' is not a variable name"),
        ("timeout = 0", "command.timeout: expected at least 1 s, got 0 s"),
        ("output_limit = 10", "command.output_limit: expected 1024..16777216 bytes, got 10"),
        ('timeut = "1m"', "command.timeut: unknown key (did you mean command.timeout?)"),
    ],
)
def test_a_wrong_command_setting_names_the_key(tmp_path: Path, setting: str, expected: str) -> None:
    assert expected in problems(tmp_path, f"[command]\n{setting}\n")


def test_an_unknown_provisioner_is_an_error(tmp_path: Path) -> None:
    text = problems(tmp_path, '[staging]\nprovisioner = "helm"\n')

    assert 'staging.provisioner: expected one of kubernetes, command, got "helm"' in text


def test_program_paths_are_checked_at_start_up_relative_to_workdir(tmp_path: Path) -> None:
    script(tmp_path, "not-executable.sh", 0o644)
    toml = (
        f'{COMMAND}[command]\nworkdir = "{tmp_path}"\n'
        'create = ["./missing.sh"]\ndestroy = ["./not-executable.sh"]\ncheck = ["kubectl"]\n'
    )

    text = problems(tmp_path, toml)

    assert f"command.create: ./missing.sh does not exist (looked in {tmp_path})" in text
    assert "command.destroy: ./not-executable.sh is not executable" in text
    assert "command.check" not in text  # a bare name is looked up on PATH when it runs


def test_a_missing_workdir_is_an_error(tmp_path: Path) -> None:
    toml = f'{COMMAND}[command]\nworkdir = "{tmp_path}/nope"\ncreate = ["a"]\ndestroy = ["b"]\n'

    assert f"command.workdir: {tmp_path}/nope does not exist" in problems(tmp_path, toml)


def test_the_image_is_optional_with_the_command_provisioner(tmp_path: Path) -> None:
    toml = f'{COMMAND}[command]\ncreate = ["true"]\ndestroy = ["true"]\n'

    config = load(tmp_path, toml)

    assert config.staging.image == ""
