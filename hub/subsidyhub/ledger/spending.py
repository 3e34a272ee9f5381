"""Spending per UTC day: what a user's projects were charged on each of the last few days.

One grouped query over the charge lines whose interval starts in the window. The day of a
line is ``interval_start_ms // DAY_MS`` (days since the epoch, UTC): integer arithmetic that
is the same on SQLite and PostgreSQL. Days without charges are zeros, so a plot always has
one bar per day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, func, literal_column, select
from sqlalchemy.orm import Session

from subsidyhub.errors import InvalidInput
from subsidyhub.ledger.models import Charge
from subsidyhub.money import to_decimal_string
from subsidyhub.timeutil import DAY_MS

MAX_DAYS = 31


def check_days(text: str) -> int:
    """The ``days`` parameter as a whole number from 1 to :data:`MAX_DAYS`, or a 400."""
    digits = text.strip()
    days = int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 2 else 0
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(
            f"Query parameter 'days' must be a whole number from 1 to {MAX_DAYS} (got {text!r})."
        )
    return days


@dataclass(frozen=True, slots=True)
class DaySpending:
    day: int  # days since 1970-01-01, UTC
    list_micro: int = 0
    subsidy_micro: int = 0
    copay_micro: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "date": datetime.fromtimestamp(self.day * DAY_MS // 1000, UTC).date().isoformat(),
            "list": to_decimal_string(self.list_micro),
            "subsidy": to_decimal_string(self.subsidy_micro),
            "copay": to_decimal_string(self.copay_micro),
        }


def daily_spending(
    session: Session, project_ids: list[int], now_ms: int, days: int
) -> dict[int, list[DaySpending]]:
    """Per project, one :class:`DaySpending` per UTC day up to today's, oldest first."""
    last = now_ms // DAY_MS
    first = last - days + 1
    # The divisor is inlined: PostgreSQL matches GROUP BY to the select list by its text, and
    # two bound parameters of the same value would not match.
    day = (Charge.interval_start_ms // literal_column(str(DAY_MS), BigInteger)).label("day")
    rows = session.execute(
        select(
            Charge.project_id,
            day,
            func.sum(Charge.list_micro),
            func.sum(Charge.subsidy_micro),
            func.sum(Charge.copay_micro),
        )
        .where(
            Charge.project_id.in_(project_ids),
            Charge.interval_start_ms >= first * DAY_MS,
            Charge.interval_start_ms < (last + 1) * DAY_MS,
        )
        .group_by(Charge.project_id, day)
    )
    found = {
        (project_id, int(number)): DaySpending(int(number), int(lst), int(sub), int(cop))
        for project_id, number, lst, sub, cop in rows
    }
    return {
        project_id: [
            found.get((project_id, number), DaySpending(number))
            for number in range(first, last + 1)
        ]
        for project_id in project_ids
    }
