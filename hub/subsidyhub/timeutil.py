"""Time as the ledger stores it (epoch milliseconds, UTC) and as people write it.

Months are calendar months in UTC: statements are per month and charges are split at month
boundaries, so a month's statement is exactly the sum of its charge lines.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from subsidyhub.errors import InvalidInput

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def to_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def iso(ms: int | None) -> str | None:
    """ISO 8601 in UTC with a Z, or None."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_when(text: str, *, name: str = "date") -> int:
    """A date (``2026-11-01``, midnight UTC) or ISO datetime into epoch ms."""
    value = text.strip()
    try:
        if len(value) == 10:
            return to_ms(datetime.combine(date.fromisoformat(value), datetime.min.time()))
        return to_ms(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        raise InvalidInput(
            f"{name} {text!r} is not a date; write it as YYYY-MM-DD or an ISO 8601 time"
        ) from None


def month_bounds(month: str) -> tuple[int, int]:
    """``"2026-11"`` → [start, end) in epoch ms."""
    match = _MONTH.match(month.strip())
    if not match or not 1 <= int(match[2]) <= 12:
        raise InvalidInput(f"month {month!r} is not a month; write it as YYYY-MM, e.g. 2026-11")
    year, mon = int(match[1]), int(match[2])
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    return to_ms(start), to_ms(end)


def month_of(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m")


def month_boundaries(start_ms: int, end_ms: int) -> list[int]:
    """Month starts strictly inside (start_ms, end_ms), in order."""
    out: list[int] = []
    cursor = month_bounds(month_of(start_ms))[1]
    while cursor < end_ms:
        out.append(cursor)
        cursor = month_bounds(month_of(cursor))[1]
    return out
