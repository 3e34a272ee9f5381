"""Burn plans: how each grant was meant to be spent, against how it is spent (issue 18).

Under-spend is lost subsidy just as over-spend is lost money, so every grant (an allocation
with an end) has a plan: an amount per UTC month. It comes from the application (an amount
per quarter, spread evenly over the quarter's months), or an admin sets it
(:func:`set_plan`); without one, the grant is planned evenly over its window, in proportion
to each month's share of it.

A project's **position** compares the subsidy it was planned to have spent by now (whole
months before this one, plus this month's plan in proportion to the time gone) with the
subsidy its charges drew in the same months. More than ``scheme.plan_margin_percent`` over
the plan to date: at this pace it runs out before its end. More than that under: part of the
grant is at risk of going unused. The projection extends the last 30 days' burn to the end.

Money stays integer micro-units; a plan's months add up to its grant's amount exactly (the
remainder of a division goes to the last month).
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from sqlalchemy import BigInteger, delete, func, literal_column, select
from sqlalchemy.orm import Session

from subsidyhub.errors import InvalidInput, NotFound
from subsidyhub.ledger import audit
from subsidyhub.ledger.models import Allocation, Application, Charge, PlanMonth, Project
from subsidyhub.money import to_decimal_string
from subsidyhub.settings import Settings
from subsidyhub.timeutil import DAY_MS, month_boundaries, month_bounds, month_of

RECENT_MS = 30 * DAY_MS
OK, OVER, UNDER = "on_plan", "over_plan", "under_plan"


def _spans(start_ms: int, end_ms: int) -> list[tuple[str, int, int]]:
    """The months of [start, end) with the part of each inside it: (month, from, to)."""
    cuts = [start_ms, *month_boundaries(start_ms, end_ms), end_ms]
    return [(month_of(a), a, b) for a, b in itertools.pairwise(cuts)]


def even(amount_micro: int, start_ms: int, end_ms: int) -> dict[str, int]:
    """``amount`` over [start, end) in proportion to each month's time in it (telescoping:
    each month gets the cumulative share at its end less that at its start)."""
    total = end_ms - start_ms
    plan, given = {}, 0
    for month, _a, b in _spans(start_ms, end_ms):
        upto = amount_micro * (b - start_ms) // total
        plan[month] = upto - given
        given = upto
    return plan


def quarterly(amounts: list[int], start_ms: int, end_ms: int) -> dict[str, int]:
    """Amounts per quarter from the window's first month, each spread evenly over its months
    within the window (a quarter's remainder to its last month)."""
    months = [month for month, _a, _b in _spans(start_ms, end_ms)]
    plan = dict.fromkeys(months, 0)
    for index, amount in enumerate(amounts):
        quarter = months[index * 3 : index * 3 + 3]
        if not quarter:
            raise InvalidInput(f"quarter {index + 1} of the plan lies after the grant's end")
        share = amount // len(quarter)
        for month in quarter:
            plan[month] += share
        plan[quarter[-1]] += amount - share * len(quarter)
    return plan


def store(session: Session, allocation_id: int, months: Mapping[str, int]) -> None:
    """Replace a grant's plan rows."""
    session.execute(delete(PlanMonth).where(PlanMonth.allocation_id == allocation_id))
    session.add_all(
        PlanMonth(allocation_id=allocation_id, month=month, amount_micro=amount)
        for month, amount in sorted(months.items())
    )


def set_plan(
    session: Session, actor: str, slug: str, allocation_id: int, months: Mapping[str, int]
) -> dict[str, int]:
    """An admin's plan for one grant of project ``slug``: every month inside the grant's
    window, none negative, adding up to its amount; audited. Empty: back to even."""
    allocation = session.get(Allocation, allocation_id)
    project = session.scalars(select(Project).where(Project.slug == slug)).first()
    if allocation is None or project is None or allocation.project_id != project.id:
        raise NotFound(f"project {slug} has no allocation {allocation_id}")
    if allocation.valid_until_ms is None or allocation.amount_micro <= 0:
        raise InvalidInput(
            f"allocation {allocation_id} has no end (or adds nothing), so it has no plan; "
            "plans are for grants with a period"
        )
    window = {
        month for month, _a, _b in _spans(allocation.valid_from_ms, allocation.valid_until_ms)
    }
    for month, amount in months.items():
        month_bounds(month)  # the month's own format and range
        if month not in window:
            raise InvalidInput(
                f"month {month} is outside allocation {allocation_id}'s window "
                f"({min(window)} to {max(window)})"
            )
        if not 0 <= amount <= allocation.amount_micro:
            raise InvalidInput(
                f"{month}: {to_decimal_string(amount)} is out of range; give 0 to "
                f"{to_decimal_string(allocation.amount_micro)}"
            )
    if months and sum(months.values()) != allocation.amount_micro:
        raise InvalidInput(
            f"the plan adds up to {to_decimal_string(sum(months.values()))}, not the "
            f"allocation's {to_decimal_string(allocation.amount_micro)}; make the months add up"
        )
    before = plan_of(session, allocation)
    store(session, allocation_id, months)
    after = dict(months) or _even_of(allocation)
    audit.record(
        session,
        actor,
        "plan.set",
        f"project:{slug}/allocations/{allocation_id}",
        {m: to_decimal_string(a) for m, a in before.items()},
        {m: to_decimal_string(a) for m, a in after.items()},
    )
    return after


def plan_of(session: Session, allocation: Allocation) -> dict[str, int]:
    """A grant's plan by month: its rows, or even over its window."""
    return _plans(session, [allocation])[allocation.id]


def _even_of(allocation: Allocation) -> dict[str, int]:
    """A grant's plan without rows: even over its window (grants have an end)."""
    assert allocation.valid_until_ms is not None
    return even(allocation.amount_micro, allocation.valid_from_ms, allocation.valid_until_ms)


@dataclass(frozen=True, slots=True)
class MonthFigures:
    month: str
    planned_micro: int
    spent_micro: int


@dataclass(frozen=True, slots=True)
class Position:
    """One project's spending against its plan at ``now``."""

    project_id: int
    slug: str
    name: str
    granted_micro: int
    planned_to_date_micro: int
    spent_to_date_micro: int
    status: str
    # Spent over (positive) or under (negative) the plan to date, in basis points of it.
    deviation_bp: int | None
    projected_micro: int  # spent by the grants' end at the last 30 days' pace
    runs_out_ms: int | None  # when it runs out at that pace, if before the end (now: spent)
    ends_ms: int
    months: list[MonthFigures]

    @property
    def unused_micro(self) -> int:
        """What the projection leaves unspent at the grants' end."""
        return max(0, self.granted_micro - self.projected_micro)


def _daily_subsidy(
    session: Session, project_ids: Collection[int], since_ms: int
) -> dict[int, dict[int, int]]:
    """Subsidy charged per project and UTC day (days since the epoch) since ``since_ms``."""
    day = (Charge.interval_start_ms // literal_column(str(DAY_MS), BigInteger)).label("day")
    rows = session.execute(
        select(Charge.project_id, day, func.sum(Charge.subsidy_micro))
        .where(Charge.project_id.in_(list(project_ids)), Charge.interval_start_ms >= since_ms)
        .group_by(Charge.project_id, day)
    )
    out: dict[int, dict[int, int]] = {}
    for project_id, days, amount in rows:
        out.setdefault(project_id, {})[int(days)] = int(amount or 0)
    return out


def positions(
    session: Session,
    settings: Settings,
    now_ms: int,
    project_ids: Collection[int] | None = None,
) -> list[Position]:
    """Every project with a grant (an allocation with an end), against its plan at ``now``:
    three queries whatever the number of projects."""
    query = (
        select(Allocation, Project)
        .join(Project, Project.id == Allocation.project_id)
        .where(Allocation.valid_until_ms.is_not(None), Allocation.amount_micro > 0)
    )
    if project_ids is not None:
        query = query.where(Allocation.project_id.in_(list(project_ids)))
    grants: dict[int, list[Allocation]] = {}
    named: dict[int, Project] = {}
    for allocation, project in session.execute(query.order_by(Allocation.id)):
        grants.setdefault(project.id, []).append(allocation)
        named[project.id] = project
    if not grants:
        return []
    plans = _plans(session, [a for group in grants.values() for a in group])
    since = min(a.valid_from_ms for group in grants.values() for a in group)
    spent = _daily_subsidy(session, list(grants), since - since % DAY_MS)
    margin = settings.scheme.plan_margin_percent
    out = []
    for project_id, allocations in grants.items():
        planned: dict[str, int] = {}
        for allocation in allocations:
            for month, amount in plans[allocation.id].items():
                planned[month] = planned.get(month, 0) + amount
        start = min(a.valid_from_ms for a in allocations)
        end = max(a.valid_until_ms or 0 for a in allocations)
        days = spent.get(project_id, {})
        by_month: dict[str, int] = {}
        for day, amount in days.items():
            if day * DAY_MS >= start:
                month = month_of(day * DAY_MS)
                by_month[month] = by_month.get(month, 0) + amount
        to_date = _planned_to_date(planned, now_ms)
        spent_to_date = sum(by_month.values())
        recent = sum(a for d, a in days.items() if d * DAY_MS >= now_ms - RECENT_MS)
        granted = sum(a.amount_micro for a in allocations)
        out.append(
            _position(
                named[project_id],
                granted,
                to_date,
                spent_to_date,
                recent,
                now_ms,
                start,
                end,
                margin,
                [
                    MonthFigures(m, planned.get(m, 0), by_month.get(m, 0))
                    for m in sorted(set(planned) | set(by_month))
                ],
            )
        )
    return out


def _plans(session: Session, allocations: list[Allocation]) -> dict[int, dict[str, int]]:
    """Each grant's plan by month, in one query: its rows, or even over its window."""
    rows = session.execute(
        select(PlanMonth.allocation_id, PlanMonth.month, PlanMonth.amount_micro).where(
            PlanMonth.allocation_id.in_([a.id for a in allocations])
        )
    )
    stored: dict[int, dict[str, int]] = {}
    for allocation_id, month, amount in rows:
        stored.setdefault(allocation_id, {})[month] = amount
    return {a.id: stored.get(a.id) or _even_of(a) for a in allocations}


def _planned_to_date(planned: Mapping[str, int], now_ms: int) -> int:
    """Whole months before ``now``'s, plus its month's plan in proportion to the time gone."""
    current = month_of(now_ms)
    start, end = month_bounds(current)
    before = sum(amount for month, amount in planned.items() if month < current)
    return before + planned.get(current, 0) * (now_ms - start) // (end - start)


def _position(
    project: Project,
    granted: int,
    planned_to_date: int,
    spent_to_date: int,
    recent: int,
    now_ms: int,
    start_ms: int,
    end_ms: int,
    margin_percent: int,
    months: list[MonthFigures],
) -> Position:
    deviation = None
    status = OK
    if planned_to_date > 0:
        deviation = (spent_to_date - planned_to_date) * 10_000 // planned_to_date
        if deviation > margin_percent * 100:
            status = OVER
        elif deviation < -margin_percent * 100 and now_ms - start_ms >= RECENT_MS:
            # Under-spend is judged after a grant's first 30 days: a new grant has spent
            # nothing yet, which says nothing about its use.
            status = UNDER
    left_ms = max(0, end_ms - now_ms)
    projected = min(granted, spent_to_date + recent * left_ms // RECENT_MS)
    runs_out = None
    if spent_to_date >= granted:
        runs_out = now_ms  # spent already
    elif recent > 0:
        at = now_ms + (granted - spent_to_date) * RECENT_MS // recent
        runs_out = at if at < end_ms else None
    return Position(
        project.id,
        project.slug,
        project.name,
        granted,
        planned_to_date,
        spent_to_date,
        status,
        deviation,
        projected,
        runs_out,
        end_ms,
        months,
    )


@dataclass(frozen=True, slots=True)
class Scheme:
    """The scheme as the funder asks about it, over every grant."""

    approved_micro: int
    positions: list[Position]

    @property
    def allocated_micro(self) -> int:
        return sum(p.granted_micro for p in self.positions)

    @property
    def spent_micro(self) -> int:
        return sum(p.spent_to_date_micro for p in self.positions)

    @property
    def projected_micro(self) -> int:
        return sum(p.projected_micro for p in self.positions)

    def totals(self) -> dict[str, str]:
        """The funder's figures, as decimal strings (the utilisation report carries them)."""
        allocated, spent, projected = self.allocated_micro, self.spent_micro, self.projected_micro
        return {
            "approved": to_decimal_string(self.approved_micro),
            "allocated": to_decimal_string(allocated),
            "spent": to_decimal_string(spent),
            "remaining": to_decimal_string(allocated - spent),
            "projected": to_decimal_string(projected),
            "projected_unused": to_decimal_string(max(0, allocated - projected)),
        }

    def ranking(self) -> list[Position]:
        """Projects by subsidy projected to go unused, most first: under-use leads."""
        return sorted(self.positions, key=lambda p: (-p.unused_micro, p.slug))


def scheme(session: Session, settings: Settings, now_ms: int) -> Scheme:
    approved = session.scalar(
        select(func.coalesce(func.sum(Application.approved_micro), 0)).where(
            Application.state == "approved"
        )
    )
    return Scheme(int(approved or 0), positions(session, settings, now_ms))
