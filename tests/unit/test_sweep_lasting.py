"""Kept decisions, workload health and the sweep's use of them, as pure functions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot import naming
from bot.config import ConfigError, load_config
from bot.model import Phase, PullRequest, RepoRef, Rollout, StagingKey
from bot.provision import decisions, health
from bot.provision.archive import ANNOTATION_ARCHIVED
from bot.provision.decisions import KEPT, Decision
from bot.store import StagingRecord
from bot.sweep_plan import Listing, plan
from handlers import health as staging_health
from handlers import plan as staging_plan
from tests.helpers import REPO, REPO_ID, make_config

KEY = StagingKey("github", REPO_ID, 2)
SHA1, SHA2 = "1" * 40, "2" * 40
PR = PullRequest(RepoRef("github", REPO_ID, REPO), 2, SHA1, "b", "t", "a", "u", open=True)


def workload(kind: str, replicas: int | None, ready: int, **metadata: Any) -> dict[str, Any]:
    status = {"availableReplicas" if kind == "Deployment" else "readyReplicas": ready}
    spec = {} if replicas is None else {"replicas": replicas}
    labels = naming.selector_labels(KEY, "default")
    return {
        "kind": kind,
        "metadata": {"name": "web", "labels": labels, **metadata},
        "spec": spec,
        "status": status,
    }


def test_a_decision_survives_its_configmap_and_its_file() -> None:
    decision = Decision(KEY, SHA1, by="octocat", at=1700000000.5, reason="removed", repo=REPO)
    cm = decisions.to_configmap(decision, "Blue Bot", "stagingbot")
    assert cm["metadata"]["namespace"] == "stagingbot"
    assert cm["metadata"]["name"] == f"stagingbot-decision-blue-bot-github-{REPO_ID}-2"
    assert decisions.from_configmaps([cm]) == {KEY: decision}
    assert decisions.load(decisions.dump({KEY: decision})) == {KEY: decision}


def test_what_does_not_read_as_a_decision_is_skipped_not_guessed() -> None:
    bad = [{"data": {"key": "nonsense", "sha": SHA1}}, {"data": {"key": str(KEY)}}, {}]
    assert decisions.from_configmaps(bad) == {}
    with pytest.raises(ValueError):
        decisions.load("[1, 2]")


def test_unavailable_workloads_are_named_archived_and_zero_replica_ones_are_healthy() -> None:
    found = health.unavailable(
        [
            workload("Deployment", 2, 1),
            workload("StatefulSet", None, 0),
            workload("Deployment", 0, 0),
            workload("Deployment", 1, 0, annotations={ANNOTATION_ARCHIVED: "true"}),
            {"kind": "Deployment", "metadata": {"name": "unlabelled"}, "spec": {}, "status": {}},
        ]
    )
    assert found == {KEY: "deployment web: 1/2 available; statefulset web: 0/1 available"}
    assert health.unavailable([workload("Deployment", 1, 1)]) == {}


def test_a_running_staging_fails_when_unavailable_and_runs_again_when_available() -> None:
    crash = Rollout(False, True, "container web is crash-looping (exit code 1, restarted 5 times)")
    assert staging_health.verdict(Phase.RUNNING, crash, "deployment web: 0/1 available") == (
        Phase.FAILED,
        "no longer available: container web is crash-looping (exit code 1, restarted 5 times)",
    )
    waiting = Rollout(False, reason="waiting for deployment web: 0/1 available")
    assert staging_health.verdict(Phase.RUNNING, waiting, "") == (
        Phase.FAILED,
        "no longer available: deployment web: 0/1 available",
    )
    assert staging_health.verdict(Phase.RUNNING, Rollout(True), "seen") is None
    assert staging_health.verdict(Phase.FAILED, Rollout(True), "") == (Phase.RUNNING, "")
    assert staging_health.verdict(Phase.FAILED, waiting, "") is None


def record(**fields: str) -> StagingRecord:
    base = {
        "key": str(KEY),
        "repo": REPO,
        "desired_sha": SHA1,
        "sha": SHA1,
        "generation": "1",
        "handled": "1",
    }
    return StagingRecord(KEY, {**base, **fields})


def test_only_a_failure_of_health_is_looked_at_again() -> None:
    failed = record(phase="failed", failure=staging_health.FAILURE)
    assert staging_health.needs_look(Phase.FAILED, failed)
    assert not staging_health.needs_look(Phase.FAILED, record(phase="failed", failure="rollout"))
    assert not staging_health.needs_look(Phase.RUNNING, record(phase="running"))
    assert staging_health.needs_look(Phase.RUNNING, record(phase="running", health="x"))


def sweep_with(
    kept: dict[StagingKey, Decision] | None, pr: PullRequest = PR
) -> list[tuple[str, dict[str, str]]]:
    config = make_config("redis://unused")
    listing = Listing("github", REPO, (pr,))
    report = plan([], [listing], {}, config, 0.0, kept)
    return [(a.kind, dict(a.fields)) for a in report.actions]


def test_a_kept_decision_makes_the_created_record_stay_gone() -> None:
    ((kind, fields),) = sweep_with({KEY: Decision(KEY, SHA1, by="octocat")})
    assert kind == "create" and fields["phase"] == Phase.GONE
    assert fields[staging_plan.DECISION] == staging_plan.DESTROY
    assert fields[staging_plan.DECISION_SHA] == SHA1 and fields[KEPT] == SHA1
    record_ = StagingRecord(KEY, fields)
    assert staging_plan.decide(PR, make_config("redis://u").rules(), record_).want.value == "none"


def test_a_decision_from_before_a_push_no_longer_holds() -> None:
    ((kind, fields),) = sweep_with({KEY: Decision(KEY, SHA2)})
    assert kind == "create" and "phase" not in fields  # built as any new request
    assert fields[KEPT] == SHA2  # ...and the deploy drops the kept decision


def test_no_record_is_created_when_the_decisions_cannot_be_read() -> None:
    assert sweep_with(None) == []


def test_the_sweep_reports_health_changes_only_for_running_or_health_failed_stagings() -> None:
    config = make_config("redis://unused")
    listing = [Listing("github", REPO, (PR,))]
    seen = {KEY: "deployment web: 0/1 available"}
    looked = frozenset({KEY})

    def actions(rec: StagingRecord, unhealthy: dict[StagingKey, str]) -> list[str]:
        report = plan([], listing, {KEY: rec}, config, 0.0, {}, unhealthy, looked)
        return [f"{a.kind}: {a.why}" for a in report.actions]

    running = record(phase="running", applied=f"{SHA1}||")
    assert actions(running, seen) == ["health: running, but unavailable: " + seen[KEY]]
    assert actions(running, {}) == []
    failed = record(
        phase="failed", failure="health", applied=f"{SHA1}||", reported=f"failed|{SHA1}|x"
    )
    assert actions(failed, {}) == ["health: failed as unavailable, available again"]
    assert actions(failed, seen) == []
    report = plan([], listing, {KEY: running}, config, 0.0, {}, None, frozenset())
    assert report.actions == ()  # not read: nothing changes


def test_a_state_namespace_that_is_no_namespace_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[kubernetes]\nstate_namespace = "Stagingbot State"\n')
    with pytest.raises(ConfigError, match="kubernetes.state_namespace: expected a namespace"):
        load_config(str(path), {})
