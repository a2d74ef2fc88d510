"""Times and durations as a person reads them in a terminal: ``3 min ago``, ``12-02 04:13``, ``1m 23s``.

Only for text a person reads (``-o table``); json, yaml and tsv keep ISO 8601 so that scripts can
parse and sort them.
"""

from __future__ import annotations

import datetime as dt
import re

# What render._plain makes of a ``*_at`` field: ``2026-12-02T04:13:05+00:00``. Only strings of
# this exact shape (with an offset, so the instant is known) are taken for times.
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?[+-]\d{2}:\d{2}")


def parse_iso(text: str) -> dt.datetime | None:
    """The instant an ISO-8601 string with a UTC offset names, or ``None`` if it is not one."""
    if not _ISO.fullmatch(text):
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def when(moment: dt.datetime, now: dt.datetime | None = None) -> str:
    """A past instant in local time: ``just now``, ``3 min ago``, else ``12-02 04:13`` (the year if not this one).

    Args:
        moment: an aware datetime.
        now: the present (for tests); default: the clock.

    Returns:
        At most 16 characters.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    ago = (now - moment).total_seconds()
    # A few seconds in the future is clock skew between processes, not a date to print.
    if -5 <= ago < 60:
        return "just now"
    if 0 < ago < 3600:
        return f"{int(ago // 60)} min ago"
    local = moment.astimezone()
    if local.year == now.astimezone().year:
        return local.strftime("%m-%d %H:%M")
    return local.strftime("%Y-%m-%d %H:%M")


def duration(seconds: float | None) -> str:
    """A duration in at most two units: ``4.2s``, ``42s``, ``1m 23s``, ``2h 05m``, ``3d 4h``; ``""`` if unknown."""
    if seconds is None or seconds < 0:
        return ""
    if seconds < 10:
        return f"{seconds:.1f}s"
    total = int(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"
