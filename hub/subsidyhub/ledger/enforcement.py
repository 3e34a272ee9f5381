"""Which running servers must stop, and when the next one will.

The enforcer (in the service) asks :func:`plan` after every change and at every deadline.
A project's servers are due when its predicted exhaustion instant has come (the subsidy is
spent) or the project is closed; a single server is due at its own deadline (max session
hours, or the weekly GPU-hours left when it was admitted: the stop names whichever it was). ``next_due_ms`` is the earliest
future deadline, so the enforcer sleeps until exactly then rather than a whole metering
interval: a stop is late by the hub's reaction time, not by a tick.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased

from subsidyhub.ledger import stops
from subsidyhub.ledger.accounts import load_accounts
from subsidyhub.ledger.models import AuditEntry, Project, SpawnSession

REASON_EXHAUSTED = stops.SUBSIDY_EXHAUSTED
REASON_MAX_SESSION = stops.MAX_SESSION_HOURS
REASON_CLOSED = stops.PROJECT_CLOSED

# The closed session that ``closed_in_ledger_only`` looks for a later start of.
CLOSED = aliased(SpawnSession, name="closed")


@dataclass(frozen=True, slots=True)
class StopOrder:
    session_id: int
    username: str
    server_name: str
    project: str
    reason: str
    due_ms: int


@dataclass(frozen=True, slots=True)
class Plan:
    due: list[StopOrder]
    next_due_ms: int | None
    # Sessions an admin closed in the ledger (e.g. ``subsidyhub server stop``) whose server the
    # hub has not reported stopped: the enforcer asks the hub to stop them.
    closed_running: list[StopOrder] = field(default_factory=list)


# How far back a ledger-only stop is still carried to the hub; older ones were reconciled.
LEDGER_STOP_WINDOW_MS = 60 * 60_000


def closed_in_ledger_only(session: Session, now_ms: int) -> list[StopOrder]:
    """Admin stops written to the ledger whose server the hub has not reported stopped, and
    which no later start of the same server has superseded."""
    later = (
        select(SpawnSession.id)
        .where(
            SpawnSession.username == CLOSED.username,
            SpawnSession.server_name == CLOSED.server_name,
            SpawnSession.id > CLOSED.id,
        )
        .exists()
    )
    rows = session.execute(
        select(CLOSED, Project.slug)
        .join(Project, Project.id == CLOSED.project_id)
        .where(
            CLOSED.stop_reason == stops.ADMIN,
            CLOSED.reported_stop_ms.is_(None),
            CLOSED.stopped_ms >= now_ms - LEDGER_STOP_WINDOW_MS,
            ~later,
        )
    ).all()
    return [
        StopOrder(row.id, row.username, row.server_name, slug, stops.ADMIN, row.stopped_ms or 0)
        for row, slug in rows
    ]


def plan(session: Session, now_ms: int) -> Plan:
    """Stop orders due at ``now_ms`` and the next future deadline (None if nothing is running)."""
    running_projects = session.scalars(
        select(Project).where(
            Project.id.in_(select(SpawnSession.project_id).where(SpawnSession.stopped_ms.is_(None)))
        )
    ).all()
    closed_running = closed_in_ledger_only(session, now_ms)
    if not running_projects:
        return Plan([], None, closed_running)
    accounts = load_accounts(session, running_projects, now_ms)
    due: list[StopOrder] = []
    upcoming: list[int] = []
    for project in running_projects:
        account = accounts[project.id]
        exhausted_at = account.exhaustion_ms
        for running in account.sessions:
            deadline, reason = None, ""
            if project.status == "closed":
                deadline, reason = now_ms, REASON_CLOSED
            if exhausted_at is not None and (deadline is None or exhausted_at < deadline):
                deadline, reason = exhausted_at, REASON_EXHAUSTED
            if running.max_stop_ms is not None and (
                deadline is None or running.max_stop_ms < deadline
            ):
                deadline, reason = running.max_stop_ms, REASON_MAX_SESSION
            if deadline is None:
                continue
            if deadline <= now_ms:
                if reason == REASON_MAX_SESSION:
                    # The deadline is the session cap or the weekly GPU-hours left at admission.
                    reason = _deadline_reason(session, running.id)
                due.append(
                    StopOrder(
                        running.id,
                        running.username,
                        running.server_name,
                        project.slug,
                        reason,
                        deadline,
                    )
                )
            else:
                upcoming.append(deadline)
    return Plan(due, min(upcoming) if upcoming else None, closed_running)


def _deadline_reason(session: Session, session_id: int) -> str:
    """The limit that set a session's deadline, as admission recorded it."""
    recorded = session.scalar(
        select(SpawnSession.max_stop_reason).where(SpawnSession.id == session_id)
    )
    return recorded or REASON_MAX_SESSION


def change_marker(session: Session) -> tuple[int, int, int]:
    """What moves whenever a stop plan may change: the newest audit entry, session and stop.

    The enforcer reads it every second and plans again only when it moved, so an allocation
    added by the CLI moves a predicted stop within a second at the cost of one small query.
    """
    row = session.execute(
        select(
            select(func.max(AuditEntry.id)).scalar_subquery(),
            select(func.max(SpawnSession.id)).scalar_subquery(),
            select(func.max(SpawnSession.stopped_ms)).scalar_subquery(),
        )
    ).one()
    return (row[0] or 0, row[1] or 0, row[2] or 0)


class RunningServer(NamedTuple):
    """A running session as reconciliation compares it with the hub's servers."""

    session_id: int
    username: str
    server_name: str
    started_ms: int
    # The last instant the hub was seen running it (its start until a listing showed it).
    seen_ms: int


def running_servers(session: Session) -> list[RunningServer]:
    """Every running session, for reconciliation."""
    rows = session.execute(
        select(
            SpawnSession.id,
            SpawnSession.username,
            SpawnSession.server_name,
            SpawnSession.started_ms,
            func.coalesce(SpawnSession.seen_ms, SpawnSession.started_ms),
        ).where(SpawnSession.stopped_ms.is_(None))
    )
    return [RunningServer(*row) for row in rows]


def mark_seen(session: Session, listed_ms: int, unlisted: list[int]) -> None:
    """The hub's listing begun at ``listed_ms`` showed every running session admitted by then
    except ``unlisted``: they were all running at that instant."""
    session.execute(
        update(SpawnSession)
        .where(
            SpawnSession.stopped_ms.is_(None),
            SpawnSession.started_ms <= listed_ms,
            SpawnSession.id.not_in(unlisted),
        )
        .values(seen_ms=listed_ms)
    )
