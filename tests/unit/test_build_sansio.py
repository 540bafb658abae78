"""Build deliveries → build signals, with GitHub's and GitLab's example payloads."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from bot.build_intake import unused
from bot.events import MalformedPayload
from bot.hosts import github_sansio, gitlab_sansio
from tests.conftest import load_fixture
from tests.helpers import PR_HEAD, REPO, REPO_ID, make_config

CHECK_RUN = "check_run.completed.abridged.json"
STATUS = "status.with-installation.abridged.json"
WORKFLOW_RUN = "workflow_run.completed.with-pull-requests.abridged.json"


def test_a_completed_check_run_names_its_commit_check_and_pull_request() -> None:
    delivery = github_sansio.parse_delivery("check_run", load_fixture(CHECK_RUN))

    (signal,) = delivery.builds
    assert (signal.repo.id, signal.repo.full_name) == (REPO_ID, REPO)
    assert signal.sha == PR_HEAD
    assert signal.names == ("Octocoders-linter",)
    assert signal.numbers == (2,)
    assert signal.event == "check_run.completed"


def test_a_check_run_that_did_not_complete_is_ignored_with_the_reason() -> None:
    payload = load_fixture("check_run.rerequested.json")

    delivery = github_sansio.parse_delivery("check_run", payload)

    assert not delivery.builds
    assert delivery.ignored == (
        "check_run.rerequested: only a completed check run can open the build gate"
    )


def test_a_completed_check_suite_stands_for_any_build_of_its_commit() -> None:
    payload = copy.deepcopy(load_fixture("check_suite.rerequested.json"))
    payload["action"] = "completed"

    (signal,) = github_sansio.parse_delivery("check_suite", payload).builds

    assert signal.names == () and signal.sha == PR_HEAD and signal.numbers == (2,)


def test_a_status_names_its_context_but_no_pull_request() -> None:
    payload = load_fixture(STATUS)

    (signal,) = github_sansio.parse_delivery("status", payload).builds

    assert signal.sha == payload["sha"] and signal.names == ("default",)
    assert signal.numbers == ()
    pending = {**payload, "state": "pending"}
    assert "only a finished status" in github_sansio.parse_delivery("status", pending).ignored


def test_a_workflow_run_keeps_only_pull_requests_into_its_own_repository() -> None:
    # GitHub's example names a pull request of another repository (Codertocat/Hello-World)
    # than the one the workflow ran in (octo-org/octo-repo).
    payload = load_fixture(WORKFLOW_RUN)

    (signal,) = github_sansio.parse_delivery("workflow_run", payload).builds

    assert signal.repo.full_name == "octo-org/octo-repo"
    assert signal.sha == "3484a3fb816e0859fd6e1cea078d76385ff50625"
    assert signal.numbers == ()


def test_a_build_payload_without_its_commit_is_malformed() -> None:
    payload = copy.deepcopy(load_fixture(CHECK_RUN))
    del payload["check_run"]["head_sha"]

    with pytest.raises(MalformedPayload, match="head_sha"):
        github_sansio.parse_delivery("check_run", payload)


def test_a_gitlab_pipeline_names_its_commit_jobs_and_merge_request() -> None:
    payload = load_fixture("pipeline.json", host="gitlab")

    (signal,) = gitlab_sansio.parse_delivery("Pipeline Hook", payload).builds

    assert signal.repo.id == 1 and signal.repo.full_name == "gitlab-org/gitlab-test"
    assert signal.sha == "bcbb5ec396a2c0f828686f14fac9b80b780504f2"
    assert "build-image" in signal.names and "test-build" in signal.names
    assert signal.numbers == (1,)


def test_a_gitlab_pipeline_that_did_not_start_is_ignored() -> None:
    payload = copy.deepcopy(load_fixture("pipeline.json", host="gitlab"))
    payload["object_attributes"]["status"] = "pending"

    delivery = gitlab_sansio.parse_delivery("Pipeline Hook", payload)

    assert not delivery.builds and "no job has finished" in delivery.ignored


def test_a_build_no_gate_of_this_bot_waits_for_is_ignored_with_the_reason() -> None:
    (signal,) = github_sansio.parse_delivery("check_run", load_fixture(CHECK_RUN)).builds
    config = make_config("redis://127.0.0.1:6379/0")
    gated = replace(config, staging=replace(config.staging, wait_for=("Octocoders-linter",)))
    elsewhere = replace(signal, repo=replace(signal.repo, full_name="someone/else"))

    assert "staging.wait_for is empty" in unused(signal, config)
    assert unused(signal, gated) == ""
    assert "is not a repository this bot serves" in unused(elsewhere, gated)
    other = replace(config, staging=replace(config.staging, wait_for=("build",)))
    assert (
        unused(signal, other) == "check_run.completed: Octocoders-linter is not in staging.wait_for"
    )
