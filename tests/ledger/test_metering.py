"""Metering on real databases: every millisecond charged exactly once, whatever happens.

The crash test runs the metering loop in a real child process and kills it with SIGKILL
mid-tick, several times; a rerun then charges exactly what is owed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest
from sqlalchemy import func, select

from subsidyhub.ledger import admission, projects, statements
from subsidyhub.ledger.accounts import load_account, verify
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.metering import charge_until
from subsidyhub.ledger.models import Charge, SpawnSession
from subsidyhub.ledger.pricing import accrued
from subsidyhub.money import div_round, parse_amount
from subsidyhub.settings import Settings
from subsidyhub.timeutil import MS_PER_HOUR

from .helpers import HOUR, T0, make_project


def start(
    db: Database,
    settings: Settings,
    user: str,
    profile: str = "gpu-1",
    at: int = T0,
    server: str = "",
) -> int:
    with db.write() as session:
        return admission.admit(
            session,
            settings,
            username=user,
            project_slug="demo",
            profile_slug=profile,
            server_name=server,
            now_ms=at,
        ).session_id


def session_totals(db: Database) -> dict[int, tuple[int, int, int]]:
    with db.read() as session:
        rows = session.execute(
            select(
                Charge.session_id,
                func.sum(Charge.list_micro),
                func.sum(Charge.subsidy_micro),
                func.count(),
            ).group_by(Charge.session_id)
        )
        return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}


def test_rerun_charges_nothing_twice_and_gaps_are_caught_up(ledger_db, settings):
    make_project(ledger_db, settings, amount="10000")
    sid = start(ledger_db, settings, "alice")
    for minute in (1, 2, 2, 3):
        charge_until(ledger_db, T0 + minute * 60_000)
    charge_until(ledger_db, T0 + 10 * HOUR + 17)  # a long gap: the service was down
    charge_until(ledger_db, T0 + 10 * HOUR + 17)
    list_total, subsidy_total, lines = session_totals(ledger_db)[sid]
    assert lines == 4
    assert list_total == div_round(46_400_000 * (10 * HOUR + 17), MS_PER_HOUR)
    assert subsidy_total == accrued(46_400_000, 7000, 10 * HOUR + 17).subsidy
    with ledger_db.read() as session:
        assert verify(session) == []


def test_intervals_are_cut_at_month_boundaries(ledger_db, settings):
    make_project(ledger_db, settings, at_ms=T0 - 2 * HOUR)
    sid = start(ledger_db, settings, "alice", "cpu-small", at=T0 - HOUR)  # 23:00 on 30 November
    charge_until(ledger_db, T0 + HOUR)
    with ledger_db.read() as session:
        lines = session.scalars(
            select(Charge).where(Charge.session_id == sid).order_by(Charge.interval_start_ms)
        ).all()
        assert [(c.interval_start_ms, c.interval_end_ms) for c in lines] == [
            (T0 - HOUR, T0),
            (T0, T0 + HOUR),
        ]
        project = projects.get_project(session, "demo")
        november = statements.statement(session, "2026-11", "HKD", [project])
        december = statements.statement(session, "2026-12", "HKD", [project])
    assert november.total_list == december.total_list == 1_400_000
    assert november.as_dict()["totals"]["hours"] == "1.0000"


def test_allocations_draw_first_expiring_first_and_stop_counting_at_their_end(ledger_db, settings):
    make_project(ledger_db, settings, amount="20", valid_until_ms=T0 + 2 * HOUR)
    with ledger_db.write() as session:
        projects.add_allocation(
            session, settings, "test", "demo", amount_micro=parse_amount("100"), at_ms=T0
        )
    start(ledger_db, settings, "alice", "cpu-small")  # 1.40/h list, 0.98/h subsidy
    for hour in (1, 2, 3):
        charge_until(ledger_db, T0 + hour * HOUR)
    with ledger_db.read() as session:
        project = projects.get_project(session, "demo")
        allocations = projects.allocations_of(session, project)
        account = load_account(session, project, T0 + 3 * HOUR)
        assert verify(session) == []
    # Two hours drawn from the 20.00 that expired at T0+2h, the third from the open 100.00;
    # the expired allocation's unspent 18.04 no longer counts.
    assert [a.drawn_micro for a in allocations] == [1_960_000, 980_000]
    assert account.allocated == 100_000_000
    assert account.balance == 100_000_000 - 980_000


def test_overdraft_is_settled_by_the_next_allocation(ledger_db, settings):
    make_project(ledger_db, settings, amount="1")
    start(ledger_db, settings, "alice", "cpu-small")  # holds 0.245 of 1.00
    charge_until(ledger_db, T0 + 2 * HOUR)  # 1.96 of subsidy: 0.96 overdrawn
    with ledger_db.read() as session:
        project = projects.get_project(session, "demo")
        assert project.overdraft_micro == 960_000
        assert load_account(session, project, T0 + 2 * HOUR).balance == -960_000
    with ledger_db.write() as session:
        projects.add_allocation(
            session, settings, "test", "demo", amount_micro=parse_amount("50"), at_ms=T0 + 2 * HOUR
        )
    with ledger_db.read() as session:
        project = projects.get_project(session, "demo")
        assert project.overdraft_micro == 0
        assert load_account(session, project, T0 + 2 * HOUR).balance == 50_000_000 - 960_000
        assert verify(session) == []


def test_statement_reconciles_with_charges_and_allocations(ledger_db, settings):
    make_project(ledger_db, settings, amount="1000", members=("alice", "bob"))
    a = start(ledger_db, settings, "alice", "gpu-1")
    start(ledger_db, settings, "bob", "cpu-small", at=T0 + 123_457)
    start(ledger_db, settings, "bob", "gpu-2", at=T0 + 999, server="big")
    for step in range(1, 40):
        charge_until(ledger_db, T0 + step * 97_531)
    with ledger_db.write() as session:
        admission.stop(session, a, now_ms=T0 + 50 * 97_531 + 7, reason="user")
    charge_until(ledger_db, T0 + 3 * HOUR)
    with ledger_db.read() as session:
        project = projects.get_project(session, "demo")
        result = statements.statement(session, "2026-12", "HKD", [project])
        assert (
            result.total_list,
            result.total_subsidy,
            result.total_copay,
        ) == statements.charged_in_month(session, project, "2026-12")
        drawn = sum(x.drawn_micro for x in projects.allocations_of(session, project))
        assert result.total_subsidy == drawn
        assert [(line.username, line.profile) for line in result.lines] == [
            ("alice", "gpu-1"),
            ("bob", "cpu-small"),
            ("bob", "gpu-2"),
        ]
        bob_gpu = result.lines[2]
        assert bob_gpu.gpu_ms == 2 * bob_gpu.duration_ms
        assert result.as_csv().splitlines()[-1].startswith("2026-12,HKD,TOTAL,")


CHILD = textwrap.dedent(
    """
    import sys
    from subsidyhub.ledger.db import Database
    from subsidyhub.ledger.metering import charge_until
    db = Database(sys.argv[1])
    t = int(sys.argv[2])
    print("ready", flush=True)
    while True:
        t += 1_000
        charge_until(db, t, batch_size=25)
    """
)


@pytest.mark.slow
def test_killing_metering_mid_tick_loses_and_doubles_nothing(ledger_db, settings):
    users = tuple(f"u{i}" for i in range(200))
    make_project(ledger_db, settings, amount="1000000", members=users)
    sessions = [start(ledger_db, settings, u, "cpu-small", at=T0 + i) for i, u in enumerate(users)]
    for delay in (0.4, 0.7, 1.1):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, ledger_db.url, str(T0 + 300)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    with ledger_db.read() as session:
        frontier = session.scalar(select(func.max(SpawnSession.charged_until_ms)))
        laggard = session.scalar(select(func.min(SpawnSession.charged_until_ms)))
    assert frontier > T0 + 1_300  # the child really ran ticks before it died
    final = frontier + HOUR
    charge_until(ledger_db, final)
    totals = session_totals(ledger_db)
    for index, sid in enumerate(sessions):
        elapsed = final - (T0 + index)
        list_total, subsidy_total, _ = totals[sid]
        assert list_total == div_round(1_400_000 * elapsed, MS_PER_HOUR)
        assert subsidy_total == accrued(1_400_000, 7000, elapsed).subsidy
    with ledger_db.read() as session:
        assert verify(session) == []
        duplicates = session.execute(
            select(Charge.session_id, Charge.interval_end_ms)
            .group_by(Charge.session_id, Charge.interval_end_ms)
            .having(func.count() > 1)
        ).all()
    assert duplicates == []
    assert laggard >= T0
