"""`stagingbot sweep --config FILE`: one sweep in-process, said in words, exit 1 on doubt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot.cli import main
from tests.conftest import ROOT
from tests.fakes.github import FakeGitHub
from tests.fakes.kube import FakeKube
from tests.helpers import REPO, REPO_ID

SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


@pytest.fixture
def clean_redis(redis_server: str) -> str:
    client = redis.Redis.from_url(redis_server)
    client.flushall()
    client.close()
    return redis_server


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.add_repo(REPO, REPO_ID, installation_id=1)
        fake.add_pull(REPO, 2, SHA)
        yield fake


def write_config(tmp_path: Path, redis_url: str, github: FakeGitHub, kubeconfig: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[redis]
url = "{redis_url}"
key_prefix = "stagingbot-cli"

[github]
api_url = "{github.url}"
token = "{github.personal_token}"
webhook_secret = "whsec-cli"

[kubernetes]
kubeconfig = "{kubeconfig}"
manifests = "{ROOT / "manifests" / "staging"}"

[staging]
base_domain = "staging.example.com"
secret_key = "cli-secret"
image = "registry.example.com/hello:{{sha}}"

[log]
format = "text"

[[repos]]
host = "github"
repo = "{REPO}"
"""
    )
    return str(path)


def test_one_sweep_prints_what_it_found_and_did(
    clean_redis: str, github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeKube() as kube:
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
        path = write_config(tmp_path, clean_redis, github, kubeconfig)
        assert main(["sweep", "--config", path]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "cluster: 0 stagings (0 terminating, 0 archived)"
    assert f"github {REPO}: 1 open requests" in out
    assert f"create github:{REPO_ID}:2: open, with no staging and no record (queued)" in out
    assert out[-1].startswith("done: 1 to reconcile (1 queued)")


def test_a_cluster_out_of_reach_exits_1_with_the_reason_and_no_traceback(
    clean_redis: str, github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeKube() as kube:
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
    # The fake is stopped: its address refuses connections.
    path = write_config(tmp_path, clean_redis, github, kubeconfig)

    assert main(["sweep", "--config", path]) == 1

    captured = capsys.readouterr()
    assert "sweep failed, nothing changed: cannot list the stagings in the cluster" in captured.out
    assert "Traceback" not in captured.out + captured.err
    assert github.calls("GET", r"/pulls$") == []  # nothing else was even asked


def test_a_host_out_of_reach_exits_1_naming_the_repository(
    clean_redis: str, github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    github.fail_next(502, method="GET", path=r"/pulls$")
    with FakeKube() as kube:
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
        path = write_config(tmp_path, clean_redis, github, kubeconfig)
        assert main(["sweep", "--config", path]) == 1
    out = capsys.readouterr().out
    assert f"github {REPO}: cannot list open requests, its stagings left alone" in out
    assert "HTTP 502" in out


def test_redis_out_of_reach_exits_1_without_a_traceback(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeKube() as kube:
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
        config = write_config(tmp_path, "redis://127.0.0.1:1/0", github, kubeconfig)
        assert main(["sweep", "--config", config]) == 1
    err = capsys.readouterr().err
    assert "sweep failed: Redis at redis://127.0.0.1:1/0" in err and "Traceback" not in err
