"""Metering: charge running sessions up to a moment, exactly once per second.

``charge_until(t)`` charges every running session for [charged_until, t) and advances
``charged_until`` in the same transaction as the charge lines and the allocation draws, so a
crash leaves either all of a batch or none of it, and a rerun continues where the last commit
stopped: nothing is lost and nothing is charged twice (charge lines are also unique per
session and interval end). Intervals are cut at month boundaries so monthly statements are
exact sums of lines. Batches keep each write transaction short, so admissions are not held
up behind a large tick.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from subsidyhub.ledger.accounts import draw
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.models import Allocation, Charge, Project, SpawnSession
from subsidyhub.ledger.pricing import interval_charge
from subsidyhub.timeutil import month_boundaries

# Serialises ticks across service replicas on PostgreSQL (pg_advisory_xact_lock key).
TICK_LOCK_KEY = 0x5B5D_0001


@dataclass(frozen=True, slots=True)
class Owed:
    """What one session owes for one span, as charge rows plus totals."""

    rows: list[dict[str, int | str]]
    list_micro: int
    subsidy_micro: int


def owed_between(
    *,
    session_id: int,
    project_id: int,
    list_rate: int,
    subsidy_bp: int,
    started_ms: int,
    from_ms: int,
    to_ms: int,
    created_ms: int,
) -> Owed:
    """Charge rows for [from_ms, to_ms), split at month starts; pure."""
    rows: list[dict[str, int | str]] = []
    total_list = total_subsidy = 0
    cuts = [from_ms, *month_boundaries(from_ms, to_ms), to_ms]
    for start, end in itertools.pairwise(cuts):
        if end <= start:
            continue
        split = interval_charge(list_rate, subsidy_bp, start - started_ms, end - started_ms)
        rows.append(
            {
                "session_id": session_id,
                "project_id": project_id,
                "kind": "usage",
                "interval_start_ms": start,
                "interval_end_ms": end,
                "list_micro": split.list,
                "subsidy_micro": split.subsidy,
                "copay_micro": split.copay,
                "created_ms": created_ms,
            }
        )
        total_list += split.list
        total_subsidy += split.subsidy
    return Owed(rows, total_list, total_subsidy)


def draw_for_projects(session: Session, draws: dict[int, list[tuple[int, int]]]) -> None:
    """Apply subsidy draws {project_id: [(amount, at_ms)]} to allocations, locking them."""
    if not draws:
        return
    ids = sorted(draws)
    projects = {
        p.id: p
        for p in session.scalars(select(Project).where(Project.id.in_(ids)).with_for_update())
    }
    by_project: dict[int, list[Allocation]] = defaultdict(list)
    for allocation in session.scalars(
        select(Allocation).where(Allocation.project_id.in_(ids)).with_for_update()
    ):
        by_project[allocation.project_id].append(allocation)
    for project_id in ids:
        for amount, at_ms in draws[project_id]:
            if amount:
                draw(projects[project_id], by_project[project_id], amount, at_ms - 1)


def _charge_batch(session: Session, until_ms: int, batch_size: int, is_postgres: bool) -> int:
    columns = (
        SpawnSession.id,
        SpawnSession.project_id,
        SpawnSession.list_rate_micro,
        SpawnSession.subsidy_bp,
        SpawnSession.started_ms,
        SpawnSession.charged_until_ms,
        SpawnSession.charged_list_micro,
        SpawnSession.charged_subsidy_micro,
    )
    due = (SpawnSession.stopped_ms.is_(None), SpawnSession.charged_until_ms < until_ms)
    query = select(*columns).where(*due).order_by(SpawnSession.id).limit(batch_size)
    sessions = session.execute(query).all()
    found = len(sessions)
    if not sessions:
        return 0
    if is_postgres:
        # Lock order everywhere: tick lock, projects, sessions, allocations (as stop and admit).
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": TICK_LOCK_KEY})
        project_ids = sorted({row.project_id for row in sessions})
        session.execute(
            select(Project.id)
            .where(Project.id.in_(project_ids))
            .order_by(Project.id)
            .with_for_update()
        )
        ids = [row.id for row in sessions]
        sessions = session.execute(
            select(*columns)
            .where(SpawnSession.id.in_(ids), *due)
            .order_by(SpawnSession.id)
            .with_for_update()
        ).all()
    charge_rows: list[dict[str, int | str]] = []
    updates: list[dict[str, int]] = []
    draws: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for row in sessions:
        owed = owed_between(
            session_id=row.id,
            project_id=row.project_id,
            list_rate=row.list_rate_micro,
            subsidy_bp=row.subsidy_bp,
            started_ms=row.started_ms,
            from_ms=row.charged_until_ms,
            to_ms=until_ms,
            created_ms=until_ms,
        )
        charge_rows.extend(owed.rows)
        updates.append(
            {
                "id": row.id,
                "charged_until_ms": until_ms,
                "charged_list_micro": row.charged_list_micro + owed.list_micro,
                "charged_subsidy_micro": row.charged_subsidy_micro + owed.subsidy_micro,
            }
        )
        for line in owed.rows:
            draws[row.project_id].append((int(line["subsidy_micro"]), int(line["interval_end_ms"])))
    if charge_rows:
        session.execute(Charge.__table__.insert(), charge_rows)
        session.execute(update(SpawnSession), updates)
        draw_for_projects(session, _merge_draws(draws))
    return found


def _merge_draws(draws: dict[int, list[tuple[int, int]]]) -> dict[int, list[tuple[int, int]]]:
    """Sum a project's draws that fall at the same moment (one tick: usually one per project)."""
    merged: dict[int, list[tuple[int, int]]] = {}
    for project_id, items in draws.items():
        at: dict[int, int] = defaultdict(int)
        for amount, moment in items:
            at[moment] += amount
        merged[project_id] = sorted(
            ((amount, moment) for moment, amount in at.items()), key=lambda x: x[1]
        )
    return merged


def charge_until(db: Database, until_ms: int, *, batch_size: int = 2000) -> int:
    """Charge all running sessions up to ``until_ms``; returns how many sessions were charged."""
    charged = 0
    while True:
        with db.write() as session:
            count = _charge_batch(session, until_ms, batch_size, not db.is_sqlite)
        charged += count
        if count < batch_size:
            return charged


def charge_one(session: Session, running: SpawnSession, until_ms: int) -> Owed:
    """Charge one session (already locked by the caller) up to ``until_ms``; used at stop."""
    owed = owed_between(
        session_id=running.id,
        project_id=running.project_id,
        list_rate=running.list_rate_micro,
        subsidy_bp=running.subsidy_bp,
        started_ms=running.started_ms,
        from_ms=running.charged_until_ms,
        to_ms=until_ms,
        created_ms=until_ms,
    )
    if owed.rows:
        session.execute(Charge.__table__.insert(), owed.rows)
        running.charged_until_ms = until_ms
        running.charged_list_micro += owed.list_micro
        running.charged_subsidy_micro += owed.subsidy_micro
        draws = [(int(r["subsidy_micro"]), int(r["interval_end_ms"])) for r in owed.rows]
        draw_for_projects(session, {running.project_id: draws})
    return owed


def running_ids(session: Session) -> Sequence[int]:
    return session.scalars(select(SpawnSession.id).where(SpawnSession.stopped_ms.is_(None))).all()
