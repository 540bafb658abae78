"""What a GitHub App needs for each feature: permissions and webhook events, one table (pure).

docs/github-app.md shows this table (`scripts/host-docs` writes it there), and
tests/unit/test_host_setup.py checks it against the events the intake reads
(`bot.hosts.github_sansio.parse_delivery`), so the docs, the App's settings and the code
cannot drift apart. GitHub offers each event in the App's settings once the permission
next to it is granted:
https://docs.github.com/en/webhooks/webhook-events-and-payloads
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Need:
    """One permission of the App, the webhook events it brings, and what needs them."""

    permission: str  # as the App's settings page names it
    scope: str  # "Repository" or "Organization"
    access: str  # "Read-only" or "Read and write"
    events: tuple[str, ...]  # webhook events to subscribe to (X-GitHub-Event names)
    why: str


NEEDS: tuple[Need, ...] = (
    Need(
        "Metadata",
        "Repository",
        "Read-only",
        (),
        "Mandatory for every App. The repository by its id; a commenter's permission "
        "(only people with write access may run `/staging` commands).",
    ),
    Need(
        "Pull requests",
        "Repository",
        "Read and write",
        ("pull_request",),
        "Read: a request's head, state, labels and draft flag before every reconcile, and "
        "the open requests for the sweep. Write: the sticky comment, replies and reactions "
        "on a pull request. Event: opened, pushed, labelled, closed...",
    ),
    Need(
        "Issues",
        "Repository",
        "Read-only",
        ("issue_comment",),
        "Event: comments on a pull request carry the `/staging` commands (GitHub sends "
        "them as issue comments).",
    ),
    Need(
        "Checks",
        "Repository",
        "Read and write",
        ("check_run", "check_suite"),
        "Write: the `staging` check run on the head commit (and `staging/qa`, QA's "
        "sign-off). Read and events: the build "
        "gate (`staging.wait_for`) waits for the named check runs to succeed.",
    ),
    Need(
        "Commit statuses",
        "Repository",
        "Read and write",
        ("status",),
        "Read and event: the build gate waits for named commit statuses. Write: the "
        "`staging` status, where the bot reports with a token instead of an App.",
    ),
    Need(
        "Actions",
        "Repository",
        "Read-only",
        ("workflow_run",),
        "Event: a finished workflow run may open the build gate (`staging.wait_for`).",
    ),
    Need(
        "Deployments",
        "Repository",
        "Read and write",
        (),
        "A transient Deployment per staging whose environment URL is the staging's, so the "
        "pull request shows a 'View deployment' button.",
    ),
    Need(
        "Contents",
        "Repository",
        "Read-only",
        (),
        "Reads the head commit, whose check runs and statuses the build gate looks at.",
    ),
    Need(
        "Members",
        "Organization",
        "Read-only",
        (),
        "QA sign-off by team (`qa.allowed` with `org/team`): whether the person signing "
        "off is a member of the team.",
    ),
)

# Sent to every App whatever it subscribes to; no box to tick for them.
ALWAYS_SENT = ("ping", "installation", "installation_repositories")


def subscribed_events() -> frozenset[str]:
    """Every event the App must subscribe to."""
    return frozenset(event for need in NEEDS for event in need.events)


def markdown_table() -> str:
    """The table of docs/github-app.md (one row per permission)."""
    rows = [
        "| Permission | Scope | Access | Subscribe to events | Why |",
        "|---|---|---|---|---|",
    ]
    for need in NEEDS:
        events = ", ".join(f"`{event}`" for event in need.events) or "—"
        rows.append(
            f"| {need.permission} | {need.scope} | {need.access} | {events} | {need.why} |"
        )
    return "\n".join(rows) + "\n"
