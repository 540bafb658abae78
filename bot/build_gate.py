"""The build gate (pure): has the commit to deploy been built, from what the host reports.

`staging.wait_for` names check runs or commit-status contexts (GitHub) or the jobs of the
head's latest pipeline (GitLab) that must have succeeded before a new head is deployed;
`staging.wait_for_image` asks the registry for the rendered image as well. Each host's
words are mapped here to three states, and the texts people read are made here too.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from bot.model import BuildCheck, BuildReport

PENDING, SUCCESS, FAILURE = "pending", "success", "failure"

# https://docs.github.com/en/rest/checks/runs: `conclusion` once `status` is completed.
# Neutral and skipped do not block a merge on GitHub, so they do not block a deploy.
GITHUB_PASSING = frozenset({"success", "neutral", "skipped"})
# https://docs.github.com/en/rest/commits/statuses: error, failure, pending, success.
GITHUB_STATUS = {"success": SUCCESS, "pending": PENDING, "failure": FAILURE, "error": FAILURE}
# https://docs.gitlab.com/api/jobs/: a job that did not succeed and never will; every
# other state (created, pending, running, manual, scheduled, ...) may still succeed.
GITLAB_FAILED = frozenset({"failed", "canceled", "skipped"})
GITLAB_FINISHED = frozenset({"success", "failed", "canceled", "skipped"})

WAITING_FOR = "waiting for {names} on {sha}"
NOT_STARTED = "waiting for {names} on {sha}: not started yet"
BUILD_FAILED = "{name} {detail} on {sha}"
NEVER_RAN = "{names} did not run on {sha} ({finished})"
WAITING_FOR_IMAGE = "waiting for the image {image} on {sha}: not in the registry yet"
STILL_RUNS = "The staging keeps running `{sha}` meanwhile: {url}"


class Verdict(enum.StrEnum):
    PASSED = "passed"
    WAITING = "waiting"
    FAILED = "failed"


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    reason: str = ""  # in words, e.g. "waiting for `build` on abc1234"


PASSED = Judgement(Verdict.PASSED)


def from_check_run(name: str, status: str, conclusion: str | None, url: str = "") -> BuildCheck:
    """A GitHub check run: only a completed run has a conclusion."""
    if status != "completed":
        return BuildCheck(name, PENDING, status, url)
    word = conclusion or "completed"
    return BuildCheck(name, SUCCESS if word in GITHUB_PASSING else FAILURE, word, url)


def from_status(context: str, state: str, url: str = "") -> BuildCheck:
    """A GitHub commit status."""
    return BuildCheck(context, GITHUB_STATUS.get(state, PENDING), state, url)


def from_gitlab_job(name: str, status: str, url: str = "") -> BuildCheck:
    """A GitLab pipeline job."""
    if status == "success":
        return BuildCheck(name, SUCCESS, status, url)
    return BuildCheck(name, FAILURE if status in GITLAB_FAILED else PENDING, status, url)


def latest_by_name(checks: Iterable[BuildCheck]) -> dict[str, BuildCheck]:
    """The first check of each name (hosts list the newest first), names casefolded."""
    found: dict[str, BuildCheck] = {}
    for check in checks:
        found.setdefault(check.name.casefold(), check)
    return found


def judge(wanted: Iterable[str], report: BuildReport, sha: str) -> Judgement:
    """Whether every wanted check succeeded on `sha`: a failure fails the gate at once."""
    found = latest_by_name(report.checks)
    missing, pending = [], []
    for name in wanted:
        check = found.get(name.casefold())
        if check is None:
            missing.append(name)
        elif check.state == FAILURE:
            reason = BUILD_FAILED.format(name=code(name), detail=_failed(check), sha=short(sha))
            return Judgement(Verdict.FAILED, reason)
        elif check.state == PENDING:
            pending.append(name)
    if missing and report.finished:
        reason = NEVER_RAN.format(names=names(missing), sha=short(sha), finished=report.finished)
        return Judgement(Verdict.FAILED, reason)
    if pending or missing:
        text = WAITING_FOR if pending else NOT_STARTED
        return Judgement(
            Verdict.WAITING, text.format(names=names(pending + missing), sha=short(sha))
        )
    return PASSED


def image_missing(image: str, sha: str) -> Judgement:
    return Judgement(Verdict.WAITING, WAITING_FOR_IMAGE.format(image=code(image), sha=short(sha)))


def still_runs(sha: str, url: str) -> str:
    """The comment's note while a newer commit waits: what people can still test."""
    return STILL_RUNS.format(sha=short(sha), url=url)


def _failed(check: BuildCheck) -> str:
    word = check.detail.replace("_", " ") if check.detail else "failed"
    return "failed" if word in ("failure", "failed") else f"failed ({word})"


def names(items: Iterable[str]) -> str:
    return ", ".join(code(item) for item in items)


def code(text: str) -> str:
    return "`" + text.replace("`", "'") + "`"


def short(sha: str) -> str:
    return sha[:7]
