"""Metering: charge running sessions up to a moment, exactly once per millisecond.

``charge_until(t)`` charges every running session for [charged_until, t) and advances
``charged_until`` in the same transaction as the charge lines and the allocation draws, so a
crash leaves either all of a batch or none of it, and a rerun continues where the last commit
stopped: nothing is lost and nothing is charged twice (charge lines are also unique per
session and interval end). Intervals are cut at month boundaries so monthly statements are
exact sums of lines. Batches keep each write transaction short, so admissions are not held
up behind a large tick.

The tick is the hot path (10k sessions a minute on a busy hub): it works on plain rows with
Core statements, computes each charge with one accrual (the session's charged totals are
the accrual at ``charged_until``), and draws each project's subsidy once per tick.

A stop the hub saw earlier than the session was charged to (the tick ran while its notice
was on the way) moves the charged end back with :func:`recharge`: ``reversal`` lines, cut
at month starts as the charges were, so each month nets to what it would have been had the
session been charged to the stop only (docs/decisions/reversing-charges.md).
"""

from __future__ import annotations

import typing
from collections import defaultdict
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Table,
    any_,
    bindparam,
    case,
    cast,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from subsidyhub.ledger.accounts import draw
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.models import Allocation, Charge, Project, SpawnSession
from subsidyhub.ledger.pricing import accrued
from subsidyhub.timeutil import month_boundaries, month_bounds, month_of

# Serialises ticks across service replicas on PostgreSQL (pg_advisory_xact_lock key).
TICK_LOCK_KEY = 0x5B5D_0001

_SESSIONS = SpawnSession.__table__
# Tables, for bulk UPDATEs (the declarative ``__table__`` is typed as any FromClause).
_ALLOCATIONS = typing.cast(Table, Allocation.__table__)
_PROJECTS = typing.cast(Table, Project.__table__)


class ChargeLine(NamedTuple):
    """One charge row, in the column order of ``CHARGE_COLUMNS`` (a tuple for bulk writes)."""

    session_id: int
    project_id: int
    kind: str
    interval_start_ms: int
    interval_end_ms: int
    list_micro: int
    subsidy_micro: int
    copay_micro: int
    created_ms: int


CHARGE_COLUMNS = ChargeLine._fields
_VARYING = tuple(name for name in CHARGE_COLUMNS if name not in ("kind", "created_ms"))

# Kinds of charge line. ``usage``: the tick and stops; ``reversal``: negative lines taking
# back time charged past a stop the hub saw; ``correction``: time charged after a session was
# closed, when the hub's stop came later than reconciliation's estimate.
USAGE, REVERSAL, CORRECTION = "usage", "reversal", "correction"


def charged_ms() -> ColumnElement[int]:
    """The time a charge line accounts for: its interval, negative for a reversal."""
    duration = Charge.interval_end_ms - Charge.interval_start_ms
    return case((Charge.kind == REVERSAL, -duration), else_=duration)


@dataclass(frozen=True, slots=True)
class Owed:
    """What one session owes for one span, as charge rows plus its new charged totals."""

    rows: list[ChargeLine]
    charged_list: int
    charged_subsidy: int


def owed_between(
    *,
    session_id: int,
    project_id: int,
    list_rate: int,
    subsidy_bp: int,
    started_ms: int,
    charged_until_ms: int,
    charged_list: int,
    charged_subsidy: int,
    to_ms: int,
    month_start_ms: int | None = None,
) -> Owed:
    """Charge rows for [charged_until_ms, to_ms), cut at month starts; pure.

    ``charged_list``/``charged_subsidy`` are the session's totals so far, which equal the
    accrual at ``charged_until_ms``; each line is the next accrual minus the previous one.
    ``month_start_ms`` (the start of ``to_ms``'s month) lets a tick skip calendar work for
    the common case of an interval inside one month.
    """
    if month_start_ms is None:
        month_start_ms = month_bounds(month_of(to_ms))[0]
    ends = [to_ms]
    if charged_until_ms < month_start_ms:
        ends = [*month_boundaries(charged_until_ms, to_ms), to_ms]
    rows: list[ChargeLine] = []
    start, done_list, done_subsidy = charged_until_ms, charged_list, charged_subsidy
    for end in ends:
        if end <= start:
            continue
        total = accrued(list_rate, subsidy_bp, end - started_ms)
        line_list, line_subsidy = total.list - done_list, total.subsidy - done_subsidy
        rows.append(
            ChargeLine(
                session_id,
                project_id,
                USAGE,
                start,
                end,
                line_list,
                line_subsidy,
                line_list - line_subsidy,
                to_ms,
            )
        )
        start, done_list, done_subsidy = end, total.list, total.subsidy
    return Owed(rows, done_list, done_subsidy)


def _member_of(
    column: ColumnElement[int], ids: list[int], connection: Connection
) -> ColumnElement[bool]:
    """``column IN ids``; on PostgreSQL as ``= ANY(array)``: one parameter, not thousands."""
    if connection.dialect.name == "postgresql":
        return column == any_(
            cast(bindparam(None, list(ids), type_=ARRAY(BigInteger)), ARRAY(BigInteger))
        )
    return column.in_(ids)


@dataclass(slots=True)
class _AllocationRow:
    id: int
    amount_micro: int
    drawn_micro: int
    valid_from_ms: int
    valid_until_ms: int | None


@dataclass(slots=True)
class _ProjectRow:
    id: int
    overdraft_micro: int


def draw_for_projects(
    connection: Connection, draws: dict[int, dict[int, int]], *, lock: bool
) -> None:
    """Apply subsidy draws {project_id: {at_ms: amount}} to allocations; write back changes."""
    if not draws:
        return
    ids = sorted(draws)
    project_query = select(_PROJECTS.c.id, _PROJECTS.c.overdraft_micro).where(
        _member_of(_PROJECTS.c.id, ids, connection)
    )
    allocation_query = select(
        _ALLOCATIONS.c.project_id,
        _ALLOCATIONS.c.id,
        _ALLOCATIONS.c.amount_micro,
        _ALLOCATIONS.c.drawn_micro,
        _ALLOCATIONS.c.valid_from_ms,
        _ALLOCATIONS.c.valid_until_ms,
    ).where(_member_of(_ALLOCATIONS.c.project_id, ids, connection))
    if lock:
        project_query = project_query.order_by(_PROJECTS.c.id).with_for_update()
        allocation_query = allocation_query.order_by(_ALLOCATIONS.c.id).with_for_update()
    projects = {
        row.id: _ProjectRow(row.id, row.overdraft_micro)
        for row in connection.execute(project_query)
    }
    allocations: dict[int, list[_AllocationRow]] = defaultdict(list)
    for row in connection.execute(allocation_query):
        allocations[row.project_id].append(
            _AllocationRow(
                row.id, row.amount_micro, row.drawn_micro, row.valid_from_ms, row.valid_until_ms
            )
        )
    before_drawn = {a.id: a.drawn_micro for rows in allocations.values() for a in rows}
    before_overdraft = {p.id: p.overdraft_micro for p in projects.values()}
    for project_id in ids:
        for at_ms, amount in sorted(draws[project_id].items()):
            if amount:
                draw(projects[project_id], allocations[project_id], amount, at_ms - 1)
    changed = [
        {"_id": a.id, "_drawn": a.drawn_micro}
        for rows in allocations.values()
        for a in rows
        if a.drawn_micro != before_drawn[a.id]
    ]
    if changed:
        connection.execute(
            update(_ALLOCATIONS)
            .where(_ALLOCATIONS.c.id == bindparam("_id"))
            .values(drawn_micro=bindparam("_drawn")),
            changed,
        )
    overdrafts = [
        {"_id": p.id, "_overdraft": p.overdraft_micro}
        for p in projects.values()
        if p.overdraft_micro != before_overdraft[p.id]
    ]
    if overdrafts:
        connection.execute(
            update(_PROJECTS)
            .where(_PROJECTS.c.id == bindparam("_id"))
            .values(overdraft_micro=bindparam("_overdraft")),
            overdrafts,
        )


def _bulk_write(
    connection: Connection,
    lines: list[ChargeLine],
    advances: list[tuple[int, int, int]],
    until_ms: int,
) -> None:
    """Insert charge lines and advance sessions with one statement each where the driver allows.

    SQLite: ``executemany`` of tuples straight to the driver. PostgreSQL: ``unnest`` of arrays,
    one round trip per statement instead of one per row.
    """
    names = ", ".join(CHARGE_COLUMNS)
    if connection.dialect.name == "postgresql":
        # Every line of one write is a usage line created at ``until_ms``: those two columns
        # are constants, the rest travel as seven integer arrays.
        columns = list(zip(*lines, strict=True))
        arrays = [list(columns[CHARGE_COLUMNS.index(name)]) for name in _VARYING]
        connection.exec_driver_sql(
            f"INSERT INTO charges ({', '.join(_VARYING)}, kind, created_ms) "
            f"SELECT *, 'usage', %s FROM unnest({', '.join(['%s::bigint[]'] * len(_VARYING))})",
            (until_ms, *arrays),
        )
        ids, lists, subsidies = (list(c) for c in zip(*advances, strict=True))
        connection.exec_driver_sql(
            "UPDATE sessions AS s SET charged_until_ms = %s, charged_list_micro = v.l, charged_subsidy_micro = v.sub "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[]) AS v(id, l, sub) WHERE s.id = v.id",
            (until_ms, ids, lists, subsidies),
        )
        return
    marks = ", ".join("?" for _ in CHARGE_COLUMNS)
    connection.exec_driver_sql(f"INSERT INTO charges ({names}) VALUES ({marks})", lines)
    connection.exec_driver_sql(
        "UPDATE sessions SET charged_until_ms = ?, charged_list_micro = ?, charged_subsidy_micro = ? WHERE id = ?",
        [
            (until_ms, charged_list, charged_subsidy, session_id)
            for session_id, charged_list, charged_subsidy in advances
        ],
    )


def _write_charges(
    connection: Connection, owed: list[tuple[int, int, Owed]], until_ms: int, *, lock: bool
) -> None:
    """Insert the lines, advance the sessions, draw the subsidy: one batch, one transaction."""
    lines = [line for _, _, item in owed for line in item.rows]
    if not lines:
        return
    advances = [
        (session_id, item.charged_list, item.charged_subsidy)
        for session_id, _, item in owed
        if item.rows
    ]
    _bulk_write(connection, lines, advances, until_ms)
    draws: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for line in lines:
        draws[line.project_id][line.interval_end_ms] += line.subsidy_micro
    draw_for_projects(connection, draws, lock=lock)


_DUE_COLUMNS = (
    _SESSIONS.c.id,
    _SESSIONS.c.project_id,
    _SESSIONS.c.list_rate_micro,
    _SESSIONS.c.subsidy_bp,
    _SESSIONS.c.started_ms,
    _SESSIONS.c.charged_until_ms,
    _SESSIONS.c.charged_list_micro,
    _SESSIONS.c.charged_subsidy_micro,
)


def _charge_batch(connection: Connection, until_ms: int, batch_size: int, is_postgres: bool) -> int:
    due = (_SESSIONS.c.stopped_ms.is_(None), _SESSIONS.c.charged_until_ms < until_ms)
    rows = connection.execute(
        select(*_DUE_COLUMNS).where(*due).order_by(_SESSIONS.c.id).limit(batch_size)
    ).all()
    found = len(rows)
    if not rows:
        return 0
    if is_postgres:
        # Lock order everywhere: tick lock, projects, sessions, allocations (as stop and admit).
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": TICK_LOCK_KEY})
        project_ids = sorted({row.project_id for row in rows})
        connection.execute(
            select(_PROJECTS.c.id)
            .where(_member_of(_PROJECTS.c.id, project_ids, connection))
            .order_by(_PROJECTS.c.id)
            .with_for_update()
        )
        rows = connection.execute(
            select(*_DUE_COLUMNS)
            .where(_member_of(_SESSIONS.c.id, [row.id for row in rows], connection), *due)
            .order_by(_SESSIONS.c.id)
            .with_for_update()
        ).all()
    month_start = month_bounds(month_of(until_ms))[0]
    owed = [
        (
            session_id,
            project_id,
            owed_between(
                session_id=session_id,
                project_id=project_id,
                list_rate=rate,
                subsidy_bp=bp,
                started_ms=started,
                charged_until_ms=charged_until,
                charged_list=charged_list,
                charged_subsidy=charged_subsidy,
                to_ms=until_ms,
                month_start_ms=month_start,
            ),
        )
        for session_id, project_id, rate, bp, started, charged_until, charged_list, charged_subsidy in rows
    ]
    _write_charges(connection, owed, until_ms, lock=is_postgres)
    return found


def charge_until(db: Database, until_ms: int, *, batch_size: int = 5000) -> int:
    """Charge all running sessions up to ``until_ms``; returns how many sessions were due."""
    charged = 0
    while True:
        with db.write() as session:
            count = _charge_batch(session.connection(), until_ms, batch_size, not db.is_sqlite)
        charged += count
        if count < batch_size:
            return charged


def charge_one(session: Session, running: SpawnSession, until_ms: int) -> Owed:
    """Charge one session (locked by the caller, as are its project's rows) up to ``until_ms``."""
    owed = owed_between(
        session_id=running.id,
        project_id=running.project_id,
        list_rate=running.list_rate_micro,
        subsidy_bp=running.subsidy_bp,
        started_ms=running.started_ms,
        charged_until_ms=running.charged_until_ms,
        charged_list=running.charged_list_micro,
        charged_subsidy=running.charged_subsidy_micro,
        to_ms=until_ms,
    )
    if owed.rows:
        session.flush()
        _write_charges(
            session.connection(), [(running.id, running.project_id, owed)], until_ms, lock=True
        )
        # The Core update changed the row under the ORM object; keep the object in step
        # without marking it dirty (which would write the same values again).
        set_committed_value(running, "charged_until_ms", until_ms)
        set_committed_value(running, "charged_list_micro", owed.charged_list)
        set_committed_value(running, "charged_subsidy_micro", owed.charged_subsidy)
    return owed


def recharge(
    session: Session, running: SpawnSession, to_ms: int, *, now_ms: int, kind: str = USAGE
) -> Owed:
    """Move a session's charged end to ``to_ms`` (it and its project's rows locked by the caller).

    Later: lines of ``kind`` for [charged_until, to_ms). Earlier: ``reversal`` lines for
    [to_ms, charged_until), the negatives of what :func:`owed_between` charges for that span,
    cut at the same month starts. Either way the subsidy is drawn or given back in the same
    transaction and the session's totals become the accrual at ``to_ms``, so its lines still
    sum to rate × (``to_ms`` − start) rounded once.
    """
    start, end = sorted((running.charged_until_ms, to_ms))
    if start == end:
        return Owed([], running.charged_list_micro, running.charged_subsidy_micro)
    base = accrued(running.list_rate_micro, running.subsidy_bp, start - running.started_ms)
    span = owed_between(
        session_id=running.id,
        project_id=running.project_id,
        list_rate=running.list_rate_micro,
        subsidy_bp=running.subsidy_bp,
        started_ms=running.started_ms,
        charged_until_ms=start,
        charged_list=base.list,
        charged_subsidy=base.subsidy,
        to_ms=end,
    )
    if to_ms > running.charged_until_ms:
        rows = [line._replace(kind=kind, created_ms=now_ms) for line in span.rows]
        owed = Owed(rows, span.charged_list, span.charged_subsidy)
    else:
        reversed_rows = [
            line._replace(
                kind=REVERSAL,
                list_micro=-line.list_micro,
                subsidy_micro=-line.subsidy_micro,
                copay_micro=-line.copay_micro,
                created_ms=now_ms,
            )
            for line in span.rows
        ]
        owed = Owed(reversed_rows, base.list, base.subsidy)
    session.flush()
    connection = session.connection()
    connection.execute(insert(Charge), [line._asdict() for line in owed.rows])
    draws: dict[int, dict[int, int]] = {running.project_id: defaultdict(int)}
    for line in owed.rows:
        draws[running.project_id][line.interval_end_ms] += line.subsidy_micro
    draw_for_projects(connection, draws, lock=True)
    running.charged_until_ms = to_ms
    running.charged_list_micro = owed.charged_list
    running.charged_subsidy_micro = owed.charged_subsidy
    return owed
