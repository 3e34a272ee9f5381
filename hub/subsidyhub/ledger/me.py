"""``GET me`` for one caller, read with as little work per request as the answer allows.

Every JupyterLab status bar polls ``GET me``, so its read is a few queries whose statements are
built once, returning plain rows (no ORM entities), in one read transaction:

1. the caller's memberships with their projects and the projects' allocations;
2. the sessions that matter to the page: the running sessions of those projects (with their
   holds), the caller's running sessions in any project, and the caller's GPU sessions in
   those projects stopped within the last week.

A third query lists the caller's stops of the last week with why each happened
(:mod:`subsidyhub.ledger.stops`); only when there are stops, two more name the projects'
managers to ask and find whether a server was started since.

Accounts, summaries and the sessions list are then computed from those rows with the same
functions as every other reader (:func:`~subsidyhub.ledger.accounts.compute_account`,
:func:`~subsidyhub.shapes.summarise_project`, :func:`~subsidyhub.shapes.describe_session`),
so ``me`` shows the numbers an admin sees. The service encodes and caches the page
(:mod:`subsidyhub.service.me_page`).
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, or_, select

from subsidyhub.ledger.accounts import RunningSession, compute_account, running_session_from_row
from subsidyhub.ledger.admission import gpu_ms_in_week
from subsidyhub.ledger.capacity import OFFERED, gpu_label
from subsidyhub.ledger.idle import idle_server
from subsidyhub.ledger.idle import warning as idle_warning
from subsidyhub.ledger.models import Allocation, Hold, Member, Project, QueueEntry, SpawnSession
from subsidyhub.ledger.policy import is_student
from subsidyhub.ledger.stops import recent_stops
from subsidyhub.limits import LIMITS, describe
from subsidyhub.money import currency_display
from subsidyhub.settings import Settings
from subsidyhub.shapes import describe_session, summarise_project
from subsidyhub.timeutil import WEEK_MS, clock_time, iso

DECLARED_LIMITS = [describe(limit) for limit in LIMITS]

# The caller's projects (by slug), each once per allocation (or once, without any).
MEMBERSHIPS = (
    select(
        Project.id,
        Project.slug,
        Project.name,
        Project.kind,
        Project.status,
        Project.subsidy_bp,
        Project.limits,
        Project.overdraft_micro,
        Member.role.label("member_role"),
        Member.limits.label("member_limits"),
        Allocation.id.label("allocation_id"),
        Allocation.amount_micro,
        Allocation.drawn_micro,
        Allocation.valid_from_ms,
        Allocation.valid_until_ms,
    )
    .join(Member, Member.project_id == Project.id)
    .outerjoin(Allocation, Allocation.project_id == Project.id)
    .where(Member.username == bindparam("username"))
    .order_by(Project.slug, Allocation.id)
)

_in_projects = SpawnSession.project_id.in_(bindparam("project_ids", expanding=True))
_running = SpawnSession.stopped_ms.is_(None)
_mine = SpawnSession.username == bindparam("username")

# Each branch matches an index: ix_sessions_running, uq_sessions_running_server and
# ix_sessions_member_recent, so the history's length does not matter.
SESSIONS = (
    select(
        SpawnSession.id,
        SpawnSession.project_id,
        SpawnSession.username,
        SpawnSession.server_name,
        SpawnSession.profile_slug,
        SpawnSession.gpu_type,
        SpawnSession.gpu_count,
        SpawnSession.list_rate_micro,
        SpawnSession.subsidy_bp,
        SpawnSession.started_ms,
        SpawnSession.stopped_ms,
        SpawnSession.charged_until_ms,
        SpawnSession.charged_subsidy_micro,
        SpawnSession.max_stop_ms,
        SpawnSession.max_stop_reason,
        SpawnSession.idle_gpu_ms,
        SpawnSession.idle_since_ms,
        SpawnSession.idle_kept_ms,
        SpawnSession.gpu_sampled_ms,
        Hold.amount_micro,
        Hold.released_ms,
        Project.slug,
    )
    .join(Project, Project.id == SpawnSession.project_id)
    .outerjoin(Hold, Hold.session_id == SpawnSession.id)
    .where(
        or_(
            and_(_in_projects, _running),
            and_(_mine, _running),
            and_(
                _in_projects,
                _mine,
                SpawnSession.gpu_count > 0,
                SpawnSession.stopped_ms > bindparam("since"),
            ),
        )
    )
    .order_by(SpawnSession.id)
)


# Rows as named tuples: reading a field of one costs a tenth of reading it from a Row, and a
# page reads each session's fields a dozen times.
def _row_type(name: str, columns: list[str]) -> Any:
    """A named tuple of a query's columns (typed Any: its fields are known only at import)."""
    return namedtuple(name, columns)


_MembershipRow = _row_type("_MembershipRow", list(MEMBERSHIPS.selected_columns.keys()))
_SessionRow = _row_type("_SessionRow", list(SESSIONS.selected_columns.keys()))


@dataclass(frozen=True, slots=True)
class MemberTerms:
    """A membership's role and own limits (what ``limits_in_force`` reads of a member)."""

    role: str
    limits: dict[str, Any]


@dataclass(slots=True)
class AllocationTerms:
    """An allocation as drawing needs it (``accounts.Drawable``)."""

    id: int
    amount_micro: int
    drawn_micro: int
    valid_from_ms: int
    valid_until_ms: int | None


@dataclass(slots=True)
class _Membership:
    project: Any  # a _MembershipRow: the project's columns
    member: MemberTerms
    allocations: list[AllocationTerms]
    running: list[RunningSession]
    recent: list[Any]  # the caller's sessions in this project (_SessionRow)


# The caller's GPU offers not taken up yet (uq_queue_entries_waiting_server: username first).
OFFERS = select(
    QueueEntry.id,
    QueueEntry.project_id,
    QueueEntry.server_name,
    QueueEntry.gpu_type,
    QueueEntry.gpu_count,
    QueueEntry.offer_expires_ms,
).where(
    QueueEntry.username == bindparam("username"),
    QueueEntry.ended_ms.is_(None),
    QueueEntry.state == OFFERED,
)


def offer_warning(project_slug: str, row: Any, now_ms: int) -> dict[str, Any]:
    """A GPU held for one of the caller's servers: a condition that holds until it is taken
    up, left or expires, so it is a warning of the project (announced once, as all are)."""
    server = f"server {row.server_name}" if row.server_name else "server"
    what = f"{row.gpu_count} × {gpu_label(row.gpu_type)}"
    return {
        "id": f"{project_slug}:gpu_offer:{row.id}",
        "code": "gpu_offer",
        "severity": "warning",
        "level": "warning",
        "message": f"Your turn in the queue: {what} is held for your {server} until "
        f"{clock_time(row.offer_expires_ms, now_ms)}. Start it from the hub's spawn page "
        "before then, or it passes to the next person.",
        "at": iso(row.offer_expires_ms),
    }


def read_page(
    connection: Connection, settings: Settings, username: str, is_admin: bool, now_ms: int
) -> dict[str, Any]:
    """``GET me`` of ``username`` at ``now_ms``, from a few queries on ``connection``."""
    memberships: dict[int, _Membership] = {}
    for row in map(_MembershipRow._make, connection.execute(MEMBERSHIPS, {"username": username})):
        entry = memberships.get(row.id)
        if entry is None:
            member = MemberTerms(row.member_role, row.member_limits)
            entry = memberships[row.id] = _Membership(row, member, [], [], [])
        if row.allocation_id is not None:
            entry.allocations.append(
                AllocationTerms(
                    row.allocation_id,
                    row.amount_micro,
                    row.drawn_micro,
                    row.valid_from_ms,
                    row.valid_until_ms,
                )
            )
    mine: list[Any] = []
    parameters = {
        "project_ids": list(memberships),
        "username": username,
        "since": now_ms - WEEK_MS,
    }
    for row in map(_SessionRow._make, connection.execute(SESSIONS, parameters)):
        entry = memberships.get(row.project_id)
        if row.username == username:
            if row.stopped_ms is None:
                mine.append(row)
            if entry is not None:
                entry.recent.append(row)
        if entry is not None and row.stopped_ms is None:
            entry.running.append(running_session_from_row(row))
    offers: dict[int, list[Any]] = {}
    for row in connection.execute(OFFERS, {"username": username}):
        offers.setdefault(row.project_id, []).append(row)
    summaries = []
    for entry in memberships.values():
        account = compute_account(entry.project, entry.allocations, entry.running, now_ms)
        summaries.append(
            summarise_project(
                settings,
                entry.project,
                account,
                member=entry.member,
                username=username,
                gpu_ms_week=gpu_ms_in_week(entry.recent, now_ms),
                allowance_only=not is_admin and is_student(entry.project.kind, entry.member.role),
            )
        )
        summaries[-1]["warnings"] += [
            offer_warning(entry.project.slug, row, now_ms)
            for row in offers.get(entry.project.id, [])
        ]
    sessions = []
    for row in mine:
        entry = memberships.get(row.project_id)
        server = idle_server(row, entry.project.limits if entry else None, settings, now_ms)
        stops_at = server.stops_at_ms if server is not None else None
        sessions.append(describe_session(row, row.slug, now_ms, stops_at))
        warning = idle_warning(server, settings, now_ms) if server is not None else None
        if warning is not None and entry is not None:
            next(s for s in summaries if s["slug"] == row.slug)["warnings"].append(warning)
    return {
        "user": username,
        "admin": is_admin,
        "at": iso(now_ms),
        "currency": settings.currency,
        "currency_display": currency_display(settings.currency).as_dict(),
        # How to show each project's quota and usage: labels, units, kinds (subsidyhub.limits).
        "limits": DECLARED_LIMITS,
        "projects": summaries,
        "sessions": sessions,
        "stops": recent_stops(
            connection,
            username,
            list(memberships),
            now_ms,
            int(settings.metering.admin_stop_grace_seconds * 1000),
        ),
    }
