"""What the bot writes on a request: the sticky comment and the check text (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bot.hosts.base import STICKY_MARKER
from bot.model import CheckReport, CheckState, Phase

HEADLINES = {
    Phase.PENDING: "⏳ A staging is being created for this pull request.",
    Phase.DEPLOYING: "🚀 The staging is being deployed.",
    Phase.RUNNING: "✅ The staging is running.",
    Phase.FAILED: "❌ The staging failed to deploy.",
    Phase.DESTROYING: "🧹 The staging is being removed.",
    Phase.GONE: "🗑️ The staging is gone: this pull request was closed.",
}

CHECK_TITLES = {
    Phase.PENDING: "Creating the staging",
    Phase.DEPLOYING: "Deploying the staging",
    Phase.RUNNING: "Staging is running",
    Phase.FAILED: "Staging failed",
    Phase.DESTROYING: "Removing the staging",
    Phase.GONE: "Staging removed",
}

CHECK_STATES = {
    Phase.PENDING: CheckState.IN_PROGRESS,
    Phase.DEPLOYING: CheckState.IN_PROGRESS,
    Phase.RUNNING: CheckState.SUCCESS,
    Phase.FAILED: CheckState.FAILURE,
    Phase.DESTROYING: CheckState.CANCELLED,
    Phase.GONE: CheckState.CANCELLED,
}

FOOTER = "<sub>Managed by stagingbot. This comment is edited in place as the staging changes.</sub>"


@dataclass(frozen=True)
class View:
    """What a reader of the request should know about its staging right now."""

    phase: Phase
    sha: str
    url: str
    reason: str = ""
    at: float = 0.0
    namespace: str = ""


def short(sha: str) -> str:
    return sha[:7]


def timestamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def comment(view: View) -> str:
    """The sticky comment body, with the hidden marker the bot finds it by."""
    rows = [("Status", f"**{view.phase.value}**")]
    if view.phase is not Phase.GONE and view.url:
        rows.append(("URL", f"[{view.url}]({view.url})"))
    rows.append(("Commit", f"`{short(view.sha)}`" if view.sha else "—"))
    if view.namespace and view.phase is not Phase.GONE:
        rows.append(("Namespace", f"`{view.namespace}`"))
    rows.append(("Updated", timestamp(view.at)))
    lines = [STICKY_MARKER, f"### {HEADLINES[view.phase]}", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    if view.reason:
        lines += ["", f"**Why:** {_one_paragraph(view.reason)}"]
    lines += ["", FOOTER]
    return "\n".join(lines)


def check(view: View) -> CheckReport:
    """The check run / commit status for the staging's commit."""
    summary = f"{HEADLINES[view.phase]}\n\nCommit `{short(view.sha)}`."
    if view.phase is not Phase.GONE and view.url:
        summary += f" URL: {view.url}"
    if view.reason:
        summary += f"\n\n**Why:** {_one_paragraph(view.reason)}"
    title = CHECK_TITLES[view.phase]
    if view.reason and view.phase is Phase.FAILED:
        title = f"{title}: {_one_paragraph(view.reason)}"[:120]
    return CheckReport(CHECK_STATES[view.phase], title, summary, view.url)


def _one_paragraph(text: str) -> str:
    """Reasons come from clusters and scripts: keep them to one readable paragraph."""
    return " ".join(text.split())[:1000]


def superseded(old_sha: str, new_sha: str) -> CheckReport:
    """The check of a commit whose deploy was overtaken by a newer push."""
    title = f"Superseded by {short(new_sha)}"
    summary = (
        f"A newer commit, `{short(new_sha)}`, was pushed before `{short(old_sha)}` was deployed."
    )
    return CheckReport(CheckState.CANCELLED, title, summary)
