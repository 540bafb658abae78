"""Timers and quotas as pure functions: idle warning and sleep, retention, extend, the queue."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot import lifecycle
from bot.config import StagingConfig
from bot.lifecycle import Kind, Limits, admissible, due, duration_text, extend, sticky_note
from bot.model import Phase, StagingKey
from handlers import actions, plan

DAY, HOUR = 86400.0, 3600.0
T0 = 1_800_000_000.0  # the last deploy
HEAD = "a" * 40
KEY = StagingKey("github", 1, 2)
STAGING = StagingConfig()  # idle_ttl 3 days, warning 1 day, retention 14 days


def running(**fields: str) -> dict[str, str]:
    return {
        "phase": "running",
        "sha": HEAD,
        "desired": "running",
        "desired_sha": HEAD,
        lifecycle.DEPLOYED_AT: str(T0),
        **fields,
    }


def archived(**fields: str) -> dict[str, str]:
    return running(phase="archived", archived_at=str(T0 + 3 * DAY), **fields)


def test_a_running_staging_is_left_alone_until_the_warning_is_due() -> None:
    assert due(KEY, running(), STAGING, T0 + 2 * DAY - 1, "/staging") is None


def test_a_day_before_it_sleeps_it_is_warned_once_with_when_and_how_to_keep_it() -> None:
    fired = due(KEY, running(), STAGING, T0 + 2 * DAY, "/staging")
    assert fired is not None and fired.kind is Kind.WARN
    notice = fired.fields[lifecycle.NOTICE]
    assert "2027-01-18 08:00:00 UTC" in notice  # T0 + 3 days
    assert "`/staging extend`" in notice and "push" in notice
    warned = running(**fired.fields)
    assert due(KEY, warned, STAGING, T0 + 2 * DAY + HOUR, "/staging") is None


def test_after_idle_ttl_it_is_archived_automatically_with_the_reason() -> None:
    fired = due(KEY, running(), STAGING, T0 + 3 * DAY, "/staging")
    assert fired is not None and fired.kind is Kind.SLEEP
    assert fired.fields[plan.DECISION] == plan.ARCHIVE
    assert fired.fields[plan.DECISION_SHA] == HEAD
    assert fired.fields[plan.DECISION_BY] == "" and fired.fields["last_sender"] == ""
    assert fired.fields[plan.DECISION_REASON] == "idle for 3 days"


@pytest.mark.parametrize(
    "activity",
    [lifecycle.ACTIVE_AT, lifecycle.DEPLOYED_AT],
)
def test_any_activity_starts_the_idle_period_again(activity: str) -> None:
    warned = str(int(T0 + 3 * DAY))
    later = running(**{activity: str(T0 + 2.5 * DAY), lifecycle.IDLE_WARNED: warned})
    assert due(KEY, later, STAGING, T0 + 3 * DAY, "/staging") is None
    fired = due(KEY, later, STAGING, T0 + 4.5 * DAY, "/staging")
    assert fired is not None and fired.kind is Kind.WARN  # a new period: warned again


@pytest.mark.parametrize(
    "fields",
    [
        running(phase="deploying"),
        running(phase="pending"),
        running(phase="queued"),
        running(phase="gone"),
        running(desired="gone"),
        running(sha=""),
        running(decision="archive", decision_sha=HEAD),
        running(phase="awaiting approval", sha=""),
    ],
)
def test_no_timer_fires_on_a_staging_that_is_not_up_or_already_decided(
    fields: dict[str, str],
) -> None:
    assert due(KEY, fields, STAGING, T0 + 30 * DAY, "/staging") is None


def test_a_failed_staging_costs_too_and_sleeps_as_well() -> None:
    fired = due(KEY, running(phase="failed"), STAGING, T0 + 3 * DAY, "/staging")
    assert fired is not None and fired.kind is Kind.SLEEP


def test_idle_ttl_zero_turns_idle_sleep_off() -> None:
    assert due(KEY, running(), replace(STAGING, idle_ttl=0), T0 + 300 * DAY, "/staging") is None


def test_idle_warning_zero_sleeps_without_a_warning() -> None:
    staging = replace(STAGING, idle_warning=0)
    assert due(KEY, running(), staging, T0 + 3 * DAY - 1, "/staging") is None
    fired = due(KEY, running(), staging, T0 + 3 * DAY, "/staging")
    assert fired is not None and fired.kind is Kind.SLEEP


def test_an_archived_staging_is_removed_after_its_retention_with_a_notice() -> None:
    assert due(KEY, archived(), STAGING, T0 + 17 * DAY - 1, "/staging") is None
    fired = due(KEY, archived(), STAGING, T0 + 17 * DAY, "/staging")
    assert fired is not None and fired.kind is Kind.RETIRE
    assert fired.fields[plan.DECISION] == plan.DESTROY
    assert fired.fields[plan.DECISION_REASON] == "archived for 14 days (staging.archive_retention)"
    assert "`/staging deploy` creates it again" in fired.fields[lifecycle.NOTICE]


def test_retention_zero_keeps_archived_stagings() -> None:
    staging = replace(STAGING, archive_retention=0)
    assert due(KEY, archived(), staging, T0 + 365 * DAY, "/staging") is None


def test_extend_pushes_the_idle_deadline_and_never_brings_it_forward() -> None:
    now = T0 + 2 * DAY
    extension = extend(running(), STAGING, now, 2 * DAY, "alice")
    assert extension.until == now + 2 * DAY
    fields = running(**extension.changes)
    warned = due(KEY, fields, STAGING, T0 + 3 * DAY, "/staging")  # not archived: warned
    assert warned is not None and warned.kind is Kind.WARN
    assert "2027-01-19 08:00:00 UTC" in warned.fields[lifecycle.NOTICE]
    fired = due(KEY, fields, STAGING, now + 2 * DAY, "/staging")
    assert fired is not None and fired.kind is Kind.SLEEP
    shorter = extend(running(), STAGING, T0, HOUR, "alice")
    assert shorter.until == T0 + 3 * DAY  # the idle deadline already was later


def test_extend_without_a_duration_gives_a_whole_idle_period() -> None:
    assert extend(running(), STAGING, T0 + DAY, None, "alice").until == T0 + DAY + 3 * DAY


def test_extend_on_an_archived_staging_pushes_its_removal() -> None:
    now = T0 + 16 * DAY
    fields = archived(**extend(archived(), STAGING, now, 7 * DAY, "alice").changes)
    assert due(KEY, fields, STAGING, T0 + 17 * DAY, "/staging") is None
    assert due(KEY, fields, STAGING, now + 7 * DAY, "/staging") is not None


@pytest.mark.parametrize(
    ("fields", "staging", "seconds", "refusal"),
    [
        (running(), STAGING, 15 * DAY, "at most 14 days (staging.max_extend), not 15 days"),
        (running(phase="gone"), STAGING, None, "there is no staging to extend"),
        (running(phase="queued", sha=""), STAGING, None, "there is no staging to extend"),
        (running(), replace(STAGING, idle_ttl=0), None, "staging.idle_ttl = 0"),
        (archived(), replace(STAGING, archive_retention=0), None, "archive_retention = 0"),
    ],
)
def test_extend_is_refused_with_the_reason(
    fields: dict[str, str], staging: StagingConfig, seconds: float | None, refusal: str
) -> None:
    extension = extend(fields, staging, T0, seconds, "alice")
    assert refusal in extension.refusal and extension.changes == {}
    effect = actions.extend(fields, staging, T0, seconds, "alice")
    assert effect.refusal is actions.Refusal.CANNOT_EXTEND and refusal in effect.detail


def test_the_sticky_comment_shows_the_warning_only_while_it_holds() -> None:
    fired = due(KEY, running(), STAGING, T0 + 2 * DAY, "/staging")
    assert fired is not None
    warned = running(**fired.fields)
    note = sticky_note(warned, Phase.RUNNING, STAGING, "/staging")
    assert "archived at **2027-01-18 08:00:00 UTC**" in note and "`/staging extend" in note
    pushed = {**warned, lifecycle.ACTIVE_AT: str(T0 + 2 * DAY + HOUR)}
    assert sticky_note(pushed, Phase.RUNNING, STAGING, "/staging") == ""
    assert sticky_note(warned, Phase.DEPLOYING, STAGING, "/staging") == ""


def warned() -> dict[str, str]:
    """A running staging given its idle warning (it sleeps at T0 + 3 days)."""
    fired = due(KEY, running(), STAGING, T0 + 2 * DAY, "/s")
    assert fired is not None and fired.kind is Kind.WARN
    return running(**fired.fields)


def refused(fields: dict[str, str]) -> dict[str, str]:
    """`fields` after the provisioner refused to archive (it would delete data)."""
    why, remedy = "StatefulSet db deletes its volume claims", "set whenScaled: Retain"
    return {**fields, **lifecycle.archive_refused(fields, STAGING, why, remedy)}


def test_an_archive_refused_under_a_deadline_is_neither_tried_nor_warned_again() -> None:
    after = refused(warned())
    assert after[lifecycle.ARCHIVE_REFUSED_FOR] == str(int(T0 + 3 * DAY))
    for later in (T0 + 3 * DAY, T0 + 3 * DAY + 300, T0 + 30 * DAY):
        assert due(KEY, after, STAGING, later, "/s") is None
    assert lifecycle.timers_view(after, STAGING)["idle_until"] is None
    # An activity (or a deploy, or an extend) moves the deadline: one more try, warned first.
    active = {**after, lifecycle.ACTIVE_AT: str(T0 + 4 * DAY)}
    fired = due(KEY, active, STAGING, T0 + 6 * DAY, "/s")
    assert fired is not None and fired.kind is Kind.WARN
    fired = due(KEY, active, STAGING, T0 + 7 * DAY, "/s")
    assert fired is not None and fired.kind is Kind.SLEEP


def test_the_sticky_comment_says_why_it_was_not_archived_until_the_next_deploy() -> None:
    note = sticky_note(refused(warned()), Phase.RUNNING, STAGING, "/s")
    assert note.startswith("⚠️ **Not archived:** StatefulSet db deletes its volume claims.")
    assert "To archive it, set whenScaled: Retain; or remove it" in note and "`/s destroy`" in note
    assert "archived at" not in note  # the idle warning no longer holds
    assert sticky_note(refused(running()), Phase.DEPLOYING, STAGING, "/s") == ""
    deployed = {**refused(running()), **lifecycle.NOT_REFUSED}
    assert sticky_note(deployed, Phase.RUNNING, STAGING, "/s") == ""
    assert lifecycle.refused_reason(deployed) == ""
    assert lifecycle.refused_reason(refused(running())) == (
        "not archived: StatefulSet db deletes its volume claims; to archive, "
        "set whenScaled: Retain"
    )


def failed(fields: dict[str, str], partly: bool = False) -> dict[str, str]:
    """`fields` after an archive that failed for good (a 403), leaving `state`."""
    why = "archive StatefulSet/db: HTTP 403: forbidden"
    state = "partly archived: Deployment web is scaled down" if partly else "nothing changed"
    return {**fields, **lifecycle.archive_refused(fields, STAGING, why, "", state, partly)}


def test_a_failed_archive_is_said_as_a_failure_and_not_tried_again_under_its_deadline() -> None:
    after = failed(warned())
    for later in (T0 + 3 * DAY, T0 + 3 * DAY + 300):
        assert due(KEY, after, STAGING, later, "/s") is None
    note = sticky_note(after, Phase.RUNNING, STAGING, "/s")
    assert note.startswith("⚠️ **Archive failed:** archive StatefulSet/db: HTTP 403: forbidden.")
    assert "Nothing changed. To archive it, fix the cause" in note and "`/s archive`" in note
    assert "Not archived" not in note and "archived at" not in note
    assert lifecycle.refused_reason(after) == (
        "archive failed: archive StatefulSet/db: HTTP 403: forbidden; nothing changed"
    )
    partly = sticky_note(failed(running(), partly=True), Phase.RUNNING, STAGING, "/s")
    assert partly.startswith("⚠️ **Archive failed part-way:** archive StatefulSet/db")
    assert "Partly archived: Deployment web is scaled down. No data was deleted." in partly
    assert "`/s redeploy`" in partly
    # A deploy (which restores first) or an archive that goes through forgets it all.
    deployed = {**failed(running(), partly=True), **lifecycle.NOT_REFUSED}
    assert sticky_note(deployed, Phase.RUNNING, STAGING, "/s") == ""
    assert not deployed[lifecycle.ARCHIVE_PARTLY] and lifecycle.refused_reason(deployed) == ""


def test_the_sticky_comment_shows_the_queue_position_and_the_retention() -> None:
    queued = running(phase="queued", sha="", queue_position="3")
    assert "Position **3** in the queue" in sticky_note(queued, Phase.QUEUED, STAGING, "/s")
    assert sticky_note(queued, Phase.PENDING, STAGING, "/s") == ""  # leaving the queue
    note = sticky_note(archived(), Phase.ARCHIVED, STAGING, "/s")
    assert "removed after 14 days" in note and "2027-02-01" in note


def test_a_slot_goes_to_the_oldest_waiting_staging_that_fits_its_repository_quota() -> None:
    a1, a2, b1 = StagingKey("github", 1, 1), StagingKey("github", 1, 2), StagingKey("gitlab", 1, 1)
    held = [StagingKey("github", 1, 9)]
    assert admissible([a1, a2, b1], held, Limits(total=3)) == [a1, a2]
    assert admissible([a1, a2, b1], held, Limits(total=3, per_repo=1)) == [b1]
    assert admissible([a1, a2, b1], held, Limits(total=1)) == []
    assert admissible([a1, a2, b1], held, Limits()) == [a1, a2, b1]


def test_a_repository_with_its_own_cap_is_held_to_it_and_the_others_to_the_per_repo_one() -> None:
    a1, a2 = StagingKey("github", 1, 1), StagingKey("github", 1, 2)
    b1, b2 = StagingKey("github", 2, 1), StagingKey("github", 2, 2)
    held = [StagingKey("github", 1, 9), StagingKey("github", 2, 9)]
    own_one = Limits(per_repo=3, own={("github", 1): 1})
    assert admissible([a1, a2, b1, b2], held, own_one) == [b1, b2]
    unlimited_here = Limits(per_repo=1, own={("github", 1): 0})
    assert admissible([a1, a2, b1, b2], held, unlimited_here) == [a1, a2]
    assert admissible([a1, a2, b1, b2], held, replace(unlimited_here, total=3)) == [a1]


def test_the_queued_reason_names_the_cap_the_repository_is_under() -> None:
    shop, docs = ("github", 1), ("github", 2)
    limits = Limits(total=5, per_repo=3, own={shop: 1})
    reason = lifecycle.queued_reason
    assert reason(limits, shop) == (
        "at most 5 stagings run at once (staging.max_active)"
        " and at most 1 for this repository ([[repos]] max_active)"
    )
    assert "at most 3 per repository (staging.max_active_per_repo)" in reason(limits, docs)
    assert reason(Limits(per_repo=3, own={shop: 0}), shop) == "waiting for a free slot"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(3 * DAY, "3 days"), (DAY + 5 * HOUR, "1 day"), (12 * HOUR, "12 hours"), (90 * 60, "1 hour")],
)
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


def test_a_warning_not_posted_yet_is_stale_once_there_was_activity() -> None:
    fired = due(KEY, running(), STAGING, T0 + 2 * DAY, "/staging")
    assert fired is not None
    warned = running(**fired.fields)
    assert not lifecycle.notice_stale(warned, STAGING)
    assert lifecycle.notice_stale({**warned, lifecycle.ACTIVE_AT: str(T0 + 2 * DAY)}, STAGING)
    retired = due(KEY, archived(), STAGING, T0 + 17 * DAY, "/staging")
    assert retired is not None and not lifecycle.notice_stale(dict(retired.fields), STAGING)
