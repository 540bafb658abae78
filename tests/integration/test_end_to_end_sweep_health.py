"""End to end, the sweep's newer duties: health, kept decisions, ETags, orphans, empty pages.

Real clients against the fake GitHub and Kubernetes APIs, the running bot's worker doing
the jobs the sweep queues, and a real Redis.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bot import metrics, queue
from bot.config import SweepConfig
from bot.model import Phase
from bot.provision import decisions
from bot.sweep import sweep
from handlers import plan
from tests.fakes.github import FakeGitHub
from tests.fakes.kube import FakeKube
from tests.helpers import REPO, pr_payload
from tests.integration.test_end_to_end import (
    NAMESPACE,
    SHA1,
    bot_config,
    completed,
    deliver,
    eventually,
    running_bot,
)
from tests.integration.test_end_to_end_commands import say
from tests.integration.test_end_to_end_sweep import (
    KEY,
    KEY3,
    SHA3,
    orphan_namespace,
    sweeper,
    wait_running,
    wait_settled,
)

PULLS = r"/pulls$"


def _failed_check(github: FakeGitHub) -> dict[str, object] | None:
    run = completed(github.check_runs(REPO, SHA1))
    return run if run and run["conclusion"] == "failure" else None


async def test_a_crash_looping_deployment_turns_the_staging_failed_and_back(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    config = bot_config(redis_url, github, kube, tmp_path, app=True)
    async with running_bot(config) as bot, sweeper(config) as svc:
        await deliver(bot, pr_payload("opened"))
        await wait_running(svc, KEY)
        assert (await sweep(svc)).actions == ()  # healthy: nothing to do

        kube.crash_loop("registry.example.com/hello")
        await eventually(
            lambda: not (kube.get("Deployment", NAMESPACE, "web") or {})
            .get("status", {})
            .get("availableReplicas"),
            "the deployment unavailable",
        )
        lists_before = sum(1 for r in kube.requests if r.path.endswith("/deployments"))
        report = await sweep(svc)
        assert [(a.kind, a.key) for a in report.actions] == [("health", KEY)]
        # Noticing costs one cluster-wide list per workload kind, not a call per staging.
        assert sum(1 for r in kube.requests if r.path.endswith("/deployments")) == lists_before + 1
        assert any(r.path == "/apis/apps/v1/deployments" for r in kube.requests)

        run = await eventually(lambda: _failed_check(github), "a failed check")
        assert "crash-looping" in str(run["output"])
        comment = await eventually(
            lambda: next(
                (c["body"] for c in github.comments(REPO, 2) if "crash-looping" in c["body"]), None
            ),
            "the comment says why",
        )
        assert "exit code 1" in comment
        record = await svc.store.load(KEY)
        assert record is not None and record.get("phase") == Phase.FAILED

        kube.clear_faults()
        await eventually(
            lambda: (kube.get("Deployment", NAMESPACE, "web") or {})
            .get("status", {})
            .get("availableReplicas"),
            "the deployment available again",
        )
        report = await sweep(svc)
        assert [(a.kind, a.why) for a in report.actions] == [
            ("health", "failed as unavailable, available again")
        ]
        await wait_running(svc, KEY)
        await eventually(
            lambda: (completed(github.check_runs(REPO, SHA1)) or {}).get("conclusion") == "success",
            "a green check again",
        )


async def test_after_flushall_a_staging_a_person_destroyed_stays_gone(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    config = bot_config(redis_url, github, kube, tmp_path, app=True)
    github.set_role(REPO, "octocat", "write")
    github.add_pull(REPO, 3, SHA3, branch="more")
    async with running_bot(config) as bot, sweeper(config) as svc:
        await deliver(bot, pr_payload("opened"))
        await wait_running(svc, KEY)
        await svc.store.desire(KEY3, {**_opened(3), plan.OVERRIDES: '{"GREETING": "hi"}'})
        await queue.enqueue_reconcile(svc.queue, "stagingbot-test", KEY3)
        await wait_running(svc, KEY3)

        # `/staging destroy` on #2: the decision is kept in the bot's namespace, then it goes.
        await say(bot, github, "/staging destroy", "octocat")
        await eventually(lambda: kube.namespace(NAMESPACE) is None, "#2's namespace deleted")
        kept = kube.objects("ConfigMap", "default")
        assert [cm["metadata"]["name"] for cm in kept] == [
            decisions.configmap_name("default", KEY)
        ]
        assert kept[0]["data"]["by"] == "octocat" and kept[0]["data"]["sha"] == SHA1
        # The namespace goes before the job that deleted it says so (gone, comment, check,
        # history): a wipe while that job runs would have it write into the empty Redis.
        await wait_settled(svc, KEY, Phase.GONE)

        await svc.queue.flushall()
        report = await sweep(svc)
        kinds = {a.key: a.kind for a in report.actions}
        assert kinds == {KEY: "create", KEY3: "rebuild"}
        assert "stays gone" in next(a.why for a in report.actions if a.key == KEY)
        await wait_running(svc, KEY3)
        record3 = await svc.store.load(KEY3)
        assert record3 is not None and plan.overrides(record3.fields) == {"GREETING": "hi"}
        record = await svc.store.load(KEY)
        assert record is not None and record.get("phase") == Phase.GONE
        assert kube.namespace(NAMESPACE) is None  # not built again
        assert not (await sweep(svc)).actions

        # A push asks for it again: built at the new head, the kept decision dropped.
        github.set_head(REPO, 2, SHA3)
        await deliver(bot, pr_payload("synchronize", sha=SHA3))
        await eventually(lambda: kube.namespace(NAMESPACE) is not None, "#2 built again")
        await eventually(lambda: not kube.objects("ConfigMap", "default"), "decision dropped")


def _opened(number: int) -> dict[str, str]:
    return {
        "host": "github",
        "repo_id": str(KEY.repo_id),
        "repo": REPO,
        "number": str(number),
        "desired": "running",
        "desired_sha": SHA3,
        "branch": "more",
    }


async def test_an_unchanged_list_is_read_with_etags_and_costs_no_rate_limit(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    config = bot_config(redis_url, github, kube, tmp_path, app=True)
    async with running_bot(config) as bot, sweeper(config) as svc:
        await deliver(bot, pr_payload("opened"))
        await wait_running(svc, KEY)
        labels = {"host": "github", "result": "not_modified"}
        not_modified = metrics.sample("stagingbot_sweep_lists_total", **labels)

        first = await sweep(svc)
        used = github.rate_used
        second = await sweep(svc)

        assert first.actions == second.actions == ()
        lists = [r for r in github.requests if r.path.endswith("/pulls")]
        assert [r.status for r in lists[-2:]] == [200, 304]
        assert github.rate_used == used  # the second sweep spent no rate limit at all
        assert metrics.sample("stagingbot_sweep_lists_total", **labels) == not_modified + 1

        github.add_pull(REPO, 3, SHA3, branch="more")  # the list changed: read in full again
        third = await sweep(svc)
        assert [(a.kind, a.key) for a in third.actions] == [("create", KEY3)]
        assert [r.status for r in github.requests if r.path.endswith("/pulls")][-1] == 200


async def test_an_empty_page_or_a_500_deletes_nothing(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    config = bot_config(redis_url, github, kube, tmp_path, app=True)
    async with running_bot(config) as bot, sweeper(config) as svc:
        await deliver(bot, pr_payload("opened"))
        await wait_running(svc, KEY)

        github.fail_next(500, method="GET", path=PULLS)
        report = await sweep(svc)
        assert report.failed and report.actions == ()

        github.fail_next(200, method="GET", path=PULLS, body=[])  # type: ignore[arg-type]
        report = await sweep(svc)
        assert [(a.kind, a.key) for a in report.actions] == [("enqueue", KEY)]
        # The job asks GitHub about #2 alone, hears "open", and keeps the staging.
        await wait_running(svc, KEY)
        assert kube.count("DELETE") == 0 and kube.namespace(NAMESPACE) is not None


async def test_orphans_are_reported_and_deleted_only_with_delete_orphans(
    redis_url: str, github: FakeGitHub, kube: FakeKube, tmp_path: Path
) -> None:
    config = bot_config(redis_url, github, kube, tmp_path, app=True)
    kube.add(orphan_namespace())
    async with sweeper(config) as svc:
        for _ in range(2):
            report = await sweep(svc)
            assert [o.namespace for o in report.orphans] == ["staging-retired-pr-7"]
            assert report.deleted == ()
        assert kube.namespace("staging-retired-pr-7") is not None

    deleting = replace(config, sweep=SweepConfig(interval=0, delete_orphans=True))
    async with sweeper(deleting) as svc:
        await svc.store.redis.delete("stagingbot-test:sweep:last")
        first = await sweep(svc)  # seen once: reported, not yet deleted
        assert first.deleted == () and kube.namespace("staging-retired-pr-7") is not None
        second = await sweep(svc)
        assert [o.namespace for o in second.deleted] == ["staging-retired-pr-7"]
        assert any("deleted" in line for line in second.lines())
        await eventually(lambda: kube.namespace("staging-retired-pr-7") is None, "deleted")
