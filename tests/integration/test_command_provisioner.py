"""The `command` provisioner runs the operator's programs: real processes, small scripts."""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.config import CommandConfig, Config, GitHubConfig, Secret
from bot.errors import ArchiveRefused, ClusterError, PermanentError, TemporaryError
from bot.model import Phase, Rollout, StagingKey, Target
from bot.provision.base import Link, StepOutput
from bot.provision.command import CommandProvisioner, parse_links
from bot.provision.command_config import VARIABLES

KEY = StagingKey("github", 186853002, 2)
TARGET = Target(
    key=KEY,
    repo="Codertocat/Hello-World",
    number=2,
    sha="ec26c3e57ca3a959ca5aad62de7213c562f8c821",
    branch="changes",
    namespace="staging-hello-world-pr-2-0085",
    name="hello-world-pr-2-0085",
    hostname="hello-world-pr-2-0085.staging.example.com",
    url="https://hello-world-pr-2-0085.staging.example.com/",
    image="registry.example.com/hello:ec26c3e57ca3a959ca5aad62de7213c562f8c821",
    manifests="",
    instance="default",
    overrides=(("DEBUG", "1"), ("FEATURE_FLAGS", "a,b")),
)
TOKEN = "ghp_bot-token-never-print"
# Records each run as one JSON line (argv and environment) in steps.jsonl, then prints.
RECORDER = """\
import json, os, sys
with open("steps.jsonl", "a") as log:
    log.write(json.dumps({"argv": sys.argv[1:], "env": dict(os.environ)}) + "\\n")
print("ran", *sys.argv[1:])
"""


def python_step(folder: Path, name: str, body: str) -> tuple[str, ...]:
    (folder / name).write_text(body)
    return (sys.executable, name)


def shell_step(folder: Path, name: str, body: str) -> tuple[str, ...]:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return (f"./{name}",)


def read(folder: Path, name: str) -> str:
    return (folder / name).read_text()


def runs(folder: Path) -> list[dict[str, Any]]:
    path = folder / "steps.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def recording(folder: Path, **settings: Any) -> CommandProvisioner:
    """Every step is the recorder, called with its own name."""
    record = python_step(folder, "record.py", RECORDER)
    steps = {
        name: (*record, name)
        for name in ("create", "update", "archive", "restore", "destroy", "notify")
    }
    return provisioner(folder, **{**steps, **settings})


def provisioner(folder: Path, **settings: Any) -> CommandProvisioner:
    config = Config(
        command=CommandConfig(workdir=str(folder), **settings),
        github=GitHubConfig(token=Secret(TOKEN)),
    )
    environ = {**os.environ, "BOT_ONLY": "not for programs", "HOME": str(folder)}
    return CommandProvisioner.from_config(
        replace(config, commands=replace(config.commands, secret_keys=("DB_PASSWORD",))),
        environ,
    )


async def test_each_step_sees_the_staging_variables_and_little_else(tmp_path: Path) -> None:
    prov = recording(tmp_path)

    await prov.apply(TARGET)
    await prov.apply(replace(TARGET, built=True))
    await prov.archive(TARGET)
    await prov.restore(TARGET)
    assert await prov.destroy(TARGET) is True

    seen = runs(tmp_path)
    assert [run["argv"] for run in seen] == [
        ["create"],
        ["update"],
        ["archive"],
        ["restore"],
        ["destroy"],
    ]
    env = seen[0]["env"]
    assert {k: v for k, v in env.items() if k.startswith("STAGING_")} == {
        "STAGING_STEP": "create",
        "STAGING_NAME": "hello-world-pr-2-0085",
        "STAGING_NAMESPACE": "staging-hello-world-pr-2-0085",
        "STAGING_HOST": "hello-world-pr-2-0085.staging.example.com",
        "STAGING_URL": "https://hello-world-pr-2-0085.staging.example.com/",
        "STAGING_SHA": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
        "STAGING_BRANCH": "changes",
        "STAGING_PR": "2",
        "STAGING_REPO": "Codertocat/Hello-World",
        "STAGING_HOST_KIND": "github",
        "STAGING_IMAGE": TARGET.image,
        "STAGING_OVERRIDE_KEYS": "DEBUG FEATURE_FLAGS",
        "STAGING_OVERRIDE_PREFIX": "STAGING_ENV_",
        "STAGING_ENV_DEBUG": "1",
        "STAGING_ENV_FEATURE_FLAGS": "a,b",
    }
    inherited = set(env) - {k for k in env if k.startswith("STAGING_")} - {"LC_CTYPE"}
    assert inherited <= {"PATH", "HOME", "LANG"}  # LC_CTYPE: Python's own locale coercion
    assert env["HOME"] == str(tmp_path)
    assert [run["env"]["STAGING_STEP"] for run in seen] == [run["argv"][0] for run in seen]
    assert set(env) - {"PATH", "HOME", "LANG", "LC_CTYPE"} - set(VARIABLES) == {
        "STAGING_ENV_DEBUG",
        "STAGING_ENV_FEATURE_FLAGS",
    }


async def test_pass_env_and_the_prefix_are_honoured(tmp_path: Path) -> None:
    prov = recording(tmp_path, pass_env=("BOT_ONLY",), env_prefix="APP_")

    await prov.apply(TARGET)

    env = runs(tmp_path)[0]["env"]
    assert env["BOT_ONLY"] == "not for programs"
    assert env["APP_DEBUG"] == "1" and "STAGING_ENV_DEBUG" not in env


async def test_shell_metacharacters_in_a_branch_or_override_arrive_verbatim_and_never_run(
    tmp_path: Path,
) -> None:
    pwned = tmp_path / "pwned"
    nasty = f"x$(touch {pwned}1)`touch {pwned}2`;touch {pwned}3 && echo \"'$HOME' | *"
    record = python_step(tmp_path, "record.py", RECORDER)
    # A script that uses the values the way scripts do: quoted, and carelessly unquoted.
    script = shell_step(
        tmp_path,
        "use.sh",
        'printf "%s" "$STAGING_BRANCH" > branch.txt\n'
        'printf "%s" "$STAGING_ENV_GREETING" > greeting.txt\n'
        "echo $STAGING_BRANCH $STAGING_ENV_GREETING > /dev/null\n"
        'exec "$@"\n',
    )
    prov = provisioner(tmp_path, create=(*script, *record, "create"), destroy=record)
    target = replace(TARGET, branch=nasty, overrides=(("GREETING", nasty),))

    await prov.apply(target)

    env = runs(tmp_path)[0]["env"]
    assert env["STAGING_BRANCH"] == nasty
    assert env["STAGING_ENV_GREETING"] == nasty
    assert read(tmp_path, "branch.txt") == read(tmp_path, "greeting.txt") == nasty
    assert [name for name in os.listdir(tmp_path) if "pwned" in name] == []


async def test_a_failing_step_fails_the_staging_with_the_end_of_its_output(
    tmp_path: Path,
) -> None:
    create = shell_step(
        tmp_path,
        "create.sh",
        'echo "helm: starting"\nfor i in $(seq 1 30); do echo "error line $i" >&2; done\nexit 3\n',
    )
    prov = provisioner(tmp_path, create=create, destroy=create)

    with pytest.raises(PermanentError) as failure:
        await prov.apply(TARGET)

    reason = failure.value.reason
    assert reason.startswith("create exit 3 after ")
    assert reason.endswith(
        "error line 26\nerror line 27\nerror line 28\nerror line 29\nerror line 30"
    )
    assert "error line 25" not in reason


async def test_exit_75_asks_for_a_retry_later(tmp_path: Path) -> None:
    destroy = shell_step(tmp_path, "destroy.sh", 'echo "cluster unreachable" >&2\nexit 75\n')
    prov = provisioner(tmp_path, create=destroy, destroy=destroy)

    with pytest.raises(TemporaryError, match="destroy exit 75 .*cluster unreachable") as caught:
        await prov.destroy(TARGET)
    # The cluster's failure, shown on the request after a while without the program's output.
    assert isinstance(caught.value, ClusterError)
    assert caught.value.shown.startswith("destroy exit 75 after ")


async def test_a_hanging_step_is_killed_and_fails_saying_it_timed_out(tmp_path: Path) -> None:
    create = shell_step(tmp_path, "create.sh", "echo waiting for the cluster\nsleep 300\n")
    prov = provisioner(tmp_path, create=create, destroy=create, timeout=1.0)

    with pytest.raises(PermanentError) as failure:
        await prov.apply(TARGET)

    assert failure.value.reason == "create timed out after 1 s: waiting for the cluster"
    assert "[timed out after 1 s]" in prov.take_output(TARGET).text


async def test_output_is_kept_for_the_history_capped_and_with_secrets_masked(
    tmp_path: Path,
) -> None:
    create = shell_step(
        tmp_path,
        "create.sh",
        'seq 1 5000\necho "token=$1 password=$STAGING_ENV_DB_PASSWORD debug=$STAGING_ENV_DEBUG"\n',
    )
    prov = provisioner(tmp_path, create=(*create, TOKEN), destroy=create, output_limit=1024)
    target = replace(TARGET, overrides=(("DB_PASSWORD", "hunter2-db"), ("DEBUG", "1")))

    await prov.apply(target)
    kept = prov.take_output(target)

    assert kept.text.startswith(f"create:\n$ ./create.sh {'*' * 10}\n[")  # argv masked too
    assert "token=********** password=********** debug=1" in kept.text
    assert TOKEN not in kept.text and "hunter2-db" not in kept.text
    assert "\n1\n" not in kept.text and "\n5000\n" in kept.text
    assert len(kept.text) < 1024 + 200
    assert prov.take_output(target) == StepOutput()  # taken once


async def test_check_says_not_ready_with_its_stdout_until_it_exits_0(tmp_path: Path) -> None:
    check = shell_step(
        tmp_path,
        "check.sh",
        'if [ -f ready ]; then exit 0; fi\necho "0/1 pods ready"\necho "noise" >&2\nexit 1\n',
    )
    prov = provisioner(tmp_path, create=check, destroy=check, check=check)

    assert await prov.status(TARGET) == Rollout(ready=False, reason="0/1 pods ready")
    (tmp_path / "ready").touch()
    assert await prov.status(TARGET) == Rollout(ready=True)


async def test_a_check_that_cannot_run_fails_at_once(tmp_path: Path) -> None:
    prov = provisioner(tmp_path, create=("true",), destroy=("true",), check=("./gone.sh",))

    rollout = await prov.status(TARGET)

    assert rollout.failed and not rollout.ready
    assert rollout.reason == "check: cannot run ./gone.sh: No such file or directory"


async def test_without_a_check_a_staging_is_ready_once_applied(tmp_path: Path) -> None:
    prov = provisioner(tmp_path, create=("true",), destroy=("true",))

    assert await prov.status(TARGET) == Rollout(ready=True)


async def test_archiving_without_programs_is_refused_and_restoring_is_a_no_op(
    tmp_path: Path,
) -> None:
    prov = provisioner(tmp_path, create=("true",), destroy=("true",))

    # Refused before anything ran, like a staging whose data archiving would delete: the
    # request is told once, and no sweep tries again (see docs/lifecycle.md).
    with pytest.raises(ArchiveRefused, match="set command.archive and command.restore"):
        await prov.archive(TARGET)
    await prov.restore(TARGET)


async def test_info_links_are_read_after_create_and_handed_over_once(tmp_path: Path) -> None:
    info = shell_step(
        tmp_path,
        "info.sh",
        'echo "logs,https://logs.example.com/?ns=$STAGING_NAMESPACE"\n'
        'echo "not a link"\necho "evil,javascript:alert(1)"\necho " db , http://db.local/ "\n',
    )
    prov = provisioner(tmp_path, create=("true",), destroy=("true",), info=info)

    await prov.apply(TARGET)
    taken = prov.take_output(TARGET)

    assert taken.links == (
        Link("logs", "https://logs.example.com/?ns=staging-hello-world-pr-2-0085"),
        Link("db", "http://db.local/"),
    )
    assert "info:\n$ ./info.sh" in taken.text
    assert prov.take_output(TARGET).links is None


async def test_notify_is_told_the_state_and_a_failing_notify_is_only_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prov = recording(tmp_path)

    await prov.notify(TARGET, Phase.FAILED, "create exit 1")

    env = runs(tmp_path)[0]["env"]
    assert (env["STAGING_STATE"], env["STAGING_REASON"]) == ("failed", "create exit 1")
    broken = provisioner(tmp_path, create=("true",), destroy=("true",), notify=("false",))
    with caplog.at_level(logging.WARNING, "stagingbot.provision"):
        await broken.notify(TARGET, Phase.RUNNING, "")
    assert "notify for github:186853002:2 failed: exit 1" in caplog.text


async def test_the_sweep_sees_no_stagings_built_by_programs(tmp_path: Path) -> None:
    prov = provisioner(tmp_path, create=("true",), destroy=("true",))

    assert await prov.list_stagings("default") == []


def test_links_are_name_comma_url_lines_of_web_addresses() -> None:
    assert parse_links("a,https://x/\n,https://y/\nb,ftp://z/\nc,https://w/ x\n") == (
        Link("a", "https://x/"),
    )


async def test_secret_overrides_reach_the_programs_with_the_prefix_and_are_masked_in_output(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    create = shell_step(
        tmp_path,
        "create.sh",
        'echo "stripe=$STAGING_ENV_STRIPE_KEY keys=$STAGING_OVERRIDE_KEYS"\n'
        'echo "stripe=$STAGING_ENV_STRIPE_KEY" >&2\nexit 3\n',
    )
    prov = provisioner(tmp_path, create=create, destroy=create)
    target = replace(
        TARGET,
        overrides=(("DEBUG", "1"),),
        secret_overrides=(("STRIPE_KEY", "sk_live_from-the-api-only"),),
    )

    assert prov.environment(target, "create")["STAGING_ENV_STRIPE_KEY"] == (
        "sk_live_from-the-api-only"
    )
    with pytest.raises(PermanentError) as failure:
        await prov.apply(target)
    kept = prov.take_output(target).text

    assert "stripe=********** keys=DEBUG STRIPE_KEY" in kept
    assert "stripe=**********" in failure.value.reason
    logged = " ".join(record.getMessage() for record in caplog.records)
    for text in (kept, failure.value.reason, logged, repr(target)):
        assert "sk_live_from-the-api-only" not in text
