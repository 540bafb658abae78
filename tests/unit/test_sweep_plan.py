"""The sweep's decision (pure): what it repairs, and what it never touches."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot import sweep_plan
from bot.config import ConfigError, RepoConfig, load_config
from bot.model import ClusterStaging, Phase, PullRequest, RepoRef, StagingKey
from bot.provision import inventory
from bot.schedule import cron_fields
from bot.store import StagingRecord
from bot.sweep_plan import CREATE, ENQUEUE, REBUILD, REFRESH, Listing, plan
from handlers import plan as staging_plan
from tests.helpers import REPO, REPO_ID, make_config

CONFIG = make_config("redis://127.0.0.1:1/0")
REF = RepoRef("github", REPO_ID, REPO)
KEY = StagingKey("github", REPO_ID, 2)
SHA1 = "1" * 40
SHA2 = "2" * 40
NOW = 1_700_000_000.0
STAGING = ClusterStaging(
    KEY, "staging-hello-world-pr-2-0085", REPO, SHA1, "https://pr-2.example.com/"
)


def pull(number: int = 2, sha: str = SHA1, **changes: object) -> PullRequest:
    pr = PullRequest(REF, number, sha, "changes", "Title", "octocat", "https://x/2", open=True)
    return replace(pr, **changes)  # type: ignore[arg-type]


def listing(*pulls: PullRequest, error: str = "") -> Listing:
    return Listing("github", REPO, tuple(pulls), error)


def running_record(sha: str = SHA1, **fields: str) -> StagingRecord:
    """What Redis holds for a staging the reconcile job built and saw running."""
    base = {"key": str(KEY), "repo": REPO, "phase": "running", "sha": sha, "desired_sha": sha}
    base.update(generation="3", handled="3")
    record = StagingRecord(KEY, {**base, **fields})
    applied = staging_plan.applied_signature(sha, record)
    return StagingRecord(KEY, {**record.fields, staging_plan.APPLIED: applied})


def test_an_open_request_without_staging_or_record_gets_a_record_like_an_opened_event() -> None:
    report = plan([], [listing(pull())], {}, CONFIG, NOW)

    (action,) = report.actions
    assert (action.kind, action.key) == (CREATE, KEY)
    assert action.fields["desired"] == "running" and action.fields["desired_sha"] == SHA1
    assert action.fields["repo"] == REPO and action.fields["repo_id"] == str(REPO_ID)
    assert action.fields["last_event"] == "sweep"


def test_a_staging_redis_lost_is_rebuilt_as_deploying_with_nothing_left_to_apply() -> None:
    """Deploying, not running: the namespace says which commit was applied, not whether its
    rollout finished. The job follows it (no apply) and says running once it is ready."""
    staging = replace(STAGING, overrides={"GREETING": "hi"})
    report = plan([staging], [listing(pull())], {}, CONFIG, NOW)

    (action,) = report.actions
    assert (action.kind, action.key) == (REBUILD, KEY)
    record = StagingRecord(KEY, action.fields)
    assert record.get("phase") == Phase.DEPLOYING
    assert float(record.get("deadline")) == NOW + CONFIG.kubernetes.rollout_deadline
    assert record.get("sha") == SHA1 and record.get("staging_url") == staging.url
    assert record.get("namespace") == staging.namespace
    assert staging_plan.overrides(record.fields) == {"GREETING": "hi"}
    # What the reconcile job compares: equal, so it does not apply again.
    assert staging_plan.last_applied(record) == staging_plan.applied_signature(SHA1, record)
    wanted = staging_plan.decide(pull(), CONFIG.rules(), record)
    assert (wanted.want, wanted.sha) == (staging_plan.Want.RUNNING, SHA1)


def test_a_rebuilt_archived_staging_stays_archived_until_a_push() -> None:
    report = plan([replace(STAGING, archived=True)], [listing(pull())], {}, CONFIG, NOW)

    record = StagingRecord(KEY, report.actions[0].fields)
    assert record.get("phase") == Phase.ARCHIVED
    assert staging_plan.decide(pull(), CONFIG.rules(), record).want is staging_plan.Want.ARCHIVED
    pushed = staging_plan.decide(pull(sha=SHA2), CONFIG.rules(), record)
    assert (pushed.want, pushed.sha) == (staging_plan.Want.RUNNING, SHA2)


def job_wrote_after_a_wipe(sha: str = SHA1) -> StagingRecord:
    """What a job still running when Redis was flushed leaves: the fields it wrote after
    the wipe (its rollout seen ready, its report, its ids, `handled`), no desired state."""
    return StagingRecord(
        KEY,
        {
            "phase": "running",
            "reason": "",
            "check_sha": sha,
            "check_state": "success",
            "check_id": "41",
            "comment_id": "42",
            "deployment_sha": sha,
            "deployment_id": "43",
            "reported": f"running|{sha}||https://pr-2.example.com/||[]",
            "check_shas": sha[:12],
            "handled": "3",
            "attempts": "0",
        },
    )


def test_a_partial_record_is_rebuilt_from_the_cluster_like_a_missing_one() -> None:
    partial = job_wrote_after_a_wipe()
    assert partial.partial and not running_record().partial

    report = plan([STAGING], [listing(pull())], {KEY: partial}, CONFIG, NOW)

    (action,) = report.actions
    assert (action.kind, action.key) == (REBUILD, KEY)  # not a refresh: nothing applied again
    assert "partial record" in action.why
    rebuilt = StagingRecord(KEY, action.fields)
    assert rebuilt.get("sha") == SHA1 and rebuilt.get("desired_sha") == SHA1
    assert rebuilt.get("phase") == Phase.DEPLOYING and rebuilt.get("handled") == ""
    assert staging_plan.last_applied(rebuilt) == staging_plan.applied_signature(SHA1, rebuilt)
    # The store keeps the partial record's ids (and only those) when it writes this.
    assert set(sweep_plan.KEPT) >= {"check_id", "check_sha", "comment_id", "deployment_id"}
    assert not {"phase", "handled", "check_shas", "sha"} & set(sweep_plan.KEPT)


def test_a_partial_record_without_a_staging_is_created_like_an_opened_event() -> None:
    report = plan([], [listing(pull())], {KEY: job_wrote_after_a_wipe()}, CONFIG, NOW)

    (action,) = report.actions
    assert (action.kind, action.key) == (CREATE, KEY) and "partial record" in action.why
    assert action.fields["desired_sha"] == SHA1 and action.fields["repo"] == REPO


def test_a_partial_record_of_a_request_neither_open_nor_in_the_cluster_is_left() -> None:
    assert plan([], [listing()], {KEY: job_wrote_after_a_wipe()}, CONFIG, NOW).actions == ()


def test_a_rebuilt_fork_staging_keeps_running_the_commit_someone_approved() -> None:
    report = plan([STAGING], [listing(pull(sha=SHA2, fork=True))], {}, CONFIG, NOW)

    record = StagingRecord(KEY, report.actions[0].fields)
    wanted = staging_plan.decide(pull(sha=SHA2, fork=True), CONFIG.rules(), record)
    assert (wanted.sha, wanted.unapproved) == (SHA1, SHA2)


def test_a_rebuilt_staging_the_rules_would_not_give_is_kept_as_asked_for() -> None:
    """A draft's staging exists because someone forced it: a wipe must not undo that."""
    config = replace(CONFIG, staging=replace(CONFIG.staging, drafts=False))
    report = plan([STAGING], [listing(pull(draft=True))], {}, config, NOW)

    record = StagingRecord(KEY, report.actions[0].fields)
    assert staging_plan.decide(pull(draft=True), config.rules(), record).want.value == "running"


def test_a_staging_whose_request_is_not_listed_is_only_enqueued() -> None:
    report = plan([STAGING], [listing()], {KEY: running_record()}, CONFIG, NOW)

    (action,) = report.actions
    assert (action.kind, action.fields) == (ENQUEUE, {})


def test_a_record_without_staging_whose_request_is_not_listed_is_enqueued_unless_gone() -> None:
    report = plan([], [listing()], {KEY: running_record()}, CONFIG, NOW)
    assert [a.kind for a in report.actions] == [ENQUEUE]

    gone = running_record(phase="gone")
    assert plan([], [listing()], {KEY: gone}, CONFIG, NOW).actions == ()


def test_a_repository_whose_list_failed_is_left_alone_and_reported() -> None:
    report = plan([STAGING], [listing(error="HTTP 500")], {}, CONFIG, NOW)

    assert report.actions == () and report.skipped == (KEY,)
    assert report.failed
    assert any("HTTP 500" in line for line in report.lines())


def test_a_staging_of_a_repository_not_served_is_an_orphan_reported_and_kept() -> None:
    other = replace(STAGING, key=StagingKey("github", 5, 1), repo="acme/gone", namespace="ns-x")
    report = plan([other], [listing()], {}, CONFIG, NOW)

    assert report.orphans == (other,) and report.actions == ()
    assert not report.failed
    assert any("orphan ns-x" in line and "kept" in line for line in report.lines())


def test_a_staging_in_step_with_its_request_is_left_alone() -> None:
    report = plan([STAGING], [listing(pull())], {KEY: running_record()}, CONFIG, NOW)
    assert report.actions == ()


def test_a_push_whose_webhook_was_lost_is_written_like_the_event_would_have_been() -> None:
    report = plan([STAGING], [listing(pull(sha=SHA2))], {KEY: running_record()}, CONFIG, NOW)

    (action,) = report.actions
    assert action.kind == REFRESH and action.fields["desired_sha"] == SHA2


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"generation": "4"}, "not handled"),
        ({"phase": "deploying"}, "lost"),
        ({"phase": "gone"}, "should run"),
        ({"phase": "archived"}, "should run"),
        ({staging_plan.REDEPLOY_TOKEN: "t-2"}, "should run"),
    ],
)
def test_a_record_that_differs_from_its_plan_is_enqueued(fields: dict[str, str], why: str) -> None:
    record = running_record()
    record = StagingRecord(KEY, {**record.fields, **fields})
    report = plan([STAGING], [listing(pull())], {KEY: record}, CONFIG, NOW)

    (action,) = report.actions
    assert action.kind == ENQUEUE and why in action.why


def test_a_failure_already_reported_at_this_commit_is_not_retried_by_the_sweep() -> None:
    record = running_record(phase="failed", reported=f"failed|{SHA1}|bad manifest|")
    record = StagingRecord(KEY, {**record.fields, staging_plan.APPLIED: "old||"})
    assert plan([STAGING], [listing(pull())], {KEY: record}, CONFIG, NOW).actions == ()


def test_a_renamed_repository_is_matched_by_its_id() -> None:
    renamed = pull(repo=RepoRef("github", REPO_ID, "Codertocat/Renamed"))
    config = replace(CONFIG, repos=(RepoConfig(host="github", repo="Codertocat/Renamed"),))
    report = plan([STAGING], [Listing("github", "Codertocat/Renamed", (renamed,))], {}, config, NOW)
    assert report.orphans == () and [a.kind for a in report.actions] == [REBUILD]


# -- reading the cluster ----------------------------------------------------------------


def test_namespaces_are_read_back_as_stagings_with_their_applied_overrides() -> None:
    namespace = {
        "metadata": {
            "name": "ns-2",
            "labels": {
                "stagingbot.dev/host": "github",
                "stagingbot.dev/repo-id": str(REPO_ID),
                "stagingbot.dev/number": "2",
                "stagingbot.dev/sha": SHA1,
            },
            "annotations": {
                "stagingbot.dev/repo": REPO,
                "stagingbot.dev/url": "https://u/",
                "stagingbot.dev/archived": "true",
            },
            "deletionTimestamp": "2024-01-01T00:00:00Z",
        }
    }
    by_hand = {"metadata": {"name": "ns-x", "labels": {"stagingbot.dev/host": "github"}}}
    configmaps = [
        {"metadata": {"name": "stagingbot-overrides", "namespace": "ns-2"}, "data": {"A": "1"}},
        {"metadata": {"name": "settings", "namespace": "ns-2"}, "data": {"B": "2"}},
    ]

    (staging,) = inventory.stagings([namespace, by_hand], configmaps)

    assert staging == ClusterStaging(
        KEY, "ns-2", REPO, SHA1, "https://u/", terminating=True, archived=True, overrides={"A": "1"}
    )


# -- the schedule -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "fields"),
    [
        (30, {"second": {0, 30}}),
        (60, {"minute": set(range(60)), "second": {0}}),
        (300, {"minute": set(range(0, 60, 5)), "second": {0}}),
        (3600, {"hour": set(range(24)), "minute": {0}, "second": {0}}),
        (21600, {"hour": {0, 6, 12, 18}, "minute": {0}, "second": {0}}),
        (420, None),
        (90, None),
        (0, None),
        (1.5, None),
    ],
)
def test_an_interval_runs_on_the_clock_when_it_divides_a_minute_hour_or_day(
    interval: float, fields: dict[str, set[int]] | None
) -> None:
    assert cron_fields(interval) == fields


def test_the_sweep_interval_defaults_to_five_minutes_and_refuses_one_off_the_clock() -> None:
    required = {
        "STAGINGBOT_GITHUB_WEBHOOK_SECRET": "s",
        "STAGINGBOT_GITHUB_TOKEN": "t",
        "STAGINGBOT_STAGING_SECRET_KEY": "k",
        "STAGINGBOT_STAGING_BASE_DOMAIN": "staging.example.com",
    }
    assert load_config(None, required).sweep.interval == 300
    assert load_config(None, {**required, "STAGINGBOT_SWEEP_INTERVAL": "0"}).sweep.interval == 0
    for wrong, seconds in (("7m", "420"), ("30s", "30"), ("-300", "-300")):
        with pytest.raises(ConfigError, match=rf"sweep\.interval: .* got {seconds} s"):
            load_config(None, {**required, "STAGINGBOT_SWEEP_INTERVAL": wrong})
