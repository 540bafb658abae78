"""A fixed interval as arq cron fields, so that every worker agrees on the next run (pure)."""

from __future__ import annotations

MINUTE = 60
HOUR = 3600
DAY = 86400


def cron_fields(interval: float) -> dict[str, set[int]] | None:
    """arq `cron(...)` keyword arguments for a run every `interval` seconds, on the clock
    (5 min: at :00, :05, :10...); None unless it divides a minute, an hour or a day.

    Cron times, unlike "every N seconds from start-up", are the same in every worker: with
    a fixed job id, arq queues each run once however many workers there are.
    """
    seconds = int(interval)
    if seconds != interval or seconds <= 0:
        return None
    if seconds < MINUTE and MINUTE % seconds == 0:
        return {"second": set(range(0, MINUTE, seconds))}
    if seconds % MINUTE == 0 and seconds < HOUR and HOUR % seconds == 0:
        return {"minute": set(range(0, 60, seconds // MINUTE)), "second": {0}}
    if seconds % HOUR == 0 and DAY % seconds == 0:
        return {"hour": set(range(0, 24, seconds // HOUR)), "minute": {0}, "second": {0}}
    return None
