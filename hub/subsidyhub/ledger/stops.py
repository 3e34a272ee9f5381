"""Why a server stopped, told to the person whose server it was.

Every stop the ledger records carries a reason code (``sessions.stop_reason``) and, for an
admin's stop, the admin's note (``sessions.stop_note``). This module owns the codes and turns
a stop into one sentence for its owner: what happened, when, and what to do now. The hub's
home and spawn pages and ``GET me`` show these sentences, so a stopped person reads "project
Demo's subsidy ran out; ask your project manager (bob) to top it up" instead of "Server
unavailable". A course's student is told about their course's allowance, never about money.

The sentences are pure functions of the stop's facts (no I/O), tested as a table of cases.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, select

from subsidyhub.ledger.models import Member, Project, SpawnSession
from subsidyhub.ledger.policy import is_student
from subsidyhub.timeutil import WEEK_MS, clock_time, iso

# The service stopped the server because the project's subsidy (a course's allowance) ran out.
SUBSIDY_EXHAUSTED = "subsidy_exhausted"
# The session reached the project's (or member's) maximum session length.
MAX_SESSION_HOURS = "max_session_hours"
# The member used up their GPU-hours for the last 7 days during the session.
WEEKLY_GPU_HOURS = "weekly_gpu_hours"
# Its GPUs were reserved for another project from then (issue 16): the end was set at admission.
RESERVATION = "reservation"
# The project was closed while the server ran.
PROJECT_CLOSED = "project_closed"
# An admin stopped it (the admin page, or the API); their note is kept beside the reason.
ADMIN = "admin"
# The idle culler stopped it after a time without activity.
IDLE = "idle"
# Its GPUs stayed below the utilisation threshold for the idle time (issue 17).
IDLE_GPU = "idle_gpu"
# A newer start of the same server closed a session whose stop the hub never reported.
SUPERSEDED = "superseded"
# The owner stopped it themselves (from JupyterLab's menu or the service's API).
USER = "user"
# JupyterHub reported the stop: from its home page, its admin page, the idle culler or a
# restart; the hub cannot tell which.
HUB = "stopped"
# The hub no longer listed the server: it stopped without the hub telling the service.
RECONCILED = "reconciled"

# Stops the owner asked for: nothing to explain on the hub's pages.
OWN_STOPS = frozenset({USER, HUB})

# How far back ``GET me`` and the hub's pages look for stops.
RECENT_MS = WEEK_MS
# The most stops ``GET me`` lists.
RECENT_LIMIT = 5


@dataclass(frozen=True, slots=True)
class StopFacts:
    """What a sentence about one stop needs to know."""

    reason: str
    stopped_ms: int
    project_name: str
    server_name: str
    student: bool  # a course's student: told about the allowance, never about money
    managers: Sequence[str]  # who can top the project up or lift its limits
    note: str | None = None


def _ask(facts: StopFacts) -> str:
    """Who to ask: ``your lecturer (ann)``, ``your project manager (bob, eve)``."""
    who = "your lecturer" if facts.student else "your project manager"
    return f"{who} ({', '.join(facts.managers)})" if facts.managers else who


def _cause(facts: StopFacts) -> str:
    container = "course" if facts.student else "project"
    name = facts.project_name
    match facts.reason:
        case "subsidy_exhausted":
            if facts.student:
                return f"course {name} has used up its allowance. Ask {_ask(facts)} to top it up."
            return f"project {name}'s subsidy ran out. Ask {_ask(facts)} to top it up."
        case "max_session_hours":
            return (
                f"it reached the longest session {container} {name} allows. Start it again to "
                "carry on; save your work regularly."
            )
        case "weekly_gpu_hours":
            return (
                f"you used up your GPU-hours for the last 7 days in {container} {name}. Hours "
                f"free up as the week rolls on; a CPU profile still starts, or ask {_ask(facts)}."
            )
        case "reservation":
            return (
                "its GPUs were reserved for another project or class from then on (the end was "
                "shown when it started). Start it again when the reservation ends, or pick a "
                "CPU profile."
            )
        case "project_closed":
            return f"{container} {name} was closed. Ask {_ask(facts)} which project to use now."
        case "admin":
            said = f' The admin wrote: "{facts.note.rstrip(".")}".' if facts.note else ""
            return f"an administrator stopped it.{said} Ask the centre's admins if unsure why."
        case "idle":
            return "it was idle for too long. Start it again when you need it."
        case "idle_gpu":
            return (
                "its GPUs did no work for too long, so they were freed for others waiting. "
                "Start it again when you have GPU work (a CPU profile suits editing); if your "
                f"work needs idle stretches, press Keep it when warned, or ask {_ask(facts)}."
            )
        case "superseded":
            return "a new start of the same server replaced it."
        case "user":
            return "you stopped it."
        case "stopped":
            return "it was stopped through JupyterHub (by you, an admin or the idle culler)."
        case "reconciled":
            return (
                "it stopped without JupyterHub telling why (it may have crashed or run out of "
                "memory). Start it again; tell the centre's admins if it keeps happening."
            )
        case _:
            return f"{facts.reason.replace('_', ' ')}."


def stop_sentence(facts: StopFacts, now_ms: int) -> str:
    """One sentence for the server's owner: ``Your server was stopped at 14:32 UTC: …``."""
    server = f"Your server {facts.server_name}" if facts.server_name else "Your server"
    return f"{server} was stopped at {clock_time(facts.stopped_ms, now_ms)}: {_cause(facts)}"


# The caller's stops of the last week in their projects, newest first, with the project's
# name and the caller's role there (ix_sessions_member_recent: project, username).
RECENT_STOPS = (
    select(
        SpawnSession.id,
        SpawnSession.project_id,
        SpawnSession.server_name,
        SpawnSession.stopped_ms,
        SpawnSession.stop_reason,
        SpawnSession.stop_note,
        Project.slug,
        Project.name,
        Project.kind,
        Member.role,
    )
    .join(Project, Project.id == SpawnSession.project_id)
    .outerjoin(
        Member, and_(Member.project_id == Project.id, Member.username == SpawnSession.username)
    )
    .where(
        SpawnSession.project_id.in_(bindparam("project_ids", expanding=True)),
        SpawnSession.username == bindparam("username"),
        SpawnSession.stopped_ms > bindparam("since"),
    )
    .order_by(SpawnSession.stopped_ms.desc(), SpawnSession.id.desc())
    .limit(RECENT_LIMIT)
)

MANAGERS = (
    select(Member.project_id, Member.username)
    .where(
        Member.project_id.in_(bindparam("project_ids", expanding=True)),
        Member.role == "manager",
    )
    .order_by(Member.username)
)

# The caller's last start of any server in their projects: a stop before it is history.
LAST_START = select(func.max(SpawnSession.started_ms)).where(
    SpawnSession.project_id.in_(bindparam("project_ids", expanding=True)),
    SpawnSession.username == bindparam("username"),
)


def recent_stops(
    connection: Connection,
    username: str,
    project_ids: Sequence[int],
    now_ms: int,
    grace_ms: int = 0,
) -> list[dict[str, Any]]:
    """The user's stops of the last week in ``project_ids`` (their projects), newest first,
    each with its sentence (``RecentStop``).

    ``current`` marks a stop the person has not acted on: no server of theirs was started
    after it. The hub's pages show the newest current stop that the owner did not ask for.
    ``grace_ms`` is ``metering.admin_stop_grace_seconds``: an admin's stop has the server
    stopped by the hub that long after its charges ended (``hub_stop_at``).
    One small query; two more (the managers to ask, the last start) only when there are
    stops to explain.
    """
    if not project_ids:
        return []
    parameters = {
        "project_ids": list(project_ids),
        "username": username,
        "since": now_ms - RECENT_MS,
    }
    rows = list(connection.execute(RECENT_STOPS, parameters))
    if not rows:
        return []
    managers: dict[int, list[str]] = {}
    for project_id, manager in connection.execute(
        MANAGERS, {"project_ids": sorted({row.project_id for row in rows})}
    ):
        managers.setdefault(project_id, []).append(manager)
    last_start_ms = connection.execute(LAST_START, parameters).scalar() or 0
    return [
        describe_stop(row, managers.get(row.project_id, ()), now_ms, last_start_ms, grace_ms)
        for row in rows
    ]


def describe_stop(
    row: Any, managers: Iterable[str], now_ms: int, last_start_ms: int, grace_ms: int = 0
) -> dict[str, Any]:
    """A row of :data:`RECENT_STOPS` as ``GET me`` shows it."""
    reason = row.stop_reason or RECONCILED
    facts = StopFacts(
        reason=reason,
        stopped_ms=row.stopped_ms,
        project_name=row.name,
        server_name=row.server_name,
        student=is_student(row.kind, row.role),
        managers=list(managers),
        note=row.stop_note,
    )
    return {
        "session_id": row.id,
        "project": row.slug,
        "project_name": row.name,
        "server_name": row.server_name,
        "stopped": iso(row.stopped_ms),
        "reason": reason,
        "note": row.stop_note,
        "message": stop_sentence(facts, now_ms),
        "current": last_start_ms <= row.stopped_ms,
        "own": reason in OWN_STOPS,
        "hub_stop_at": iso(row.stopped_ms + grace_ms) if reason == ADMIN else None,
    }


def deadline_reason(
    max_duration_ms: int | None, in_force: dict[str, Any], *, reserved: bool = False
) -> str | None:
    """The limit that set an admission's deadline: a reservation's window, the session cap,
    or the weekly GPU-hours left when they are shorter (see
    :func:`subsidyhub.ledger.policy.decide`)."""
    if max_duration_ms is None:
        return None
    if reserved:
        return RESERVATION
    if in_force.get("max_session_hours") == max_duration_ms:
        return MAX_SESSION_HOURS
    return WEEKLY_GPU_HOURS
