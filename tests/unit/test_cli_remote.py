"""The API commands of `stagingbot`, against the API contract mocked with respx: what each
sends, what it prints for people and with --json, and which exit code it ends with."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import respx

from bot.cli import main
from bot.cli_remote import Terminal

URL = "https://stagingbot.example.com"
TOKEN = "sbt-7Yh2kQ9wXr4mN8pL3vB6"
ENV = {"STAGINGBOT_URL": URL, "STAGINGBOT_TOKEN": TOKEN}
REF = "github:octo/shop#12"
PATH = "/api/stagings/github%3Aocto%2Fshop%2312"
NOW = 1_750_000_000.0
SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
NEW_SHA = "0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f6a7b8c9d0"

SUMMARY: dict[str, Any] = {
    "ref": REF,
    "host": "github",
    "repo": "octo/shop",
    "number": 12,
    "state": "running",
    "url": "https://shop-pr-12.staging.example.com",
    "pr_url": "https://github.com/octo/shop/pull/12",
    "sha": SHA,
    "branch": "feature/login",
    "title": "Add a login page",
    "author": "octocat",
    "updated_at": NOW - 300,
}
APPLIED = {"at": NOW - 400, "action": "deploy", "result": "applied", "sha": SHA, "by": "octocat"}
RAN = {"at": NOW - 300, "action": "running", "result": "ok", "sha": SHA, "by": "octocat"}


def detail(**changes: Any) -> dict[str, Any]:
    staging = {
        **SUMMARY,
        "reason": "",
        "namespace": "stg-shop-pr-12",
        "overrides": {"GREETING": "hello", "API_KEY": "**********"},
        "history": [RAN, APPLIED],
    }
    return {**staging, **changes}


class FakeClock:
    """Monotonic time that only moves when the command sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Ran:
    code: int
    out: str
    err: str


def cli(
    *argv: str, env: dict[str, str] | None = None, tty: bool = False, clock: FakeClock | None = None
) -> Ran:
    out, err = io.StringIO(), io.StringIO()
    clock = clock or FakeClock()
    term = Terminal(out, err, clock.monotonic, lambda: NOW, clock.sleep, tty)
    code = main(list(argv), environ=ENV if env is None else env, terminal=term)
    ran = Ran(code, out.getvalue(), err.getvalue())
    assert TOKEN not in ran.out + ran.err  # whatever happened, the token was never shown
    return ran


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=URL, assert_all_called=True) as router:
        yield router


# --- reading -------------------------------------------------------------------------------


def test_list_prints_one_row_per_staging_with_its_state_commit_age_and_url(
    api: respx.MockRouter,
) -> None:
    other = {**SUMMARY, "ref": "gitlab:grp/sub/app!3", "state": "failed", "sha": "", "url": ""}
    api.get("/api/stagings").respond(200, json={"stagings": [SUMMARY, other]})

    ran = cli("list")

    assert ran.code == 0
    header, first, second = ran.out.splitlines()
    assert header.split() == ["REF", "STATE", "SHA", "UPDATED", "URL", "TITLE"]
    assert first.split()[:5] == [REF, "running", SHA[:7], "5m", "ago"]
    assert "https://shop-pr-12.staging.example.com  Add a login page" in first
    assert second.split()[:3] == ["gitlab:grp/sub/app!3", "failed", "-"]
    assert first.index("running") == header.index("STATE")  # columns line up


def test_list_sends_the_filters_as_query_parameters(api: respx.MockRouter) -> None:
    route = api.get("/api/stagings").respond(200, json={"stagings": []})

    ran = cli("list", "--host", "gitlab", "--repo", "grp/app", "--state", "failed", "--search", "x")

    assert ran.out == "no stagings\n"
    params = route.calls.last.request.url.params
    assert dict(params) == {"host": "gitlab", "repo": "grp/app", "state": "failed", "q": "x"}


def test_list_with_json_prints_the_apis_answer(api: respx.MockRouter) -> None:
    api.get("/api/stagings").respond(200, json={"stagings": [SUMMARY]})
    ran = cli("list", "--json")
    assert json.loads(ran.out) == {"stagings": [SUMMARY]}


def test_show_prints_the_staging_its_overrides_as_masked_and_recent_history(
    api: respx.MockRouter,
) -> None:
    api.get(PATH).respond(200, json=detail(state="failed", reason="image cannot be pulled"))

    ran = cli("show", REF)

    assert ran.code == 0
    lines = ran.out.splitlines()
    assert "state:     failed" in lines
    assert "reason:    image cannot be pulled" in lines
    assert "request:   https://github.com/octo/shop/pull/12" in lines
    assert "namespace: stg-shop-pr-12" in lines
    assert lines[lines.index("overrides:") + 1 :][:2] == [
        "  API_KEY=**********",
        "  GREETING=hello",
    ]
    history = lines[lines.index("history:") + 1 :]
    assert history[0].split() == ["WHEN", "ACTION", "RESULT", "SHA", "BY", "REASON"]
    assert history[1].split()[2:] == ["running", "ok", SHA[:7], "octocat"]


def test_show_with_json_prints_the_apis_answer(api: respx.MockRouter) -> None:
    api.get(PATH).respond(200, json=detail())
    assert json.loads(cli("show", REF, "--json").out) == detail()


def test_history_prints_every_entry_newest_first(api: respx.MockRouter) -> None:
    entries = [{**RAN, "at": NOW - i, "reason": f"entry {i}"} for i in range(8)]
    api.get(PATH).respond(200, json=detail(history=entries))

    ran = cli("history", REF)

    rows = ran.out.splitlines()[1:]
    assert [row.split()[-1] for row in rows] == [str(i) for i in range(8)]
    assert json.loads(cli("history", REF, "--json").out) == entries


def test_references_are_url_encoded_and_short_forms_name_their_host(
    api: respx.MockRouter,
) -> None:
    gitlab = api.get("/api/stagings/gitlab%3Agrp%2Fsub%2Fapp%213").respond(200, json=detail())
    github = api.get(PATH).respond(200, json=detail())

    assert cli("show", "grp/sub/app!3").code == 0
    assert cli("show", "octo/shop#12").code == 0

    assert gitlab.calls.last.request.url.raw_path == b"/api/stagings/gitlab%3Agrp%2Fsub%2Fapp%213"
    assert github.call_count == 1


@pytest.mark.parametrize("ref", ["octo/shop", "github:octo/shop!12", "shop#12", "octo/shop#0"])
def test_a_malformed_reference_exits_2_before_sending_anything(
    api: respx.MockRouter, ref: str
) -> None:
    ran = cli("show", ref)
    assert ran.code == 2 and "is not a staging" in ran.err
    assert api.calls.call_count == 0


# --- actions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action", ["deploy", "redeploy", "archive", "restore", "destroy", "extend"]
)
def test_each_action_is_posted_and_its_acceptance_printed(
    api: respx.MockRouter, action: str
) -> None:
    answer = {"ref": REF, "action": action, "accepted": True}
    route = api.post(f"{PATH}/{action}").respond(202, json=answer)

    assert cli(action, REF).out == f"{action} of {REF} accepted\n"
    assert json.loads(cli(action, REF, "--json").out) == answer
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


def test_deploy_sends_the_sha_to_approve(api: respx.MockRouter) -> None:
    route = api.post(f"{PATH}/deploy").respond(202, json={"ref": REF, "accepted": True})
    assert cli("deploy", REF, "--sha", NEW_SHA[:12]).code == 0
    assert json.loads(route.calls.last.request.content) == {"sha": NEW_SHA[:12]}


def test_extend_sends_the_duration_and_prints_until_when(api: respx.MockRouter) -> None:
    answer = {"ref": REF, "action": "extend", "accepted": True, "until": NOW + 2 * 86400}
    route = api.post(f"{PATH}/extend").respond(202, json=answer)

    ran = cli("extend", REF, "--for", "2d")

    assert ran.code == 0
    assert json.loads(route.calls.last.request.content) == {"duration": "2d"}
    assert ran.out == (
        f"extend of {REF} accepted\n{REF} is kept until at least 2025-06-17 15:06 UTC\n"
    )
    assert cli("extend", REF).code == 0
    assert route.calls.last.request.content == b""  # the server's default: its idle time


def test_a_duration_that_is_not_one_exits_2_before_anything_is_sent(
    api: respx.MockRouter,
) -> None:
    ran = cli("extend", REF, "--for", "a while")
    assert ran.code == 2
    assert "is not a duration: give a number and a unit" in ran.err
    assert api.calls.call_count == 0


def test_a_sha_that_is_not_one_exits_2_with_the_comment_rules_words(
    api: respx.MockRouter,
) -> None:
    ran = cli("deploy", REF, "--sha", "main")
    assert ran.code == 2
    assert "`main` is not a commit SHA: give 7 to 40 hex characters" in ran.err
    assert api.calls.call_count == 0


def test_set_puts_each_value_and_says_which_keys_are_secret(api: respx.MockRouter) -> None:
    plain = api.put(f"{PATH}/overrides/GREETING").respond(
        200, json={"key": "GREETING", "secret": False}
    )
    secret = api.put(f"{PATH}/overrides/API_KEY").respond(
        200, json={"key": "API_KEY", "secret": True}
    )

    ran = cli("set", REF, "GREETING=hello world", "API_KEY=s3cr3t-value")

    assert ran.out.splitlines() == [
        f"set GREETING on {REF}",
        f"set API_KEY on {REF} (secret: shown masked)",
    ]
    assert json.loads(plain.calls.last.request.content) == {"value": "hello world"}
    assert json.loads(secret.calls.last.request.content) == {"value": "s3cr3t-value"}
    assert "s3cr3t-value" not in ran.out + ran.err
    answers = json.loads(cli("set", REF, "GREETING=hi", "API_KEY=x", "--json").out)
    assert answers == [{"key": "GREETING", "secret": False}, {"key": "API_KEY", "secret": True}]


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("greeting=hi", "keys are upper case: `GREETING`"),
        ("GREETING", "`GREETING` is not KEY=VALUE"),
        ("1KEY=x", "use A-Z, 0-9 and _"),
        ("GREETING=a\x07b", "control character U+0007"),
        ("=x", "a key can't be empty"),
    ],
)
def test_set_checks_every_value_by_the_comment_rules_before_sending_any(
    api: respx.MockRouter, word: str, message: str
) -> None:
    ran = cli("set", REF, "OK=1", word)
    assert ran.code == 2 and message in ran.err
    assert api.calls.call_count == 0


def test_set_refuses_a_key_given_twice(api: respx.MockRouter) -> None:
    ran = cli("set", REF, "A=1", "A=2")
    assert ran.code == 2 and "`A` is given twice" in ran.err


def test_unset_deletes_each_key(api: respx.MockRouter) -> None:
    first = api.delete(f"{PATH}/overrides/GREETING").respond(204)
    api.delete(f"{PATH}/overrides/API_KEY").respond(204)

    ran = cli("unset", REF, "GREETING", "API_KEY", "GREETING")

    assert ran.out.splitlines() == [f"unset GREETING on {REF}", f"unset API_KEY on {REF}"]
    assert first.call_count == 1
    as_json = json.loads(cli("unset", REF, "GREETING", "--json").out)
    assert as_json == {"ref": REF, "unset": ["GREETING"]}


def test_unset_of_a_bad_key_exits_2(api: respx.MockRouter) -> None:
    ran = cli("unset", REF, "lower")
    assert ran.code == 2 and "keys are upper case" in ran.err


def test_sweep_with_a_server_queues_one_through_the_api(api: respx.MockRouter) -> None:
    api.post("/api/sweep").respond(202, json={"queued": True})
    assert cli("sweep").out == "sweep queued\n"
    assert json.loads(cli("sweep", "--json").out) == {"queued": True}


def test_sweep_with_both_a_config_and_a_server_is_a_usage_error() -> None:
    ran = cli("sweep", "--config", "stagingbot.toml", "--url", URL)
    assert ran.code == 2 and "not both" in ran.err


def test_sweep_with_a_config_runs_here_even_when_a_server_is_in_the_environment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ran = cli("sweep", "--config", "/nonexistent/stagingbot.toml")  # ENV names a server
    assert ran.code == 2
    assert "configuration error" in capsys.readouterr().err  # it read the file, asked nobody


# --- exit codes and errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "words"),
    [
        (401, 3, "HTTP 401 not signed in"),
        (403, 3, "HTTP 403 not allowed"),
        (404, 4, "HTTP 404 not found"),
        (409, 5, "HTTP 409 conflict"),
        (422, 5, "HTTP 422 refused"),
        (400, 5, "HTTP 400 error"),
        (500, 1, "HTTP 500 server error"),
        (501, 1, "HTTP 501 not implemented by this server"),
        (503, 1, "HTTP 503 server error"),
    ],
)
def test_each_kind_of_failure_has_its_exit_code_and_the_servers_reason(
    api: respx.MockRouter, status: int, code: int, words: str
) -> None:
    api.post(f"{PATH}/archive").respond(status, json={"error": "the reason"})
    ran = cli("archive", REF)
    assert ran.code == code
    assert ran.err == f"stagingbot: {words}: the reason\n"
    assert ran.out == ""


def test_an_unreachable_server_exits_1(api: respx.MockRouter) -> None:
    api.get("/api/stagings").mock(side_effect=httpx.ConnectError("connection refused"))
    ran = cli("list")
    assert ran.code == 1
    assert ran.err == f"stagingbot: cannot reach {URL}: connection refused\n"


def test_an_answer_without_json_exits_1(api: respx.MockRouter) -> None:
    api.get("/api/stagings").respond(200, text="<html>proxy login</html>")
    ran = cli("list")
    assert ran.code == 1 and "without JSON" in ran.err


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STAGINGBOT_TOKEN": TOKEN}, "no server: give --url or set STAGINGBOT_URL"),
        ({"STAGINGBOT_URL": URL}, "no token: give --token or set STAGINGBOT_TOKEN"),
        ({**ENV, "STAGINGBOT_URL": "stagingbot.example.com"}, "must be an http:// or https://"),
    ],
)
def test_a_missing_server_or_token_exits_2(env: dict[str, str], message: str) -> None:
    ran = cli("list", env=env)
    assert ran.code == 2 and message in ran.err


def test_url_and_token_options_win_over_the_environment() -> None:
    with respx.mock(base_url="https://other.example.com") as router:
        route = router.get("/api/stagings").respond(200, json={"stagings": []})
        ran = cli("list", "--url", "https://other.example.com/", "--token", "sbt-from-the-option")
    assert ran.code == 0
    assert route.calls.last.request.headers["authorization"] == "Bearer sbt-from-the-option"


def test_the_token_never_reaches_the_output_even_when_the_server_echoes_it(
    api: respx.MockRouter,
) -> None:
    api.get(PATH).respond(401, json={"error": f"token {TOKEN} is not known"})
    api.get("/api/stagings").mock(side_effect=httpx.ConnectError(f"failed with {TOKEN}"))

    shown, listed = cli("show", REF), cli("list")  # cli() asserts the token is absent

    assert shown.code == 3 and "token **** is not known" in shown.err
    assert listed.code == 1 and "failed with ****" in listed.err


def test_a_password_in_the_url_is_never_shown() -> None:
    url = "https://ci:hunter2@stagingbot.example.com"
    with respx.mock() as router:
        router.get(f"{URL}/api/stagings").mock(side_effect=httpx.ConnectError("refused"))
        ran = cli("list", env={**ENV, "STAGINGBOT_URL": url})
    assert ran.code == 1 and "hunter2" not in ran.err and "ci:****@" in ran.err


# --- --wait --------------------------------------------------------------------------------


def answers(*stagings: dict[str, Any]) -> list[httpx.Response]:
    return [httpx.Response(200, json=staging) for staging in stagings]


def test_wait_follows_a_deploy_until_running_with_one_line_per_state(
    api: respx.MockRouter,
) -> None:
    before = detail(state="archived", history=[APPLIED])
    deploying = detail(state="deploying", sha=NEW_SHA, history=[APPLIED])
    ran_new = {**RAN, "sha": NEW_SHA}
    running = detail(state="running", sha=NEW_SHA, history=[ran_new, APPLIED])
    api.get(PATH).mock(side_effect=answers(before, deploying, deploying, deploying, running))
    api.post(f"{PATH}/deploy").respond(202, json={"ref": REF, "accepted": True})
    clock = FakeClock()

    ran = cli("deploy", REF, "--wait", clock=clock)

    assert ran.code == 0
    assert ran.out == f"{REF} is running: https://shop-pr-12.staging.example.com\n"
    assert ran.err.splitlines() == [
        f"deploy of {REF} accepted",
        f"[   0s] {REF}: deploying",
        f"[   5s] {REF}: running",
    ]
    assert clock.sleeps == [1.0, 1.5, 2.25]  # a backoff
    assert "\r" not in ran.err  # no spinner in a CI log


def test_wait_ends_with_exit_6_and_the_reason_when_the_staging_fails(
    api: respx.MockRouter,
) -> None:
    failed_entry = {**RAN, "action": "failed", "result": "failure"}
    reason = "image cannot be pulled: registry.example.com/shop:0d1e2f3"
    failed = detail(state="failed", reason=reason, history=[failed_entry, RAN, APPLIED])
    api.get(PATH).mock(side_effect=answers(detail(), failed))
    api.post(f"{PATH}/redeploy").respond(202, json={"ref": REF, "accepted": True})

    ran = cli("redeploy", REF, "--wait")

    assert ran.code == 6
    assert ran.err.splitlines()[-1] == f"stagingbot: {REF} failed: {reason}"
    assert f"[   0s] {REF}: failed ({reason})" in ran.err.splitlines()


def test_wait_on_a_deploy_ends_with_exit_6_when_the_new_commits_build_fails(
    api: respx.MockRouter,
) -> None:
    reason = "`build` failed on 0d1e2f3"
    waiting = detail(state="waiting for build", history=[APPLIED])
    failed = detail(state="build failed", reason=reason, history=[APPLIED])
    api.get(PATH).mock(side_effect=answers(detail(), waiting, failed))
    api.post(f"{PATH}/deploy").respond(202, json={"ref": REF, "accepted": True})

    ran = cli("deploy", REF, "--wait", clock=FakeClock())

    assert ran.code == 6
    assert ran.err.splitlines()[-1] == f"stagingbot: {REF} failed: {reason}"


def test_wait_gives_up_after_the_timeout_with_exit_7(api: respx.MockRouter) -> None:
    api.get(PATH).mock(return_value=httpx.Response(200, json=detail(state="deploying")))
    api.post(f"{PATH}/restore").respond(202, json={"ref": REF, "accepted": True})
    clock = FakeClock()

    ran = cli("restore", REF, "--wait", "--timeout", "2m", clock=clock)

    assert ran.code == 7
    assert (
        ran.err.splitlines()[-1] == f"stagingbot: {REF} is still deploying after 120 s (--timeout)"
    )
    assert sum(clock.sleeps) == pytest.approx(120)
    assert max(clock.sleeps) == 10.0  # polls no less often than every 10 s


def test_wait_on_a_redeploy_does_not_stop_at_the_running_state_from_before(
    api: respx.MockRouter,
) -> None:
    again = {**RAN, "at": NOW}
    api.get(PATH).mock(
        side_effect=answers(detail(), detail(), detail(), detail(history=[again, RAN, APPLIED]))
    )
    api.post(f"{PATH}/redeploy").respond(202, json={"ref": REF, "accepted": True})
    clock = FakeClock()

    ran = cli("redeploy", REF, "--wait", clock=clock)

    assert ran.code == 0 and len(clock.sleeps) == 2  # until the history says it ran again


def test_wait_on_a_deploy_of_what_already_runs_ends_at_once(api: respx.MockRouter) -> None:
    api.get(PATH).mock(side_effect=answers(detail(), detail()))
    api.post(f"{PATH}/deploy").respond(202, json={"ref": REF, "accepted": True})

    ran = cli("deploy", REF, "--wait")

    assert ran.code == 0
    assert f"{REF} is already running at {SHA[:7]}" in ran.err


def test_wait_with_json_prints_only_the_final_staging_on_stdout(api: respx.MockRouter) -> None:
    running = detail(history=[{**RAN, "at": NOW}, RAN, APPLIED])
    api.get(PATH).mock(side_effect=answers(detail(state="archived"), running))
    api.post(f"{PATH}/restore").respond(202, json={"ref": REF, "accepted": True})

    ran = cli("restore", REF, "--wait", "--json")

    assert ran.code == 0 and json.loads(ran.out) == running


def test_wait_on_a_terminal_redraws_a_spinner_line_and_clears_it(api: respx.MockRouter) -> None:
    deploying = detail(state="deploying")
    api.get(PATH).mock(
        side_effect=answers(detail(state="archived"), deploying, deploying, detail())
    )
    api.post(f"{PATH}/restore").respond(202, json={"ref": REF, "accepted": True})

    ran = cli("restore", REF, "--wait", tty=True)

    assert ran.code == 0
    assert "\r\x1b[K|" in ran.err or "\r\x1b[K/" in ran.err
    assert ran.err.endswith(f"[   2s] {REF}: running\n")


def test_a_timeout_that_is_not_a_duration_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["deploy", REF, "--wait", "--timeout", "soon"], environ=ENV)
    assert exit_info.value.code == 2
    assert "'soon' is not a duration" in capsys.readouterr().err
