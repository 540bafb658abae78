"""`stagingbot qa-pass` / `qa-fail`: what they send, print and exit with (API mocked)."""

from __future__ import annotations

import json

import respx

from tests.unit.test_cli_remote import PATH, REF, SHA, api, cli, detail

assert api  # the respx fixture


def test_qa_pass_posts_the_note_and_prints_the_acceptance(api: respx.MockRouter) -> None:
    answer = {"ref": REF, "action": "qa-pass", "accepted": True}
    route = api.post(f"{PATH}/qa-pass").respond(202, json=answer)
    ran = cli("qa-pass", REF, "--note", "checkout   works")
    assert (ran.code, ran.out) == (0, f"qa-pass of {REF} accepted\n")
    assert json.loads(route.calls.last.request.content) == {"note": "checkout works"}


def test_qa_pass_without_a_note_sends_an_empty_one(api: respx.MockRouter) -> None:
    route = api.post(f"{PATH}/qa-pass").respond(202, json={"ref": REF, "accepted": True})
    assert cli("qa-pass", REF, "--json").code == 0
    assert json.loads(route.calls.last.request.content) == {"note": ""}


def test_qa_fail_sends_the_reason_as_the_note(api: respx.MockRouter) -> None:
    route = api.post(f"{PATH}/qa-fail").respond(202, json={"ref": REF, "accepted": True})
    assert cli("qa-fail", REF, "--reason", "the cart is empty").code == 0
    assert json.loads(route.calls.last.request.content) == {"note": "the cart is empty"}


def test_qa_fail_needs_a_reason_before_anything_is_sent(api: respx.MockRouter) -> None:
    ran = cli("qa-fail", REF, "--reason", "  ")
    assert ran.code == 2 and "qa-fail needs a --reason" in ran.err
    assert api.calls.call_count == 0


def test_a_note_too_long_exits_2_with_the_comment_rules_words(api: respx.MockRouter) -> None:
    ran = cli("qa-pass", REF, "--note", "x" * 501)
    assert ran.code == 2 and "at most 500 are allowed" in ran.err
    assert api.calls.call_count == 0


def test_a_viewer_token_is_refused_with_exit_3(api: respx.MockRouter) -> None:
    error = {"error": "this needs the qa role; the token 'product' has the viewer role"}
    api.post(f"{PATH}/qa-pass").respond(403, json=error)
    ran = cli("qa-pass", REF)
    assert ran.code == 3 and "needs the qa role" in ran.err


def test_show_says_what_qa_last_said_and_whether_it_is_about_the_head(
    api: respx.MockRouter,
) -> None:
    qa = {"verdict": "passed", "sha": SHA, "by": "tess", "note": "ok", "at": 1.0, "current": True}
    api.get(PATH).respond(200, json=detail(qa=qa))
    assert "qa:        passed at ec26c3e by tess: ok" in cli("show", REF).out.splitlines()
    api.get(PATH).respond(200, json=detail(qa={**qa, "current": False}))
    lines = cli("show", REF).out.splitlines()
    assert "qa:        pending (new commits since QA passed at ec26c3e, by tess)" in lines
