"""The stop the hub saw is the stop the ledger records, however late its notice comes.

On real databases (SQLite and PostgreSQL): a tick that charged past the reported stop is
reversed with negative ``reversal`` lines cut at month starts like the charges were; a stop
the service placed on its own (reconciliation's estimate, an enforced or superseded stop) is
moved to the reported one; the subsidy drawn follows, ``verify`` finds the caches and entries
in step, and every session's lines still sum to rate × (stop − start) rounded once.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from subsidyhub.errors import InvalidInput
from subsidyhub.ledger import admission, statements
from subsidyhub.ledger.accounts import verify
from subsidyhub.ledger.audit import entries
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.enforcement import REASON_EXHAUSTED
from subsidyhub.ledger.metering import charge_until
from subsidyhub.ledger.models import Allocation, Charge, Project, SpawnSession
from subsidyhub.ledger.pricing import Split, accrued
from subsidyhub.settings import Settings

from .helpers import HOUR, T0, make_project

MINUTE = 60_000


def start(db: Database, settings: Settings, at: int, server: str = "") -> int:
    with db.write() as session:
        return admission.admit(
            session,
            settings,
            username="alice",
            project_slug="demo",
            profile_slug="gpu-1",
            server_name=server,
            now_ms=at,
        ).session_id


def report(db: Database, session_id: int, stopped_ms: int, now_ms: int) -> admission.Stopped:
    with db.write() as session:
        return admission.record_stop(
            session, session_id, stopped_ms=stopped_ms, now_ms=now_ms, reason="stopped", actor="hub"
        )


def lines(db: Database, session_id: int) -> list[tuple[str, int, int, int, int]]:
    """(kind, start, end, list, subsidy) of a session's charge lines, in the order written."""
    with db.read() as session:
        rows = session.execute(
            select(
                Charge.kind,
                Charge.interval_start_ms,
                Charge.interval_end_ms,
                Charge.list_micro,
                Charge.subsidy_micro,
            )
            .where(Charge.session_id == session_id)
            .order_by(Charge.id)
        )
        return [tuple(row) for row in rows]


def owed(db: Database, session_id: int) -> Split:
    """What the session owes for its recorded life: its rate × (stop − start), rounded once."""
    with db.read() as session:
        row = session.get(SpawnSession, session_id)
        assert row is not None and row.stopped_ms is not None
        return accrued(row.list_rate_micro, row.subsidy_bp, row.stopped_ms - row.started_ms)


def assert_exact(db: Database, session_id: int) -> None:
    """Lines, the session's totals and the subsidy drawn all equal what the session owes."""
    due = owed(db, session_id)
    found = lines(db, session_id)
    assert sum(line[3] for line in found) == due.list
    assert sum(line[4] for line in found) == due.subsidy
    with db.read() as session:
        row = session.get(SpawnSession, session_id)
        assert (row.charged_list_micro, row.charged_subsidy_micro) == (due.list, due.subsidy)
        assert row.charged_until_ms == row.stopped_ms
        assert verify(session) == []


def drawn(db: Database) -> int:
    with db.read() as session:
        allocations = session.scalar(select(func.sum(Allocation.drawn_micro))) or 0
        overdraft = session.scalar(select(func.sum(Project.overdraft_micro))) or 0
        return int(allocations) + int(overdraft)


def test_a_stop_reported_after_a_tick_reverses_what_was_charged_past_it(ledger_db, settings):
    make_project(ledger_db, settings, amount="10000")
    sid = start(ledger_db, settings, T0 + HOUR)
    # The service was away when the server stopped at +7 min; back at +10 min, it ticked.
    charge_until(ledger_db, T0 + HOUR + 10 * MINUTE)
    [charged] = lines(ledger_db, sid)

    stopped = report(ledger_db, sid, T0 + HOUR + 7 * MINUTE, now_ms=T0 + HOUR + 10 * MINUTE)

    assert stopped.stopped_ms == T0 + HOUR + 7 * MINUTE
    assert stopped.already is False and stopped.reason == "stopped"
    usage, reversal = lines(ledger_db, sid)
    assert usage == charged
    kind, begin, end, list_part, subsidy = reversal
    assert (kind, begin, end) == ("reversal", T0 + HOUR + 7 * MINUTE, T0 + HOUR + 10 * MINUTE)
    due = owed(ledger_db, sid)
    assert due == accrued(46_400_000, 7000, 7 * MINUTE)
    assert (list_part, subsidy) == (due.list - usage[3], due.subsidy - usage[4])
    assert list_part < 0 and subsidy < 0
    assert_exact(ledger_db, sid)
    assert drawn(ledger_db) == owed(ledger_db, sid).subsidy  # the subsidy went back

    with ledger_db.read() as session:
        [entry] = entries(session, target="project:demo/sessions")
    assert entry.action == "session.stop_corrected" and entry.actor == "hub"
    assert entry.before["charged_until"].endswith("01:10:00.000Z")
    assert entry.after["stopped"].endswith("01:07:00.000Z")

    again = report(ledger_db, sid, T0 + HOUR + 9 * MINUTE, now_ms=T0 + 2 * HOUR)
    assert again.already is True and again.stopped_ms == T0 + HOUR + 7 * MINUTE
    assert len(lines(ledger_db, sid)) == 2  # a reported stop is final


def test_a_reversal_across_a_month_start_is_cut_where_the_charges_were(ledger_db, settings):
    make_project(ledger_db, settings, amount="10000", at_ms=T0 - 2 * HOUR)
    sid = start(ledger_db, settings, T0 - HOUR)  # 2026-11-30T23:00Z
    charge_until(ledger_db, T0 + HOUR)  # cut at 2026-12-01T00:00Z

    report(ledger_db, sid, T0 - 20 * MINUTE, now_ms=T0 + HOUR)

    reversals = [line[:3] for line in lines(ledger_db, sid) if line[0] == "reversal"]
    assert reversals == [("reversal", T0 - 20 * MINUTE, T0), ("reversal", T0, T0 + HOUR)]
    assert_exact(ledger_db, sid)
    with ledger_db.read() as session:
        project = session.scalars(select(Project)).one()
        november = statements.charged_in_month(session, project, "2026-11")
        december = statements.charged_in_month(session, project, "2026-12")
        [nov_line] = statements.statement(session, "2026-11", "HKD").lines
        [dec_line] = statements.statement(session, "2026-12", "HKD").lines
    due = owed(ledger_db, sid)
    assert november == (due.list, due.subsidy, due.list - due.subsidy)
    assert december == (0, 0, 0)
    assert nov_line.duration_ms == 40 * MINUTE and nov_line.gpu_ms == 40 * MINUTE
    assert dec_line.duration_ms == 0 and dec_line.list_micro == 0


def test_reconciliation_estimate_moves_to_the_reported_stop_either_way(ledger_db, settings):
    make_project(ledger_db, settings, amount="10000")
    early = start(ledger_db, settings, T0, server="early")
    late = start(ledger_db, settings, T0, server="late")
    charge_until(ledger_db, T0 + 10 * MINUTE)
    with ledger_db.write() as session:
        # The hub no longer listed either server; the last listings showed them at +2 / +8.
        for sid, seen in ((early, 2), (late, 8)):
            admission.stop(
                session,
                sid,
                now_ms=T0 + 10 * MINUTE,
                reason=admission.RECONCILED,
                at_ms=T0 + seen * MINUTE,
            )
    assert owed(ledger_db, early) == accrued(46_400_000, 7000, 2 * MINUTE)
    assert_exact(ledger_db, early)

    # The notices come: the servers really stopped at +6 and +5.
    report(ledger_db, early, T0 + 6 * MINUTE, now_ms=T0 + 11 * MINUTE)
    report(ledger_db, late, T0 + 5 * MINUTE, now_ms=T0 + 11 * MINUTE)

    assert [line[:3] for line in lines(ledger_db, early)] == [
        ("usage", T0, T0 + 10 * MINUTE),
        ("reversal", T0 + 2 * MINUTE, T0 + 10 * MINUTE),
        ("correction", T0 + 2 * MINUTE, T0 + 6 * MINUTE),
    ]
    assert [line[:3] for line in lines(ledger_db, late)][-1] == (
        "reversal",
        T0 + 5 * MINUTE,
        T0 + 8 * MINUTE,
    )
    for sid, minutes in ((early, 6), (late, 5)):
        assert owed(ledger_db, sid) == accrued(46_400_000, 7000, minutes * MINUTE)
        assert_exact(ledger_db, sid)
    assert drawn(ledger_db) == owed(ledger_db, early).subsidy + owed(ledger_db, late).subsidy
    with ledger_db.read() as session:
        december = statements.statement(session, "2026-12", "HKD")
        reasons = {
            row.server_name: row.stop_reason for row in session.scalars(select(SpawnSession))
        }
    assert sum(line.duration_ms for line in december.lines) == 11 * MINUTE
    assert reasons == {"early": "stopped", "late": "stopped"}


def test_a_stop_reported_after_reconciliation_found_the_server_gone_is_not_its(ledger_db, settings):
    """Another server of that name (let through unadmitted) stopped later: not this session."""
    make_project(ledger_db, settings, amount="10000")
    sid = start(ledger_db, settings, T0)
    with ledger_db.write() as session:
        admission.stop(
            session,
            sid,
            now_ms=T0 + 10 * MINUTE,
            reason=admission.RECONCILED,
            at_ms=T0 + 2 * MINUTE,
        )

    found = report(ledger_db, sid, T0 + 30 * MINUTE, now_ms=T0 + 31 * MINUTE)

    assert (found.stopped_ms, found.reason) == (T0 + 2 * MINUTE, admission.RECONCILED)
    assert owed(ledger_db, sid) == accrued(46_400_000, 7000, 2 * MINUTE)
    assert_exact(ledger_db, sid)


def test_an_enforced_stop_moves_only_to_an_earlier_reported_stop(ledger_db, settings):
    make_project(ledger_db, settings, amount="10000")
    first = start(ledger_db, settings, T0, server="first")
    second = start(ledger_db, settings, T0, server="second")
    with ledger_db.write() as session:
        for sid in (first, second):
            admission.stop(session, sid, now_ms=T0 + 10 * MINUTE, reason=REASON_EXHAUSTED)

    later = report(ledger_db, first, T0 + 10 * MINUTE + 900, now_ms=T0 + 11 * MINUTE)
    earlier = report(ledger_db, second, T0 + 9 * MINUTE, now_ms=T0 + 11 * MINUTE)

    assert (later.stopped_ms, later.reason) == (T0 + 10 * MINUTE, REASON_EXHAUSTED)
    assert len(lines(ledger_db, first)) == 1
    assert (earlier.stopped_ms, earlier.reason) == (T0 + 9 * MINUTE, "stopped")
    for sid in (first, second):
        assert_exact(ledger_db, sid)


def test_a_late_stop_of_a_superseded_session_finds_it_and_leaves_the_new_one(ledger_db, settings):
    make_project(ledger_db, settings, amount="10000")
    old = start(ledger_db, settings, T0)
    new = start(ledger_db, settings, T0 + 10 * MINUTE)  # closes the old one: "superseded"
    with ledger_db.read() as session:
        assert session.get(SpawnSession, old).stop_reason == "superseded"
        found = admission.session_for_stop(session, "alice", "", T0 + 4 * MINUTE)
    assert found == old

    report(ledger_db, old, T0 + 4 * MINUTE, now_ms=T0 + 11 * MINUTE)

    assert owed(ledger_db, old) == accrued(46_400_000, 7000, 4 * MINUTE)
    assert_exact(ledger_db, old)
    with ledger_db.read() as session:
        assert session.get(SpawnSession, new).stopped_ms is None


def test_a_reported_stop_before_the_start_or_in_the_future_is_refused(ledger_db, settings):
    make_project(ledger_db, settings, amount="10000")
    sid = start(ledger_db, settings, T0)
    with pytest.raises(InvalidInput, match="is before alice's session started"):
        report(ledger_db, sid, T0 - 1, now_ms=T0 + MINUTE)
    skew = admission.STOP_SKEW_MS
    with pytest.raises(InvalidInput, match="in the future"):
        report(ledger_db, sid, T0 + MINUTE + skew + 1, now_ms=T0 + MINUTE)
    with ledger_db.read() as session:
        assert session.get(SpawnSession, sid).stopped_ms is None  # nothing written

    within = report(ledger_db, sid, T0 + MINUTE + skew, now_ms=T0 + MINUTE)
    assert within.stopped_ms == T0 + MINUTE + skew
    assert_exact(ledger_db, sid)
