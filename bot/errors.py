"""The two kinds of failure: permanent (report, don't retry) and temporary (retry later),
with the cluster's own temporary failures (`ClusterError`) told apart."""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime


class PermanentError(Exception):
    """A failure that retrying cannot fix: report it on the request and stop."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ArchiveRefused(PermanentError):
    """An archive the provisioner will not do, refused before anything changed: it would
    delete data (a StatefulSet losing its volume claims when scaled down), or this
    provisioner cannot archive at all. Trying again cannot help until the staging or the
    configuration changes: the staging keeps running, and the request is told `why` and
    what would make it archivable (`remedy`)."""

    def __init__(self, why: str, remedy: str) -> None:
        super().__init__(refused_reason(why, remedy))
        self.why = why
        self.remedy = remedy


def refused_reason(why: str, remedy: str) -> str:
    """A refused archive in one line, as logs, the history and the API say it."""
    return f"not archived: {why}; to archive, {remedy}"


class ArchiveFailed(ArchiveRefused):
    """An archive that failed for good once under way (the cluster refused a change: a 403
    from RBAC, a 422; the archive program exited non-zero, not 75). It takes the refusal's
    path — said once, the decision dropped, not retried by the sweep — in its own words:
    `why` it failed (fit for the request: no response body, secrets masked), `state` what
    the staging was left like, `partly` when some workloads stay scaled to zero."""

    def __init__(self, why: str, state: str, partly: bool = False) -> None:
        PermanentError.__init__(self, failed_reason(why, state))
        self.why = why
        self.remedy = ""
        self.state = state
        self.partly = partly


def failed_reason(why: str, state: str) -> str:
    """A failed archive in one line, as logs, the history and the API say it."""
    return f"archive failed: {why}" + (f"; {state}" if state else "")


class TemporaryError(Exception):
    """A failure that may pass: retry, no sooner than `delay` seconds when the server said so."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class ClusterError(TemporaryError):
    """A temporary failure of the cluster itself, not of a Git host: the API server cannot
    be reached or answers 5xx (the `command` provisioner: a program's exit 75).

    After a few attempts the request is told (`handlers/outage.py`), in `shown`: a status
    and a short phrase only, never a response body, an address or a program's output,
    since the request is public. A Git host's outage cannot be reported on that host.
    """

    def __init__(self, reason: str, delay: float | None = None, shown: str = "") -> None:
        super().__init__(reason, delay)
        self.shown = shown or "no answer"


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or HTTP date) or GitHub's `x-ratelimit-reset`."""
    lowered = {k.lower(): v for k, v in headers.items()}
    value = lowered.get("retry-after")
    now = time.time() if now is None else now
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - now)
        except (TypeError, ValueError):
            return None
    if (
        lowered.get("x-ratelimit-remaining") == "0"
        and lowered.get("x-ratelimit-reset", "").isdigit()
    ):
        return max(0.0, float(lowered["x-ratelimit-reset"]) - now)
    return None


def classify_http(
    status: int, headers: Mapping[str, str], message: str, what: str
) -> PermanentError | TemporaryError:
    """Map an HTTP error from a Git host or the Kubernetes API to one of the two kinds.

    429, 5xx and GitHub's rate-limit 403s (which carry `Retry-After` or an exhausted
    `x-ratelimit-remaining`) are temporary; every other 4xx is permanent.
    """
    delay = retry_after_seconds(headers)
    text = f"{what}: HTTP {status}: {message}".strip()
    if status == 429 or status >= 500 or status == 0:
        return TemporaryError(text, delay)
    if status == 403 and (delay is not None or "rate limit" in message.lower()):
        # GitHub's secondary rate limit answers 403 with Retry-After.
        # https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api
        return TemporaryError(text, delay if delay is not None else 60.0)
    return PermanentError(text)
