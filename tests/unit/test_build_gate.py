"""The build gate's judgement from what the hosts report (pure)."""

from __future__ import annotations

from bot import build_gate
from bot.build_gate import Verdict, judge
from bot.model import BuildCheck, BuildReport

SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


def report(*checks: BuildCheck, finished: str = "") -> BuildReport:
    return BuildReport(checks, finished)


def test_every_wanted_check_must_have_succeeded() -> None:
    build = build_gate.from_check_run("build", "completed", "success")
    lint = build_gate.from_check_run("lint", "in_progress", None)

    assert judge(["build"], report(build, lint), SHA).verdict is Verdict.PASSED
    waiting = judge(["build", "lint"], report(build, lint), SHA)
    assert waiting.verdict is Verdict.WAITING
    assert waiting.reason == "waiting for `lint` on ec26c3e"


def test_a_check_that_never_started_is_waited_for_and_said_so() -> None:
    waiting = judge(["build"], report(), SHA)

    assert waiting.verdict is Verdict.WAITING
    assert waiting.reason == "waiting for `build` on ec26c3e: not started yet"


def test_a_failed_check_fails_the_gate_with_the_hosts_word() -> None:
    timed_out = build_gate.from_check_run("build", "completed", "timed_out")
    failed_status = build_gate.from_status("ci/images", "error")

    assert judge(["build"], report(timed_out), SHA).reason == (
        "`build` failed (timed out) on ec26c3e"
    )
    assert judge(["ci/images"], report(failed_status), SHA).verdict is Verdict.FAILED


def test_the_newest_check_of_a_name_decides_so_a_rerun_counts() -> None:
    rerun = build_gate.from_check_run("build", "completed", "success")
    first = build_gate.from_check_run("build", "completed", "failure")

    assert judge(["Build"], report(rerun, first), SHA).verdict is Verdict.PASSED


def test_neutral_and_skipped_runs_do_not_block_like_on_github() -> None:
    for conclusion in ("neutral", "skipped"):
        check = build_gate.from_check_run("build", "completed", conclusion)
        assert judge(["build"], report(check), SHA).verdict is Verdict.PASSED


def test_a_gitlab_job_missing_from_a_finished_pipeline_fails_instead_of_waiting_for_ever() -> None:
    other = build_gate.from_gitlab_job("test", "success")
    finished = report(other, finished="pipeline #31 finished: success")

    failed = judge(["build"], finished, SHA)

    assert failed.verdict is Verdict.FAILED
    assert failed.reason == "`build` did not run on ec26c3e (pipeline #31 finished: success)"


def test_gitlab_job_states_map_to_pending_success_or_failure() -> None:
    assert build_gate.from_gitlab_job("build", "manual").state == build_gate.PENDING
    assert build_gate.from_gitlab_job("build", "running").state == build_gate.PENDING
    assert build_gate.from_gitlab_job("build", "canceled").state == build_gate.FAILURE
    assert build_gate.from_gitlab_job("build", "success").state == build_gate.SUCCESS
