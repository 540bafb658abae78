"""Log lines are JSON objects carrying the message, the extra fields the code passes and the
staging and delivery ids bound around them."""

from __future__ import annotations

import json
import logging

from bot.logs import ContextFilter, JsonFormatter, TextFormatter, bound


def test_a_log_record_becomes_one_json_line_with_its_extra_fields() -> None:
    record = logging.LogRecord(
        "stagingbot.web", logging.INFO, __file__, 1, "accepted %s", ("x",), None
    )
    record.delivery = "72d3162e"
    record.color_message = "\x1b[36maccepted\x1b[0m"
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "accepted x" and line["level"] == "info"
    assert line["logger"] == "stagingbot.web" and line["delivery"] == "72d3162e"
    assert "color_message" not in line


def _line(record: logging.LogRecord) -> dict[str, object]:
    assert ContextFilter().filter(record)
    return dict(json.loads(JsonFormatter().format(record)))


def _record(**extra: str) -> logging.LogRecord:
    record = logging.LogRecord("stagingbot.reconcile", logging.INFO, __file__, 1, "m", (), None)
    for name, value in extra.items():
        setattr(record, name, value)
    return record


def test_bound_fields_reach_every_line_inside_and_none_after() -> None:
    with bound(staging="github:186853002:2", delivery=""):
        with bound(delivery="72d3162e"):
            inner = _line(_record())
        outer = _line(_record())
    after = _line(_record())

    assert inner["staging"] == "github:186853002:2" and inner["delivery"] == "72d3162e"
    assert outer["staging"] == "github:186853002:2" and "delivery" not in outer
    assert "staging" not in after


def test_a_field_passed_by_the_call_wins_over_a_bound_one() -> None:
    with bound(delivery="from-the-header"):
        line = _line(_record(delivery="idem:from-the-body"))
    assert line["delivery"] == "idem:from-the-body"


def test_text_lines_end_with_the_staging_and_delivery() -> None:
    record = _record()
    with bound(staging="gitlab:42:7", delivery="uuid:1"):
        _line(record)
    assert TextFormatter("%(message)s").format(record) == "m [staging=gitlab:42:7 delivery=uuid:1]"
