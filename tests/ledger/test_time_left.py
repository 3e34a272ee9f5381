"""Time left is the least of the balance, the weekly GPU-hours and the session cap, named.

The table checks the pure rule; the ledger cases (SQLite and PostgreSQL) check that ``GET me``'s
``time_left_seconds`` for a member with a running server is bound by the session cap, not by
weeks of subsidy, and by the balance when no cap is tighter.
"""

from __future__ import annotations

import pytest

from subsidyhub.ledger import admission, projects
from subsidyhub.ledger.accounts import load_account
from subsidyhub.ledger.summary import project_summary
from subsidyhub.ledger.time_left import TimeLeft, for_member, for_profile

from .helpers import HOUR, T0, make_project

MICRO = 1_000_000


@pytest.mark.parametrize(
    ("available", "per_hour", "in_force", "week_used", "gpus", "expected"),
    [
        # 500 at 25/h buys 20 h; a 12 h session cap binds.
        (500, 25, {"max_session_hours": 12 * HOUR}, 0, 1, TimeLeft(12 * HOUR, "session_cap")),
        # 4 GPU-hours a week, 0.5 used, 2 GPUs: 1 h 45 m, before the 12 h cap and the balance.
        (
            500,
            25,
            {"max_session_hours": 12 * HOUR, "gpu_hours_per_week": 4 * HOUR},
            HOUR // 2,
            2,
            TimeLeft(7 * HOUR // 4, "weekly_gpu_hours"),
        ),
        # 10 at 25/h: 24 minutes, before a 12 h cap.
        (10, 25, {"max_session_hours": 12 * HOUR}, 0, 1, TimeLeft(24 * 60_000, "balance")),
        # A CPU profile does not use GPU-hours; nothing but the balance limits it.
        (10, 25, {"gpu_hours_per_week": 0}, 0, 0, TimeLeft(24 * 60_000, "balance")),
        # Overdrawn: no time at all, never negative.
        (-5, 25, {}, 0, 1, TimeLeft(0, "balance")),
        # A profile that costs no subsidy and no caps: nothing limits it.
        (10, 0, {}, 0, 0, TimeLeft(None, None)),
    ],
)
def test_time_left_for_a_profile_is_the_least_limit(
    available, per_hour, in_force, week_used, gpus, expected
):
    left = for_profile(
        available=available * MICRO,
        subsidy_per_hour=per_hour * MICRO,
        in_force=in_force,
        gpu_ms_week=week_used,
        gpu_count=gpus,
    )
    assert left == expected


def test_a_running_member_is_bound_by_the_earliest_stop_time():
    left = for_member(
        balance_ms=21 * 24 * HOUR,
        in_force={},
        gpu_ms_week=0,
        running=[(1, T0, T0 + 12 * HOUR), (0, T0, None)],
        now_ms=T0 + HOUR,
    )
    assert left == TimeLeft(11 * HOUR, "session_cap")


def me_summary(db, settings, at):
    with db.read() as session:
        project = projects.get_project(session, "demo")
        member = projects.get_member(session, project, "alice")
        account = load_account(session, project, at)
        return project_summary(session, settings, project, account, member=member, username="alice")


def test_get_me_time_left_is_the_session_cap_not_weeks_of_subsidy(ledger_db, settings):
    # 20,000 at cpu-small's subsidy of 0.98/h lasts about 850 days; the cap is 12 h.
    make_project(ledger_db, settings, amount="20000")
    with ledger_db.write() as session:
        projects.set_quota(session, settings, "test", "demo", dict(max_session_hours="12"))
        admission.admit(
            session,
            settings,
            username="alice",
            project_slug="demo",
            profile_slug="cpu-small",
            server_name="",
            now_ms=T0,
        )
    summary = me_summary(ledger_db, settings, T0 + HOUR)
    assert (summary["time_left_seconds"], summary["time_left_reason"]) == (
        11 * 3600,
        "session_cap",
    )

    # Without the cap, the project's subsidy at its burn rate binds again.
    with ledger_db.write() as session:
        projects.set_quota(session, settings, "test", "demo", dict(max_session_hours=None))
    with ledger_db.read() as session:
        project = projects.get_project(session, "demo")
        balance_left = load_account(session, project, T0 + HOUR).time_left_ms
    assert balance_left is not None and balance_left > 24 * HOUR
    summary = me_summary(ledger_db, settings, T0 + HOUR)
    # The stop time was fixed at admission: the running server still stops at the old cap.
    assert summary["time_left_reason"] == "session_cap"
