"""What the command line prints for people: ages, aligned tables, one line per row."""

from __future__ import annotations

import pytest

from bot import cli_format

NOW = 1_750_000_000.0


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (NOW - 42, "42s ago"),
        (NOW - 300, "5m ago"),
        (NOW - 3 * 3600 - 5, "3h ago"),
        (NOW - 2 * 86400, "2d ago"),
        ("2025-06-15T15:06:40Z", "0s ago"),
        (None, "-"),
        ("yesterday", "-"),
        (True, "-"),
    ],
)
def test_an_age_is_said_in_its_largest_unit(value: object, shown: str) -> None:
    assert cli_format.age(value, NOW) == shown


def test_a_table_aligns_its_columns_and_does_not_pad_the_last() -> None:
    lines = cli_format.table(("A", "BB", "C"), [("long value", "x", "end"), ("y", "zzz", "")])
    assert lines == ["A           BB   C", "long value  x    end", "y           zzz"]


def test_a_title_with_a_line_break_stays_on_its_row_and_is_cut() -> None:
    staging = {"ref": "github:o/r#1", "state": "running", "title": "Fix\nthings " + "x" * 80}
    (_, row) = cli_format.staging_list({"stagings": [staging]}, NOW)
    assert "Fix things xxx" in row and row.endswith("…")
    assert len(row.split("  ")[-1]) == cli_format.TITLE_WIDTH
