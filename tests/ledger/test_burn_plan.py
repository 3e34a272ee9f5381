"""Burn plans against spending (issue 18): the plan arithmetic as a table (month cuts, odd
windows, remainders), and positions on SQLite and PostgreSQL from real charges.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from subsidyhub.errors import InvalidInput
from subsidyhub.ledger import admission, burn_plan, projects
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.metering import charge_until
from subsidyhub.ledger.models import Allocation, Project
from subsidyhub.settings import Settings
from subsidyhub.timeutil import DAY_MS, month_bounds, parse_when

from .helpers import HOUR, T0

JAN, FEB, MAR = (month_bounds(m)[0] for m in ("2027-01", "2027-02", "2027-03"))


def at(text: str) -> int:
    return parse_when(text)


@pytest.mark.parametrize(
    ("amount", "start", "end", "expected"),
    [
        # Whole months: even by time (31 + 28 days).
        (59_000, "2027-01-01", "2027-03-01", {"2027-01": 31_000, "2027-02": 28_000}),
        # A window cut mid-month: each month gets its share of the time inside it.
        (
            3_000,
            "2027-01-16T12:00:00Z",
            "2027-02-16T12:00:00Z",
            {"2027-01": 1_500, "2027-02": 1_500},
        ),
        # Remainders telescope: the months add up to the amount exactly.
        (10, "2027-01-01", "2027-04-01", {"2027-01": 3, "2027-02": 3, "2027-03": 4}),
        # One day.
        (7, "2027-01-05", "2027-01-06", {"2027-01": 7}),
    ],
)
def test_an_even_plan_follows_the_time_in_each_month(amount, start, end, expected):
    plan = burn_plan.even(amount, at(start), at(end))
    assert plan == expected and sum(plan.values()) == amount


@pytest.mark.parametrize(
    ("amounts", "start", "end", "expected"),
    [
        (
            [300, 600],
            "2027-01-01",
            "2027-07-01",
            {"2027-01": 100, "2027-02": 100, "2027-03": 100}
            | {"2027-04": 200, "2027-05": 200, "2027-06": 200},
        ),
        # A quarter's remainder goes to its last month.
        ([100], "2027-01-01", "2027-04-01", {"2027-01": 33, "2027-02": 33, "2027-03": 34}),
        # A window starting mid-month: quarters count from its first month; the last quarter
        # is cut by the window's end.
        (
            [90, 20],
            "2027-01-20",
            "2027-05-10",
            {"2027-01": 30, "2027-02": 30, "2027-03": 30, "2027-04": 10, "2027-05": 10},
        ),
    ],
)
def test_a_quarterly_plan_spreads_each_quarter_over_its_months(amounts, start, end, expected):
    plan = burn_plan.quarterly(amounts, at(start), at(end))
    assert plan == expected and sum(plan.values()) == sum(amounts)


def test_a_quarter_past_the_end_is_refused():
    with pytest.raises(InvalidInput, match="quarter 2 of the plan lies after"):
        burn_plan.quarterly([1, 1], at("2027-01-01"), at("2027-03-01"))


@pytest.mark.parametrize(
    ("planned", "spent", "status"),
    [
        (1000, 1000, "on_plan"),
        (1000, 1250, "over_plan"),
        (1000, 750, "under_plan"),
        (1000, 1200, "on_plan"),
        (1000, 800, "on_plan"),
        (0, 50, "on_plan"),
    ],
)
def test_the_margin_decides_over_and_under(planned, spent, status):
    position = burn_plan._position(_project(), 10_000, planned, spent, 0, FEB, JAN, MAR, 20, [])
    assert position.status == status


def test_under_spend_is_judged_after_the_grants_first_30_days():
    early = burn_plan._position(_project(), 10_000, 1000, 0, 0, JAN + DAY_MS, JAN, MAR, 20, [])
    assert early.status == "on_plan"
    late = burn_plan._position(_project(), 10_000, 1000, 0, 0, JAN + 30 * DAY_MS, JAN, MAR, 20, [])
    assert late.status == "under_plan"


def test_projection_extends_the_last_30_days_to_the_end():
    # 300 spent in the last 30 days, 60 days left: 600 more; runs out before the end.
    end = JAN + 60 * DAY_MS
    position = burn_plan._position(_project(), 1_000, 500, 500, 300, JAN, JAN, end, 20, [])
    assert position.projected_micro == 1_000 and position.unused_micro == 0
    assert position.runs_out_ms == JAN + 50 * DAY_MS
    # A quiet month: the rest stays unused.
    idle = burn_plan._position(_project(), 1_000, 500, 200, 0, JAN, JAN, end, 20, [])
    assert (idle.projected_micro, idle.unused_micro, idle.runs_out_ms) == (200, 800, None)


def _project() -> Project:
    return Project(id=1, slug="p", name="P")


@pytest.fixture
def grant(ledger_db: Database, settings: Settings) -> Database:
    """Project lab: HK$1,488.00 over December 2026 and January 2027 (24.00 a day), alice a
    member."""
    with ledger_db.write() as session:
        projects.create_project(session, settings, "test", slug="lab", name="Lab", at_ms=T0)
        projects.add_allocation(
            session,
            settings,
            "test",
            "lab",
            amount_micro=1_488_000_000,
            at_ms=T0,
            valid_until_ms=month_bounds("2027-01")[1],
        )
        projects.set_member(session, "test", "lab", "alice", at_ms=T0)
    return ledger_db


def test_a_grant_spent_faster_than_planned_is_over_plan(grant: Database, settings: Settings):
    with grant.write() as session:
        started = admission.admit(
            session,
            settings,
            username="alice",
            project_slug="lab",
            profile_slug="gpu-1",
            server_name="",
            now_ms=T0,
        )
    with grant.write() as session:
        admission.stop(session, started.session_id, now_ms=T0 + 2 * HOUR, reason="user")
    charge_until(grant, T0 + 2 * HOUR)  # two hours of gpu-1 at HK$32.48/h of subsidy
    now = T0 + 24 * HOUR
    with grant.read() as session:
        [position] = burn_plan.positions(session, settings, now)
    assert (position.planned_to_date_micro, position.spent_to_date_micro) == (
        24_000_000,
        64_960_000,
    )
    assert position.status == "over_plan" and position.deviation_bp == 17_066
    assert position.months[0].month == "2026-12"
    # Nothing more spent in December: under plan, nearly all of the grant projected unused
    # (nothing in the last 30 days, so nothing more by the end).
    later = month_bounds("2027-01")[0]
    with grant.read() as session:
        [quiet] = burn_plan.positions(session, settings, later)
    assert (quiet.planned_to_date_micro, quiet.status) == (744_000_000, "under_plan")
    assert (quiet.projected_micro, quiet.unused_micro) == (64_960_000, 1_423_040_000)
    assert quiet.runs_out_ms is None


def test_an_admins_plan_must_add_up_and_stay_in_the_window(grant: Database, settings: Settings):
    with grant.read() as session:
        [position] = burn_plan.positions(session, settings, T0)
        allocation_id = session.scalars(select(Allocation.id)).one()
    with grant.write() as session, pytest.raises(InvalidInput, match="not the allocation's 1488"):
        burn_plan.set_plan(session, "admin", "lab", allocation_id, {"2026-12": 1})
    with grant.write() as session, pytest.raises(InvalidInput, match="outside allocation"):
        burn_plan.set_plan(session, "admin", "lab", allocation_id, {"2027-02": 1_488_000_000})
    with grant.write() as session:
        burn_plan.set_plan(
            session, "admin", "lab", allocation_id, {"2026-12": 488_000_000, "2027-01": 10**9}
        )
    with grant.read() as session:
        [moved] = burn_plan.positions(session, settings, T0)
    assert [m.planned_micro for m in moved.months] == [488_000_000, 1_000_000_000]
    assert position.granted_micro == 1_488_000_000
