"""examples/local: each staging is a real local web app with its own SQLite file."""

from __future__ import annotations

import asyncio
import os
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.config import load_config
from bot.model import Rollout, StagingKey, Target
from bot.provision.command import CommandProvisioner

ROOT = Path(__file__).resolve().parents[2]
SHA1 = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
SHA2 = "2" * 40
TARGET = Target(
    key=StagingKey("github", 186853002, 2),
    repo="Codertocat/Hello-World",
    number=2,
    sha=SHA1,
    branch="feature/<b>bold</b>&more",
    namespace="staging-hello-world-pr-2-0085",
    name="hello-world-pr-2-0085",
    hostname="hello-world-pr-2-0085.staging.localhost",
    url="http://hello-world-pr-2-0085.staging.localhost/",
    image="",
    manifests="",
    instance="default",
    overrides=(("GREETING", "hi $(whoami)"),),
)
REQUIRED = {
    "STAGINGBOT_GITHUB_WEBHOOK_SECRET": "whsec-test",
    "STAGINGBOT_GITHUB_TOKEN": "ghp-test",
    "STAGINGBOT_STAGING_SECRET_KEY": "key",
    "STAGINGBOT_STAGING_BASE_DOMAIN": "staging.localhost",
    "STAGINGBOT_COMMAND_WORKDIR": str(ROOT),
}


@pytest.fixture
async def prov(tmp_path: Path) -> AsyncIterator[CommandProvisioner]:
    config = load_config(str(ROOT / "examples" / "local" / "stagingbot.toml"), REQUIRED)
    environ = {"PATH": os.environ.get("PATH", ""), "LOCAL_STAGINGS": str(tmp_path)}
    provisioner = CommandProvisioner.from_config(config, environ)
    yield provisioner
    await provisioner.destroy(TARGET)  # whatever a failed test left running


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - a local test app
        return str(answer.read().decode())


async def page(prov: CommandProvisioner, target: Target) -> str:
    for _ in range(100):
        if (await prov.status(target)).ready:
            break
        await asyncio.sleep(0.05)
    (link,) = prov.take_output(target).links or ()
    assert link.name == "app" and link.url.startswith("http://127.0.0.1:")
    return await asyncio.to_thread(fetch, link.url)


def exists(path: Path) -> bool:
    return path.exists()


async def test_a_local_staging_runs_keeps_its_data_through_updates_and_archiving_then_goes(
    prov: CommandProvisioner, tmp_path: Path
) -> None:
    await prov.apply(TARGET)
    first = await page(prov, TARGET)
    assert "feature/&lt;b&gt;bold&lt;/b&gt;&amp;more" in first and "<b>bold" not in first
    assert SHA1 in first and "#2" in first
    assert "override GREETING</td><td><code>hi $(whoami)</code>" in first
    assert "viewed 1 times" in first
    folder = tmp_path / "hello-world-pr-2-0085"
    assert exists(folder / "app.db")

    pushed = replace(TARGET, sha=SHA2, built=True)
    await prov.apply(pushed)
    second = await page(prov, pushed)
    assert SHA2 in second and "viewed 2 times" in second  # the same database

    await prov.archive(pushed)
    rollout = await prov.status(pushed)
    assert rollout == Rollout(ready=False, reason=rollout.reason)
    assert rollout.reason.startswith("not answering on http://127.0.0.1:")
    await prov.restore(pushed)
    await prov.apply(pushed)
    assert "viewed 3 times" in await page(prov, pushed)

    assert await prov.destroy(pushed) is True
    assert not exists(folder)
    assert not (await prov.status(pushed)).ready
