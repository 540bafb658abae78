"""Which commits the bot has begun writing its check run / deployment on, kept in the record.

A check run or a deployment is created once per commit. Without its id the adapter looks
for one before creating (a retried job that never stored the id must not double it): one
request more for every new commit. The record says when that look-up cannot find anything:
before the first write on a commit, its SHA is added here (write-ahead), so a job killed
between the host's answer and storing the id finds the SHA listed and looks it up again.

Only a record that keeps the list proves anything. The record an `opened` event creates
starts it with `NONE` (a request just opened has nothing of the bot's); any other new
record — one a later event or the sweep created after Redis lost it — has none, and its
first write looks up as before. (A lost record and a *redelivered* `opened` may give the
opening commit a second check run and deployment; GitHub shows the newer.) Only the latest
`KEEP` commits are listed: a head pushed back to a commit older than those is taken for
unseen and gets a second check run (GitHub shows the newer of two runs of one name); so
does, once Redis lost a record, a head pushed back to a commit reported before the loss.
"""

from __future__ import annotations

from bot.store import StagingRecord, Store

CHECKS = "check_shas"  # the `staging` check run
DEPLOYMENTS = "deployment_shas"  # GitHub's deployment per commit
KEEP = 50
NONE = "-"  # the list of a record its request's opening created: nothing begun yet
_LENGTH = 12  # a prefix is enough: a clash only costs a look-up


def unseen(record: StagingRecord, field: str, sha: str) -> bool:
    """True when the record proves nothing was begun on `sha` (see the module's doc)."""
    kept = record.get(field).split()
    return bool(kept) and sha[:_LENGTH] not in kept


async def begin(
    store: Store, record: StagingRecord, field: str, sha: str, previous: str = ""
) -> None:
    """Note `sha` in `record` (as just loaded) before the write that may create on it.

    `previous`: the commit the record last wrote on, listed too when the list starts (a
    record kept from before the list existed).
    """
    kept = record.get(field).split() or [previous[:_LENGTH]] * bool(previous)
    if sha[:_LENGTH] not in kept:
        await store.update(record.key, {field: " ".join([*kept, sha[:_LENGTH]][-KEEP:])})
