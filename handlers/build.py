"""The build gate in the reconcile job: deploy a new head only once its build is ready.

Before a new commit is applied, the host is asked whether the checks named in
`staging.wait_for` succeeded on it (GitHub check runs and commit statuses, GitLab pipeline
jobs), and with `staging.wait_for_image` the registry whether the rendered image exists.
Until then the staging is `waiting for build` (or `build failed`) and whatever ran before
keeps running. The intake wakes the staging when a build finishes (`bot.build_index`),
the sweep re-checks it as a backstop, and `deploy --sha` through the API declares a
commit built.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot import build_gate, build_index
from bot.build_gate import Judgement, Verdict
from bot.errors import PermanentError
from bot.hosts.base import GitHost
from bot.model import Phase, PullRequest, Target
from bot.registry import Registry
from bot.services import Services
from bot.store import StagingRecord

HELD_PHASE = "held_phase"  # record field: the phase before the staging started waiting
NOT_BUILT = (Phase.WAITING_FOR_BUILD, Phase.BUILD_FAILED)
# No webhook says an image was pushed: while only the image is missing, look again.
IMAGE_RECHECK = 20.0
CANNOT_CHECK_IMAGE = "cannot check the image {image}: {reason}"
# What was running before the wait, for which the comment says it still runs.
STILL_UP = (Phase.RUNNING.value, Phase.DEPLOYING.value)


@dataclass(frozen=True)
class Held:
    """The head is not deployed: why, and when to look again without an event."""

    phase: Phase
    reason: str
    recheck_in: float | None = None


def effective_phase(record: StagingRecord) -> Phase:
    """The staging's phase before it began to wait (what runs, if anything), else its phase."""
    phase = Phase(record.get("phase") or Phase.PENDING.value)
    if phase in NOT_BUILT:
        return Phase(record.get(HELD_PHASE) or Phase.PENDING.value)
    return phase


def still_running_note(record: StagingRecord, url: str) -> str:
    """While a newer commit waits: the commit people can still test, if one runs."""
    if record.get("sha") and effective_phase(record).value in STILL_UP and url:
        return build_gate.still_runs(record.get("sha"), url)
    return ""


async def hold(
    svc: Services, host: GitHost, pr: PullRequest, target: Target, record: StagingRecord
) -> Held | None:
    """None when `pr.head_sha` may be deployed now; else why not, written to the index."""
    sha, key = pr.head_sha, record.key
    gate = svc.config.gate(svc.config.repo(key.host, record.get("repo")))
    # Built before: declared so, passed before, or already applied once (a redeploy).
    if not gate.active or sha in (record.get(build_index.BUILT_SHA), record.get("sha")):
        await _passed(svc, record, sha)
        return None
    judgement = build_gate.PASSED
    if gate.wait_for:
        report = await host.build_report(pr.repo, sha)
        judgement = build_gate.judge(gate.wait_for, report, sha)
    recheck = None
    if judgement.verdict is Verdict.PASSED and gate.wait_for_image and target.image:
        judgement = await _image(svc, target.image, sha)
        # Every few rollout polls (20 s by default), as long as only the image is missing.
        poll = min(IMAGE_RECHECK, 4 * svc.config.kubernetes.rollout_poll)
        recheck = poll if judgement.verdict is Verdict.WAITING else None
    if judgement.verdict is Verdict.PASSED:
        await _passed(svc, record, sha)
        await svc.store.update(key, {build_index.BUILT_SHA: sha})
        return None
    if record.get("phase") not in NOT_BUILT:
        await svc.store.update(key, {HELD_PHASE: record.get("phase") or Phase.PENDING.value})
    await build_index.remember(svc.store, key, sha)
    waiting = judgement.verdict is Verdict.WAITING
    return Held(
        Phase.WAITING_FOR_BUILD if waiting else Phase.BUILD_FAILED, judgement.reason, recheck
    )


async def _image(svc: Services, image: str, sha: str) -> Judgement:
    if svc.registry is None:
        svc.registry = Registry.from_config(svc.config.registry)
    try:
        found = await svc.registry.exists(image)
    except PermanentError as exc:  # wrong credentials, a broken reference: say so
        reason = CANNOT_CHECK_IMAGE.format(image=build_gate.code(image), reason=exc.reason)
        return Judgement(Verdict.FAILED, reason)
    return build_gate.PASSED if found else build_gate.image_missing(image, sha)


async def _passed(svc: Services, record: StagingRecord, sha: str) -> None:
    """Nothing waits any more: drop the index entry and the phase kept from before."""
    awaited = record.get(build_index.AWAITED_SHA)
    if awaited:
        await build_index.forget(svc.store, record.key, awaited)
