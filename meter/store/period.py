"""Period bounds for choosing runs by when they started (`--since`, `--until`).

A bound becomes ISO 8601 UTC text, which orders like the ledger's `started_at`; a date
alone as the end of a period means through that day.
"""

from __future__ import annotations

import datetime

from joulemeter.meter.errors import PeriodError

UTC = datetime.timezone.utc


def period_bound(value: str | datetime.date | None, *, end: bool) -> str | None:
    """`value` (ISO 8601 text, a date or a datetime; naive means UTC) as comparable UTC text;
    a date alone as an `end` bound means the start of the day after it, so the day is in."""
    if value is None:
        return None
    parsed: datetime.date
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise PeriodError(f"{value!r} is not a date or time: use ISO 8601, e.g. 2025-01-31 or "
                              "2025-01-31T12:00", parameter="until" if end else "since") from None
        if len(text) == 10:
            parsed = parsed.date()
    else:
        parsed = value
    if not isinstance(parsed, datetime.datetime):
        day = parsed + datetime.timedelta(days=1) if end else parsed
        parsed = datetime.datetime(day.year, day.month, day.day, tzinfo=UTC)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat()


def check_period(since: str | None, until: str | None) -> None:
    """Refuse a period that ends before it starts (bounds as `period_bound` gives them)."""
    if since is not None and until is not None and until <= since:
        raise PeriodError(f"the period is empty: --until ({until}) is not after --since ({since})",
                          parameter="until")
