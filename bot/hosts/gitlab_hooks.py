"""What the GitLab webhook must send, and why: one table (pure).

docs/gitlab.md shows this table (`scripts/host-docs` writes it there), and
tests/unit/test_host_setup.py checks it against the hooks the intake reads
(`bot.hosts.gitlab_sansio.parse_delivery`).
https://docs.gitlab.com/user/project/integrations/webhook_events/
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Trigger:
    """One trigger of the webhook's settings page and the X-Gitlab-Event it sends."""

    trigger: str  # as the webhook's settings page names it
    hook: str  # X-Gitlab-Event
    why: str


TRIGGERS: tuple[Trigger, ...] = (
    Trigger(
        "Merge request events",
        "Merge Request Hook",
        "A merge request opened, pushed to, relabelled, marked draft or ready, closed or "
        "merged: the staging follows.",
    ),
    Trigger(
        "Comments",
        "Note Hook",
        "Comments on a merge request carry the `/staging` commands.",
    ),
    Trigger(
        "Pipeline events",
        "Pipeline Hook",
        "A pipeline of the head finished: the build gate (`staging.wait_for`, job names) "
        "may open.",
    ),
)


def hooks() -> frozenset[str]:
    return frozenset(trigger.hook for trigger in TRIGGERS)


def markdown_table() -> str:
    """The table of docs/gitlab.md."""
    rows = ["| Trigger | X-Gitlab-Event | Why |", "|---|---|---|"]
    rows += [f"| {t.trigger} | `{t.hook}` | {t.why} |" for t in TRIGGERS]
    return "\n".join(rows) + "\n"
