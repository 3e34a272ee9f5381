"""What ``GET me`` reads and returns, with as little work per request as the answer allows.

Every JupyterLab status bar polls ``GET me``, so its read is two queries whose statements are
built once, returning plain rows (no ORM entities), in one read transaction:

1. the caller's memberships with their projects and the projects' allocations;
2. the sessions that matter to the page: the running sessions of those projects (with their
   holds), the caller's running sessions in any project, and the caller's GPU sessions in
   those projects stopped within the last week.

Accounts, summaries and the sessions list are then computed from those rows with the same
functions as every other reader (:func:`~subsidyhub.ledger.accounts.compute_account`,
:func:`~subsidyhub.ledger.summary.summarise_project`,
:func:`~subsidyhub.service.views.describe_session`), so ``me`` shows the numbers an admin
sees. The page is returned as JSON bytes, encoded once.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import namedtuple
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, event, or_, select

from subsidyhub.ledger.accounts import RunningSession, compute_account, running_session_from_row
from subsidyhub.ledger.admission import WEEK_MS, gpu_ms_in_week
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.models import Allocation, Hold, Member, Project, SpawnSession
from subsidyhub.ledger.policy import is_student
from subsidyhub.ledger.summary import summarise_project
from subsidyhub.service.views import describe_session
from subsidyhub.settings import Settings
from subsidyhub.timeutil import iso

# The caller's projects (by slug), each once per allocation (or once, without any).
MEMBERSHIPS = (
    select(
        Project.id,
        Project.slug,
        Project.name,
        Project.kind,
        Project.status,
        Project.subsidy_bp,
        Project.max_gpus,
        Project.member_max_gpus,
        Project.gpu_ms_per_week,
        Project.max_session_ms,
        Project.allowed_profiles,
        Project.allowed_gpu_types,
        Project.overdraft_micro,
        Member.role.label("member_role"),
        Member.max_gpus.label("member_own_max_gpus"),
        Member.gpu_ms_per_week.label("member_gpu_ms_per_week"),
        Member.max_session_ms.label("member_max_session_ms"),
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
_MembershipRow = namedtuple("_MembershipRow", MEMBERSHIPS.selected_columns.keys())  # type: ignore[misc]
_SessionRow = namedtuple("_SessionRow", SESSIONS.selected_columns.keys())  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class MemberTerms:
    """A membership's role and own caps (what ``effective_quota`` reads of a member)."""

    role: str
    max_gpus: int | None
    gpu_ms_per_week: int | None
    max_session_ms: int | None


@dataclass(frozen=True, slots=True)
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


def read_page(
    connection: Connection, settings: Settings, username: str, is_admin: bool, now_ms: int
) -> dict[str, Any]:
    """``GET me`` of ``username`` at ``now_ms``, from two queries on ``connection``."""
    memberships: dict[int, _Membership] = {}
    for row in map(_MembershipRow._make, connection.execute(MEMBERSHIPS, {"username": username})):
        entry = memberships.get(row.id)
        if entry is None:
            member = MemberTerms(
                row.member_role,
                row.member_own_max_gpus,
                row.member_gpu_ms_per_week,
                row.member_max_session_ms,
            )
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
    return {
        "user": username,
        "admin": is_admin,
        "at": iso(now_ms),
        "currency": settings.currency,
        "projects": summaries,
        "sessions": [describe_session(row, row.slug, now_ms) for row in mine],
    }


def encode(page: dict[str, Any]) -> bytes:
    """JSON bytes, as Starlette's ``JSONResponse`` would render them."""
    return json.dumps(
        page, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


def render_me(
    db: Database, settings: Settings, username: str, is_admin: bool, now_ms: int
) -> bytes:
    """The ``GET me`` body: one read transaction, two queries, encoded once."""
    # ``db.read()`` is this same transaction on the same engine, plus an ORM session that two
    # Core queries do not need (it would double the cost of opening and closing the read).
    with db.read_engine.begin() as connection:
        page = read_page(connection, settings, username, is_admin, now_ms)
    return encode(page)


class WriteWatch:
    """A counter that moves each time a transaction of this process that wrote has ended.

    It watches the database's write engine: a statement other than a ``SELECT`` marks its
    connection, and when a marked connection goes back to the pool (after its commit or
    rollback) the generation moves. A page read before the move is then out of date. Writes
    by other processes (the CLI) are not seen here; :class:`MePages` bounds those by age.
    """

    _MARK = "subsidyhub_wrote"

    def __init__(self, db: Database) -> None:
        self.generation = 0
        self._lock = threading.Lock()  # checkins happen in worker threads
        self._engine = db.engine
        event.listen(self._engine, "before_cursor_execute", self._on_statement)
        event.listen(self._engine, "checkin", self._on_checkin)

    def _on_statement(
        self, connection: Connection, _cursor: Any, statement: str, *_args: Any
    ) -> None:
        if statement.lstrip()[:6].upper() != "SELECT":
            connection.info[self._MARK] = True

    def _on_checkin(self, _dbapi_connection: Any, record: Any) -> None:
        if record is not None and record.info.pop(self._MARK, False):
            with self._lock:
                self.generation += 1

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._on_statement)
        event.remove(self._engine, "checkin", self._on_checkin)


@dataclass(frozen=True, slots=True)
class _Page:
    generation: int
    until: float  # time.monotonic() after which it is not served again
    at_ms: int  # the service clock's now that the page describes
    body: bytes


class MePages:
    """``GET me`` bodies of the last ``max_age_s`` per caller, for callers that poll fast.

    Only ``GET me`` uses it: nothing that admits, stops or meters reads a page from here. A
    page is served again only while no write of this process has ended since it was read
    (:class:`WriteWatch`), it is younger than ``max_age_s`` by the wall clock (so a change
    made by another process, such as the CLI, shows within that time) and by the service's
    clock (so a test that moves the clock sees the new instant). Its ``at`` says when it was
    read. ``max_age_s=0`` turns it off.

    In a deployment with many users, each polling every few seconds, few requests find a
    page here; it pays off for a caller who polls more than once a second (several
    JupyterLab windows, a script).
    """

    def __init__(self, db: Database, *, max_age_s: float = 1.0, max_entries: int = 4096) -> None:
        self.max_age_s = max_age_s
        self._max_age_ms = int(max_age_s * 1000)
        self._max_entries = max_entries
        self._pages: dict[tuple[str, bool], _Page] = {}
        self.watch = WriteWatch(db)

    def get(self, username: str, is_admin: bool, now_ms: int) -> bytes | None:
        page = self._pages.get((username, is_admin))
        if (
            page is None
            or page.generation != self.watch.generation
            or not 0 <= now_ms - page.at_ms < self._max_age_ms
            or time.monotonic() >= page.until
        ):
            return None
        return page.body

    def put(self, username: str, is_admin: bool, now_ms: int, generation: int, body: bytes) -> None:
        """Keep ``body``, read at ``now_ms`` after :attr:`generation` was ``generation``."""
        if self.max_age_s <= 0 or generation != self.watch.generation:
            return
        key = (username, is_admin)
        self._pages.pop(key, None)
        # Each page lives between 3/4 of the age and the whole of it, at random: pages read
        # together (after a write, or at a start) then expire apart instead of all being read
        # again in the same millisecond, which would hold up every request behind them.
        until = time.monotonic() + self.max_age_s * (0.75 + random.random() / 4)
        self._pages[key] = _Page(generation, until, now_ms, body)
        if len(self._pages) > self._max_entries:
            del self._pages[next(iter(self._pages))]  # the least recently read

    def close(self) -> None:
        """Stop watching the database; from now on nothing is kept (the app has shut down)."""
        self.max_age_s = 0
        self._max_age_ms = 0
        self._pages.clear()
        self.watch.close()
