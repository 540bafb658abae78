"""End to end: an archive the cluster refuses part-way for good (RBAC changed under the bot:
`patch` on StatefulSets answered 403, as the API server words it) is said on the pull request
once, what was scaled down is put back (or, when that fails too, said to be partly
archived), and the sweep does not try again.

The shipped templates (a web Deployment, a database StatefulSet with a volume claim); the
real web app and arq worker talk to the local fake GitHub and Kubernetes API servers; the
archives come from a slash-command and from the idle timer (the worker's clock moved on).
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.config import ApiConfig, ApiToken, Config, Secret
from bot.sweep import sweep
from tests.fakes.github import FakeGitHub
from tests.fakes.kube import ApiError, ApiResource, FakeKube
from tests.helpers import REPO
from tests.integration.test_end_to_end import (
    NAMESPACE,
    bot_config,
    eventually,
    running_bot,
)
from tests.integration.test_end_to_end_archive_refused import (
    DAY,
    KEY,
    MINUTE,
    PATH,
    TOKEN,
    Bot,
    check,
    claims,
    scaled,
    sleeps,
    touched,
    up,
)
from tests.integration.test_end_to_end_commands import replies, say, sticky

USER = "system:serviceaccount:stagingbot:stagingbot"
ARCHIVED = "stagingbot.dev/archived"


class Forbid:
    """RBAC as changed under the bot: `patch` on the given resources answered 403 with the
    API server's message, after `allowed` such patches went through."""

    def __init__(self, *plurals: str, allowed: int = 0) -> None:
        self.plurals, self.allowed = plurals, allowed
        self._lock = threading.Lock()

    def __call__(
        self, res: ApiResource, sub: str, verb: str, namespace: str, name: str, body: bytes
    ) -> None:
        if verb != "patch" or res.plural not in self.plurals:
            return
        with self._lock:
            if self.allowed > 0:
                self.allowed -= 1
                return
        message = (
            f'{res.qualified} "{name}" is forbidden: User "{USER}" cannot patch resource '
            f'"{res.plural}" in API group "{res.group}" in the namespace "{namespace}"'
        )
        raise ApiError(403, "Forbidden", message, {"name": name, "group": res.group})


@pytest.fixture
def config(redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path) -> Config:
    config = bot_config(redis_url, github, kube, tmp_path, app=True)
    return replace(config, api=ApiConfig((ApiToken("ci", Secret(TOKEN), "operator"),)))


@pytest.fixture
def bot() -> Bot:
    return Bot()


async def failures(bot: Bot) -> list[dict[str, Any]]:
    history = await bot.store.history(KEY)
    return [e for e in history if (e["action"], e["result"]) == ("archive", "failed")]


def marked(kube: FakeKube) -> list[str]:
    """What carries the archived mark: the namespace and the workloads."""
    found = [kube.namespace(NAMESPACE) or {}]
    found += [kube.get(kind, NAMESPACE, name) or {} for kind, name in WORKLOADS]
    return [
        obj["metadata"]["name"]
        for obj in found
        if ARCHIVED in (obj["metadata"].get("annotations") or {})
    ]


WORKLOADS = (("Deployment", "web"), ("StatefulSet", "db"))


async def test_an_archive_refused_part_way_is_put_back_answered_once_and_not_retried(
    config: Config, bot: Bot, github: FakeGitHub, kube: FakeKube
) -> None:
    github.set_role(REPO, "maintainer", "write")
    async with running_bot(config, bot.prepare) as client:
        checks, data = await up(client, github, kube)
        workloads = scaled(kube)
        assert workloads == (1, 1)
        kube.authorize = Forbid("statefulsets")  # the web Deployment goes down first

        await say(client, github, "/staging archive", "maintainer")

        (reply,) = await eventually(lambda: replies(github), "the failure answered")
        assert reply.splitlines()[1].startswith(
            "@maintainer, archiving the staging **failed**: archive StatefulSet/db: HTTP 403: "
            'statefulsets.apps "db" is forbidden: User'
        )
        assert "Deployment web had been scaled down and was scaled back up" in reply
        assert "`/staging archive` tries again" in reply
        await eventually(lambda: "Archive failed" in sticky(github), "the comment's note")
        await bot.quiet()
        comment = sticky(github)
        assert "**running**" in comment and "the staging keeps running" in comment
        assert "Not archived" not in comment  # a failure, not a refusal
        # Put back as it was: the workloads, the data, no archived mark left.
        await eventually(lambda: scaled(kube) == workloads, "the web Deployment back up")
        assert claims(kube) == data and marked(kube) == []
        assert check(github) == checks
        (failure,) = await failures(bot)
        assert failure["by"] == "maintainer"
        assert failure["reason"].startswith("archive failed: archive StatefulSet/db: HTTP 403")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        detail = (await client.get(PATH, headers=headers)).json()
        assert detail["state"] == "running" and detail["archived"] is False
        assert detail["reason"].startswith("archive failed: archive StatefulSet/db")

        # The sweep does not try again: twice, five minutes apart.
        for _ in range(2):
            bot.clock.now += 5 * MINUTE
            assert not touched(await sweep(bot.svc))
        await bot.quiet()
        assert bot.archives == 1 and len(await failures(bot)) == 1
        assert len(replies(github)) == 1
        record = await bot.store.load(KEY)
        assert record is not None and record.get("decision") == ""

        # RBAC fixed, asked again: archived, the data kept.
        kube.authorize = None
        await say(client, github, "/staging archive", "maintainer")
        await eventually(lambda: "**archived**" in sticky(github), "archived this time")
        assert "Archive failed" not in sticky(github)
        # (A 409 meanwhile, the Deployment still scaling up, is only retried.)
        assert scaled(kube) == (0, 0) and claims(kube) == data
        assert len(await failures(bot)) == 1 and len(replies(github)) == 1


@pytest.mark.parametrize("verb", ["redeploy", "restore"])
async def test_an_idle_archive_that_cannot_be_put_back_says_partly_archived(
    config: Config, bot: Bot, github: FakeGitHub, kube: FakeKube, verb: str
) -> None:
    github.set_role(REPO, "maintainer", "write")
    async with running_bot(config, bot.prepare) as client:
        checks, data = await up(client, github, kube)
        await bot.quiet()
        # The archive's patch of the Deployment goes through; the StatefulSet's, and the
        # Deployment's patch putting it back, are refused.
        kube.authorize = Forbid("statefulsets", "deployments", allowed=1)

        bot.clock.now += 3 * DAY + MINUTE  # staging.idle_ttl (3 days) ran out
        assert sleeps(await sweep(bot.svc))

        await eventually(lambda: "Archive failed part-way" in sticky(github), "the comment's note")
        await bot.quiet()
        comment = sticky(github)
        assert "Partly archived: Deployment web is scaled down" in " ".join(comment.split())
        assert "No data was deleted" in comment and "`/staging redeploy`" in comment
        assert replies(github) == []  # the timer's failure is in the comment only
        assert scaled(kube) == (0, 1) and claims(kube) == data
        (failure,) = await failures(bot)
        assert failure["by"] == "automatic"
        assert check(github) == checks

        for _ in range(2):  # no second attempt, nothing said again
            bot.clock.now += 5 * MINUTE
            report = await sweep(bot.svc)
            assert not touched(report), report.lines()
        await bot.quiet()
        assert bot.archives == 1 and len(await failures(bot)) == 1
        assert sticky(github) == comment

        # RBAC fixed: a redeploy or a restore brings it all back up (not archived by the
        # apply); a restore is not answered "not archived".
        kube.authorize = None
        await say(client, github, f"/staging {verb}", "maintainer")
        await eventually(lambda: "Archive failed part-way" not in sticky(github), "the note gone")
        await eventually(lambda: scaled(kube) == (1, 1), "the web Deployment back up")
        await eventually(lambda: "**running**" in sticky(github), "running again")
        assert marked(kube) == [] and claims(kube) == data
        assert not any("not archived" in reply for reply in replies(github))


async def test_a_proxys_page_refusing_the_archive_is_not_shown_on_the_pull_request(
    config: Config, bot: Bot, github: FakeGitHub, kube: FakeKube
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with running_bot(config, bot.prepare) as client:
        checks, data = await up(client, github, kube)
        page = "<html><body>Access denied for 10.0.0.7, session c2VjcmV0</body></html>"
        statefulset = f"/apis/apps/v1/namespaces/{NAMESPACE}/statefulsets/db"
        kube.fail_next(1, status=403, path_prefix=statefulset, page=page)

        answer = await client.post(f"{PATH}/archive", headers=headers)
        assert answer.status_code == 202

        await eventually(lambda: "Archive failed" in sticky(github), "the comment's note")
        await bot.quiet()
        comment = sticky(github)
        assert "archive StatefulSet/db: HTTP 403: Forbidden" in comment
        assert "Deployment web had been scaled down and was scaled back up" in comment
        assert replies(github) == []  # no comment asked: nothing to answer
        (failure,) = await failures(bot)
        assert failure["by"] == "ci"
        detail = (await client.get(PATH, headers=headers)).json()
        for said in (comment, failure["reason"], detail["reason"]):
            assert "html" not in said and "c2VjcmV0" not in said and "10.0.0.7" not in said
        await eventually(lambda: scaled(kube) == (1, 1), "the web Deployment back up")
        assert claims(kube) == data and marked(kube) == [] and check(github) == checks
        bot.clock.now += 5 * MINUTE
        assert not touched(await sweep(bot.svc))
        assert bot.archives == 1
