"""Time as the ledger stores it (epoch milliseconds, UTC) and as people write it.

Months are calendar months in UTC: statements are per month and charges are split at month
boundaries, so a month's statement is exactly the sum of its charge lines. Durations are
milliseconds in the ledger and hours for people; :func:`hours_to_ms` and :func:`format_hours`
are the only conversions, so every figure rounds the same way wherever it is shown. A span a
person waits through ("time left") is shown by :func:`format_duration` alone, in the style the
lab extension and the admin page also use ("21 d 6 h", "3 h 12 m", "4 m", "< 1 m").
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from subsidyhub.errors import InvalidInput

_MONTH = re.compile(r"^([0-9]{4})-([0-9]{2})$")
# Dates people give the ledger lie in this century or the next few: a typo such as 9999
# is refused rather than carried into arithmetic that overflows at year 10000.
MIN_YEAR, MAX_YEAR = 2000, 2999
MS_PER_HOUR = 3_600_000
DAY_MS = 24 * MS_PER_HOUR
WEEK_MS = 7 * DAY_MS
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def hours_to_ms(hours: Decimal | int) -> int:
    """Hours as whole milliseconds (half to even; 0.0001 h is exactly 360 ms)."""
    return int((Decimal(hours) * MS_PER_HOUR).to_integral_value(rounding=ROUND_HALF_EVEN))


def ms_to_hours(ms: int) -> Decimal:
    """Milliseconds as an exact number of hours."""
    return Decimal(ms) / MS_PER_HOUR


def format_hours(ms: int, places: int | None = None, *, rounding: str = ROUND_HALF_EVEN) -> str:
    """Milliseconds as hours in a decimal string: exact without trailing zeros ("0.5", "12"),
    or to ``places`` decimals ("1.50"), rounded by ``rounding`` (down where a figure must not
    promise more than there is)."""
    hours = ms_to_hours(ms)
    if places is None:
        return f"{hours.normalize():f}"
    return f"{hours.quantize(Decimal(1).scaleb(-places), rounding=rounding)}"


def format_duration(ms: int) -> str:
    """A span as people read it: ``< 1 m``, ``4 m``, ``3 h 12 m`` (under two days), ``21 d 6 h``.

    Cut down to the whole minute, never rounded up: a time left must not promise more than
    there is. The same rule as ``duration`` in the lab extension's ``format.ts``, checked
    against the same cases (``tests/data/display_cases.json``).
    """
    minutes = max(0, ms) // 60_000
    if minutes < 1:
        return "< 1 m"
    hours, minutes = divmod(minutes, 60)
    if hours < 1:
        return f"{minutes} m"
    if hours < 48:
        return f"{hours} h {minutes} m"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def clock_time(ms: int, now_ms: int) -> str:
    """An instant as people read it beside today: ``14:32 UTC``, else ``2026-11-28 14:32 UTC``."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    today = datetime.fromtimestamp(now_ms / 1000, tz=UTC).date()
    return moment.strftime("%H:%M UTC" if moment.date() == today else "%Y-%m-%d %H:%M UTC")


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds, exactly (integer arithmetic: a float timestamp can lose 1 ms)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_MS


def iso(ms: int | None, *, exact: bool = False) -> str | None:
    """ISO 8601 in UTC with a Z, to the second (``exact``: to the millisecond), or None."""
    if ms is None:
        return None
    moment = _EPOCH + ms * _ONE_MS
    return moment.isoformat(timespec="milliseconds" if exact else "seconds").replace("+00:00", "Z")


def parse_when(text: str, *, name: str = "date") -> int:
    """A date (``2026-11-01``, midnight UTC) or ISO datetime into epoch ms, in ASCII digits,
    between :data:`MIN_YEAR` and :data:`MAX_YEAR`."""
    value = text.strip()
    try:
        if not value.isascii():
            raise ValueError(value)
        if len(value) == 10:
            moment = datetime.combine(date.fromisoformat(value), datetime.min.time())
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{name} {text[:40]!r} is not a date; write it as YYYY-MM-DD or an ISO 8601 time"
        ) from None
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise InvalidInput(f"{name} {text[:40]!r} is not between {MIN_YEAR} and {MAX_YEAR}")
    return to_ms(moment)


def month_bounds(month: str) -> tuple[int, int]:
    """``"2026-11"`` → [start, end) in epoch ms."""
    match = _MONTH.match(month.strip())
    if not match or not 1 <= int(match[2]) <= 12:
        raise InvalidInput(
            f"month {month[:40]!r} is not a month; write it as YYYY-MM, e.g. 2026-11"
        )
    if not MIN_YEAR <= int(match[1]) <= MAX_YEAR:
        raise InvalidInput(f"month {month!r} is not between {MIN_YEAR} and {MAX_YEAR}")
    year, mon = int(match[1]), int(match[2])
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    return to_ms(start), to_ms(end)


def day_of(ms: int) -> str:
    """The UTC date of an instant, as people read it in a sentence: ``2027-01-31``."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")


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
