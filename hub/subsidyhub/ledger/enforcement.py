"""Which running servers must stop, and when the next one will.

The enforcer (in the service) asks :func:`plan` after every change and at every deadline.
A project's servers are due when its predicted exhaustion instant has come (the subsidy is
spent) or the project is closed; a single server is due at its own deadline (max session
hours, or the weekly GPU-hours left when it was admitted). ``next_due_ms`` is the earliest
future deadline, so the enforcer sleeps until exactly then rather than a whole metering
interval: a stop is late by the hub's reaction time, not by a tick.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from subsidyhub.ledger.accounts import load_accounts
from subsidyhub.ledger.models import Project, SpawnSession

REASON_EXHAUSTED = "subsidy_exhausted"
REASON_MAX_SESSION = "max_session_hours"
REASON_CLOSED = "project_closed"


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


def plan(session: Session, now_ms: int) -> Plan:
    """Stop orders due at ``now_ms`` and the next future deadline (None if nothing is running)."""
    running_projects = session.scalars(
        select(Project).where(
            Project.id.in_(select(SpawnSession.project_id).where(SpawnSession.stopped_ms.is_(None)))
        )
    ).all()
    if not running_projects:
        return Plan([], None)
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
    return Plan(due, min(upcoming) if upcoming else None)
