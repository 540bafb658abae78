"""What the bot writes on a request: the sticky comment and the check text (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bot.commands import code
from bot.hosts.base import STICKY_MARKER
from bot.model import CheckReport, CheckState, Phase

HEADLINES = {
    Phase.PENDING: "⏳ A staging is being created for this {request}.",
    Phase.AWAITING_APPROVAL: (
        "🔒 This {request} comes from a fork: its staging waits for a maintainer's approval."
    ),
    Phase.WAITING_FOR_BUILD: "🏗️ Waiting for the build before deploying.",
    Phase.BUILD_FAILED: "🧱 The build failed: this commit is not deployed.",
    Phase.QUEUED: "⏳ The staging is queued: every slot for a staging is taken.",
    Phase.DEPLOYING: "🚀 The staging is being deployed.",
    Phase.RUNNING: "✅ The staging is running.",
    Phase.FAILED: "❌ The staging failed to deploy.",
    Phase.ARCHIVED: "💤 The staging is archived: scaled to zero, its data kept.",
    Phase.DESTROYING: "🧹 The staging is being removed.",
    Phase.GONE: "🗑️ The staging is gone.",
}

CHECK_TITLES = {
    Phase.PENDING: "Creating the staging",
    Phase.AWAITING_APPROVAL: "Waiting for a maintainer's approval",
    Phase.WAITING_FOR_BUILD: "Waiting for the build",
    Phase.BUILD_FAILED: "Build failed",
    Phase.QUEUED: "Queued for a free slot",
    Phase.DEPLOYING: "Deploying the staging",
    Phase.RUNNING: "Staging is running",
    Phase.FAILED: "Staging failed",
    Phase.ARCHIVED: "Staging archived",
    Phase.DESTROYING: "Removing the staging",
    Phase.GONE: "Staging removed",
}

CHECK_STATES = {
    Phase.PENDING: CheckState.IN_PROGRESS,
    Phase.AWAITING_APPROVAL: CheckState.IN_PROGRESS,
    Phase.WAITING_FOR_BUILD: CheckState.IN_PROGRESS,
    Phase.BUILD_FAILED: CheckState.FAILURE,
    Phase.QUEUED: CheckState.IN_PROGRESS,
    Phase.DEPLOYING: CheckState.IN_PROGRESS,
    Phase.RUNNING: CheckState.SUCCESS,
    Phase.FAILED: CheckState.FAILURE,
    Phase.ARCHIVED: CheckState.CANCELLED,
    Phase.DESTROYING: CheckState.CANCELLED,
    Phase.GONE: CheckState.CANCELLED,
}

APPROVAL_NEEDED = (
    "A maintainer ({access}) approves the current head with `{prefix} deploy`; "
    "every later push from the fork needs approving again."
)
MAINTAINER = {"github": "write access", "gitlab": "Developer role or higher"}
REQUEST = {"github": "pull request", "gitlab": "merge request"}
AWAITING_APPROVAL_NOTE = (
    "⚠️ Commit `{sha}` from the fork is not deployed: a maintainer must approve it with "
    "`{prefix} deploy` after reviewing it."
)
# Where the sticky comment shows something, and where not: nothing runs, no link.
NO_STAGING = (Phase.AWAITING_APPROVAL, Phase.QUEUED, Phase.ARCHIVED, Phase.DESTROYING, Phase.GONE)
# The head is not deployed (yet): the note says what still runs, if anything.
NOT_BUILT = (Phase.WAITING_FOR_BUILD, Phase.BUILD_FAILED)
# The check title is the reason itself, e.g. "waiting for `build` on abc1234".
TITLED_BY_REASON = (Phase.FAILED, *NOT_BUILT)

FOOTER = (
    "<sub>Managed by stagingbot. This comment is edited in place as the staging changes. "
    "Comment `{prefix} help` for the commands.</sub>"
)


@dataclass(frozen=True)
class View:
    """What a reader of the request should know about its staging right now."""

    phase: Phase
    sha: str
    url: str
    reason: str = ""
    at: float = 0.0
    namespace: str = ""
    note: str = ""  # e.g. a fork's push waiting for approval
    overrides: tuple[tuple[str, str], ...] = ()  # as shown: secret values already masked
    host: str = "github"
    links: tuple[tuple[str, str], ...] = ()  # (name, url): a provisioner's extra links

    @property
    def headline(self) -> str:
        return HEADLINES[self.phase].format(request=REQUEST.get(self.host, "request"))


def short(sha: str) -> str:
    return sha[:7]


def timestamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def comment(view: View, prefix: str = "/staging") -> str:
    """The sticky comment body, with the hidden marker the bot finds it by."""
    rows = [("Status", f"**{view.phase.value}**")]
    if view.phase not in NO_STAGING + NOT_BUILT and view.url:
        rows.append(("URL", f"[{view.url}]({view.url})"))
    rows.append(("Commit", f"`{short(view.sha)}`" if view.sha else "—"))
    if view.links and view.phase not in NO_STAGING:
        rows.append(("Links", " · ".join(markdown_link(name, url) for name, url in view.links)))
    if view.namespace and view.phase not in NO_STAGING + NOT_BUILT:
        rows.append(("Namespace", f"`{view.namespace}`"))
    rows.append(("Updated", timestamp(view.at)))
    lines = [STICKY_MARKER, f"### {view.headline}", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    if view.phase is Phase.AWAITING_APPROVAL:
        access = MAINTAINER.get(view.host, "write access")
        lines += ["", APPROVAL_NEEDED.format(prefix=prefix, access=access)]
    if view.reason:
        lines += ["", f"**Why:** {_one_paragraph(view.reason)}"]
    if view.note:
        lines += ["", view.note]
    if view.overrides:
        lines += ["", "**Overrides** (environment variables of this staging):", ""]
        lines += [f"- `{key}` = {code(value)}" for key, value in view.overrides]
    lines += ["", FOOTER.format(prefix=prefix)]
    return "\n".join(lines)


def check(view: View) -> CheckReport:
    """The check run / commit status for the staging's commit."""
    summary = f"{view.headline}\n\nCommit `{short(view.sha)}`."
    if view.phase not in NO_STAGING + NOT_BUILT and view.url:
        summary += f" URL: {view.url}"
    if view.reason:
        summary += f"\n\n**Why:** {_one_paragraph(view.reason)}"
    title = CHECK_TITLES[view.phase]
    if view.reason and view.phase in TITLED_BY_REASON:
        reason = _one_paragraph(view.reason)
        own = reason[0].upper() + reason[1:]  # e.g. "Waiting for `build` on abc1234"
        title = (own if view.phase in NOT_BUILT else f"{title}: {reason}")[:120]
    return CheckReport(CHECK_STATES[view.phase], title, summary, view.url)


def markdown_link(name: str, url: str) -> str:
    """`[name](url)` that a control script's text cannot break out of (a table cell, a link)."""
    label = "".join(char for char in name if char.isalnum() or char in " -_.")
    target = "".join(f"%{ord(char):02X}" if char in '|()<>"`[] \\' else char for char in url)
    return f"[{label.strip() or 'link'}]({target})"


def _one_paragraph(text: str) -> str:
    """Reasons come from clusters and scripts: keep them to one readable paragraph."""
    return " ".join(text.split())[:1000]


def closed_before_deploy(sha: str) -> CheckReport:
    """The check of a commit the request was closed before it could be deployed."""
    return CheckReport(
        CheckState.CANCELLED,
        CHECK_TITLES[Phase.GONE],
        f"The request was closed before `{short(sha)}` was deployed: the staging is gone.",
    )


def superseded(old_sha: str, new_sha: str) -> CheckReport:
    """The check of a commit whose deploy was overtaken by a newer push."""
    title = f"Superseded by {short(new_sha)}"
    summary = (
        f"A newer commit, `{short(new_sha)}`, was pushed before `{short(old_sha)}` was deployed."
    )
    return CheckReport(CheckState.CANCELLED, title, summary)
