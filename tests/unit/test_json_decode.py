"""The intake's JSON decoding (orjson, with `json.loads` where orjson would differ) gives
exactly what `json.loads` gives: the same value, or a refusal where it refuses."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.events import MalformedPayload, decode_json, loads
from tests.conftest import fixture_bytes


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types all the way down (so 1 != 1.0, NaN == NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    return bool(a == b)


def outcome(body: bytes) -> Any:
    try:
        return ("value", decode_json(body))
    except MalformedPayload as exc:
        return ("refused", str(exc))


def stdlib_outcome(body: bytes) -> Any:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        return ("refused", f"body is not valid JSON: {str(exc).splitlines()[0][:200]}")
    if not isinstance(data, dict):
        return ("refused", "body is not a JSON object")
    return ("value", data)


@pytest.mark.parametrize(
    "body",
    [
        b'{"n": 18446744073709551615}',  # the largest 64-bit unsigned: orjson keeps it an int
        b'{"n": 18446744073709551616}',  # one more: orjson would give a float
        b'{"n": -9223372036854775809}',  # below the 64-bit signed range: orjson's float again
        b'{"n": 123456789012345678901234567890}',
        b'{"n": 1e400}',  # inf for json.loads, refused by orjson
        b'{"n": NaN, "m": -Infinity}',
        b'\xef\xbb\xbf{"a": 1}',  # a UTF-8 byte order mark
        '{"a": "\u00e9"}'.encode("utf-16"),
        '{"a": 1}'.encode("utf-32-le"),
        b'{"title": "\\ud800 lone"}',
        b'{"title": "\xed\xa0\x80"}',  # an encoded surrogate (json.loads passes it)
        b'{"a": "\xff"}',
        b'{"a": 1, "a": 2}',
        b'{"a": "\x01"}',
        b"[1, 2]",
        b'"text"',
        b"",
        b"{} extra",
        b"[" * 5000 + b"]" * 5000,
        b'{"n": 0.1, "m": -0.0, "k": 5e-324, "j": 1.7976931348623157e308}',
    ],
)
def test_bodies_where_orjson_and_json_differ_decode_as_json_loads_does(body: bytes) -> None:
    got, want = outcome(body), stdlib_outcome(body)
    assert got[0] == want[0]
    assert same(got[1], want[1]) if got[0] == "value" else got[1] == want[1]


def test_a_real_delivery_decodes_to_what_json_loads_gives() -> None:
    body = fixture_bytes("pull_request.opened.json")
    assert same(loads(body), json.loads(body))


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**25), max_value=10**25)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(JSON, st.booleans())
def test_any_json_text_decodes_as_json_loads_does(value: Any, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert same(loads(body), json.loads(body))
