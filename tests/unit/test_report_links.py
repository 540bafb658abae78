"""Extra links from a provisioner (`info`) in the sticky comment, and as stored (pure)."""

from __future__ import annotations

import json

from bot import report
from bot.model import Phase, StagingKey
from bot.store import StagingRecord, stored_links

SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
URL = "https://hello-pr-2.staging.example.com/"


def view(phase: Phase, links: tuple[tuple[str, str], ...]) -> report.View:
    return report.View(phase, SHA, URL, at=0.0, links=links)


def test_a_running_staging_lists_its_extra_links_in_the_comment() -> None:
    links = (("app", "http://127.0.0.1:4100/"), ("logs", "https://logs.example.com/?q=pr-2"))

    body = report.comment(view(Phase.RUNNING, links))

    assert (
        "| Links | [app](http://127.0.0.1:4100/) · [logs](https://logs.example.com/?q=pr-2) |"
        in body
    )


def test_links_are_not_shown_once_nothing_runs() -> None:
    links = (("app", "http://127.0.0.1:4100/"),)

    for phase in (Phase.ARCHIVED, Phase.GONE):
        assert "127.0.0.1:4100" not in report.comment(view(phase, links))


def test_a_script_cannot_break_the_comment_table_or_the_link_with_its_text() -> None:
    links = (("a|b](https://evil.example/)[x", "https://ok.example/a|b)c<d>"),)

    body = report.comment(view(Phase.RUNNING, links))
    (row,) = [line for line in body.splitlines() if line.startswith("| Links |")]

    assert row == "| Links | [abhttpsevil.examplex](https://ok.example/a%7Cb%29c%3Cd%3E) |"


def test_stored_links_keep_only_well_formed_http_entries() -> None:
    stored = [
        {"name": "app", "url": "http://127.0.0.1:4100/"},
        {"name": "bad", "url": "javascript:alert(1)"},
        {"name": 3, "url": "https://x.example/"},
        "not an object",
    ]
    record = StagingRecord(StagingKey("github", 1, 2), {"links": json.dumps(stored)})

    assert stored_links(record) == (("app", "http://127.0.0.1:4100/"),)
    assert stored_links(StagingRecord(StagingKey("github", 1, 2), {"links": "{oops"})) == ()
