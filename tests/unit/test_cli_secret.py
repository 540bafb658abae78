"""`stagingbot set REF --secret KEY`: the value comes from standard input, never from argv,
and is never printed; against the API contract mocked with respx."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import respx

from bot.cli import main
from bot.cli_remote import Terminal
from tests.unit.test_cli_remote import ENV, NOW, PATH, REF, TOKEN, URL, FakeClock, Ran

VALUE = "sk_live_typed-into-stdin-only"


def cli_with_stdin(stdin: io.StringIO | None, *argv: str) -> Ran:
    out, err, clock = io.StringIO(), io.StringIO(), FakeClock()
    term = Terminal(out, err, clock.monotonic, lambda: NOW, clock.sleep, False, stdin)
    code = main(list(argv), environ=ENV, terminal=term)
    ran = Ran(code, out.getvalue(), err.getvalue())
    assert TOKEN not in ran.out + ran.err and VALUE not in ran.out + ran.err
    return ran


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=URL, assert_all_called=True) as router:
        yield router


def test_set_secret_reads_one_line_from_stdin_and_asks_the_server_to_keep_it_secret(
    api: respx.MockRouter,
) -> None:
    put = api.put(f"{PATH}/overrides/STRIPE_KEY").respond(
        200, json={"key": "STRIPE_KEY", "secret": True}
    )

    ran = cli_with_stdin(io.StringIO(VALUE + "\n"), "set", REF, "--secret", "STRIPE_KEY")

    assert ran.code == 0
    assert ran.out.splitlines() == [f"set STRIPE_KEY on {REF} (secret: shown masked)"]
    assert json.loads(put.calls.last.request.content) == {"value": VALUE, "secret": True}


def test_set_secret_goes_with_plain_assignments(api: respx.MockRouter) -> None:
    plain = api.put(f"{PATH}/overrides/GREETING").respond(
        200, json={"key": "GREETING", "secret": False}
    )
    secret = api.put(f"{PATH}/overrides/STRIPE_KEY").respond(
        200, json={"key": "STRIPE_KEY", "secret": True}
    )

    ran = cli_with_stdin(
        io.StringIO(VALUE), "set", REF, "GREETING=hi", "--secret", "STRIPE_KEY", "--json"
    )

    assert json.loads(ran.out) == [
        {"key": "GREETING", "secret": False},
        {"key": "STRIPE_KEY", "secret": True},
    ]
    assert json.loads(plain.calls.last.request.content) == {"value": "hi"}
    assert json.loads(secret.calls.last.request.content)["value"] == VALUE


def test_a_key_the_server_does_not_keep_secret_is_refused_with_its_reason(
    api: respx.MockRouter,
) -> None:
    api.put(f"{PATH}/overrides/GREETING").respond(
        422, json={"error": "GREETING is not one of commands.secret_keys: …"}
    )

    ran = cli_with_stdin(io.StringIO(VALUE), "set", REF, "--secret", "GREETING")

    assert ran.code != 0 and "GREETING is not one of commands.secret_keys" in ran.err


@pytest.mark.parametrize(
    ("stdin", "argv", "message"),
    [
        (io.StringIO(VALUE), ("set", REF), "set needs KEY=VALUE assignments, or --secret KEY"),
        (io.StringIO(VALUE), ("set", REF, "--secret", "stripe"), "keys are upper case"),
        (io.StringIO(VALUE), ("set", REF, "A=1", "--secret", "A"), "`A` is given twice"),
        (io.StringIO("two\nlines\n"), ("set", REF, "--secret", "K"), "control character"),
        (None, ("set", REF, "--secret", "K"), "no standard input"),
    ],
)
def test_a_wrong_secret_use_is_a_usage_error_sending_nothing(
    api: respx.MockRouter, stdin: io.StringIO | None, argv: tuple[str, ...], message: str
) -> None:
    ran = cli_with_stdin(stdin, *argv)

    assert ran.code == 2 and message in ran.err
    assert api.calls.call_count == 0
