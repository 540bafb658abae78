"""Log lines are JSON objects carrying the message and the extra fields the code passes."""

from __future__ import annotations

import json
import logging

from bot.logs import JsonFormatter


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
