"""Project accounts: balance, available funds, burn rate, predicted exhaustion, and drawing.

Subsidy is drawn from a project's allocations first-expiring-first, among those valid at the
moment of the charge, so an allocation that is about to lapse is used before a later one and
an expired one stops counting at the end of its window. What no allocation can cover goes to
the project's overdraft, which the next valid allocation pays off. ``balance`` is live: it
subtracts what running sessions have accrued since their last charge, so a reading between
two metering ticks is not optimistic. ``available`` further subtracts the unconsumed part of
open holds; admissions decide on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.orm import Session

from subsidyhub.ledger.models import Allocation, Charge, Hold, Project, SpawnSession
from subsidyhub.ledger.pricing import accrued, subsidy_rate_per_hour
from subsidyhub.timeutil import MS_PER_HOUR


class Drawable(Protocol):
    """What drawing needs of an allocation: an ORM row or a plain row of the metering tick."""

    id: int
    amount_micro: int
    drawn_micro: int
    valid_from_ms: int
    valid_until_ms: int | None


class Overdrawable(Protocol):
    overdraft_micro: int


class Accountable(Overdrawable, Protocol):
    """What an account needs of a project: an ORM row or a plain row of a read."""

    id: int


def is_active(allocation: Drawable, at_ms: int) -> bool:
    until = allocation.valid_until_ms
    return allocation.valid_from_ms <= at_ms and (until is None or at_ms < until)


def _draw_order(allocation: Drawable) -> tuple[int, int]:
    until = allocation.valid_until_ms
    return (until if until is not None else 2**62, allocation.id)


def draw(project: Overdrawable, allocations: Sequence[Drawable], amount: int, at_ms: int) -> None:
    """Draw ``amount`` of subsidy (negative: give back) from allocations active at ``at_ms``.

    Mutates the cached ``drawn_micro`` and ``overdraft_micro``; the caller holds the write
    transaction that also writes the charge lines, so caches and entries move together.
    """
    if amount >= 0:
        for allocation in sorted((a for a in allocations if is_active(a, at_ms)), key=_draw_order):
            room = allocation.amount_micro - allocation.drawn_micro
            if room <= 0:
                continue
            take = min(room, amount)
            allocation.drawn_micro += take
            amount -= take
            if amount == 0:
                return
        project.overdraft_micro += amount
        return
    give = -amount
    settle = min(give, project.overdraft_micro)
    project.overdraft_micro -= settle
    give -= settle
    for allocation in sorted(allocations, key=_draw_order, reverse=True):
        if give == 0:
            return
        back = min(give, allocation.drawn_micro)
        allocation.drawn_micro -= back
        give -= back


def settle_overdraft(project: Overdrawable, allocations: Sequence[Drawable], at_ms: int) -> None:
    """A new or changed allocation first pays off what was charged while nothing covered it."""
    if project.overdraft_micro > 0:
        owed = project.overdraft_micro
        project.overdraft_micro = 0
        draw(project, allocations, owed, at_ms)


@dataclass(frozen=True, slots=True)
class RunningSession:
    id: int
    username: str
    server_name: str
    profile_slug: str
    gpu_count: int
    list_rate: int
    subsidy_bp: int
    started_ms: int
    charged_until_ms: int
    charged_subsidy: int
    max_stop_ms: int | None
    hold: int

    def owed_since_charge(self, now_ms: int) -> int:
        """Subsidy accrued but not yet charged (the next tick will charge it)."""
        if now_ms <= self.charged_until_ms:
            return 0
        before = accrued(self.list_rate, self.subsidy_bp, self.charged_until_ms - self.started_ms)
        after = accrued(self.list_rate, self.subsidy_bp, now_ms - self.started_ms)
        return after.subsidy - before.subsidy

    def hold_outstanding(self, now_ms: int) -> int:
        return max(0, self.hold - self.charged_subsidy - self.owed_since_charge(now_ms))

    @property
    def subsidy_per_hour(self) -> int:
        return subsidy_rate_per_hour(self.list_rate, self.subsidy_bp)


@dataclass(frozen=True, slots=True)
class Account:
    """A project's money as of ``at_ms``."""

    project_id: int
    at_ms: int
    allocated: int  # total of allocations valid now
    balance: int
    available: int
    holds: int
    burn_rate_per_hour: int  # subsidy per hour of running sessions
    list_rate_per_hour: int
    exhaustion_ms: int | None
    sessions: tuple[RunningSession, ...] = field(default=())

    @property
    def gpus_in_use(self) -> int:
        return sum(s.gpu_count for s in self.sessions)

    @property
    def time_left_ms(self) -> int | None:
        return None if self.exhaustion_ms is None else max(0, self.exhaustion_ms - self.at_ms)


def predict_exhaustion(
    now_ms: int, owed_ms0: int, remaining: Iterable[tuple[int, int | None]], rate_per_hour: int
) -> int | None:
    """When the subsidy runs out at a constant burn rate; ``None`` when nothing burns.

    ``remaining`` are (amount left, valid until) of allocations valid now. Spending drains
    them first-expiring-first; an allocation whose window ends before it is drained loses the
    rest. ``owed_ms0`` is subsidy already accrued but not yet drawn. A negative amount (a
    correction larger than what its row had left) is debt, paid from the others first.
    Pure, for tests.
    """
    if rate_per_hour <= 0:
        return None
    rows = list(remaining)
    owed = owed_ms0 + sum(-amount for amount, _ in rows if amount < 0)
    clock = now_ms
    positive = [(amount, until) for amount, until in rows if amount > 0]
    for amount, until in sorted(positive, key=lambda r: r[1] if r[1] is not None else 2**62):
        usable = amount
        if owed:
            paid = min(owed, usable)
            owed -= paid
            usable -= paid
        if usable <= 0:
            continue
        drain_ms = usable * MS_PER_HOUR // rate_per_hour
        if until is not None and clock + drain_ms >= until:
            clock = max(clock, until)
            continue
        clock += drain_ms
    return clock


# Built once: running sessions of some projects, each with its open hold's amount.
RUNNING_SESSIONS = (
    select(
        SpawnSession.project_id,
        SpawnSession.id,
        SpawnSession.username,
        SpawnSession.server_name,
        SpawnSession.profile_slug,
        SpawnSession.gpu_count,
        SpawnSession.list_rate_micro,
        SpawnSession.subsidy_bp,
        SpawnSession.started_ms,
        SpawnSession.charged_until_ms,
        SpawnSession.charged_subsidy_micro,
        SpawnSession.max_stop_ms,
        Hold.amount_micro,
        Hold.released_ms,
    )
    .outerjoin(Hold, Hold.session_id == SpawnSession.id)
    .where(
        SpawnSession.project_id.in_(bindparam("project_ids", expanding=True)),
        SpawnSession.stopped_ms.is_(None),
    )
)


def running_session_from_row(row: Any) -> RunningSession:
    """A :class:`RunningSession` from a row with the session's columns and its hold's
    ``amount_micro`` and ``released_ms`` (``None`` when it has no hold)."""
    hold = row.amount_micro if row.amount_micro is not None and row.released_ms is None else 0
    return RunningSession(
        row.id,
        row.username,
        row.server_name,
        row.profile_slug,
        row.gpu_count,
        row.list_rate_micro,
        row.subsidy_bp,
        row.started_ms,
        row.charged_until_ms,
        row.charged_subsidy_micro,
        row.max_stop_ms,
        hold,
    )


def running_sessions(
    session: Session | Connection, project_ids: Sequence[int]
) -> dict[int, list[RunningSession]]:
    out: dict[int, list[RunningSession]] = {pid: [] for pid in project_ids}
    for row in session.execute(RUNNING_SESSIONS, {"project_ids": list(project_ids)}):
        out[row.project_id].append(running_session_from_row(row))
    return out


def compute_account(
    project: Accountable,
    allocations: Sequence[Drawable],
    sessions: Sequence[RunningSession],
    now_ms: int,
) -> Account:
    """Pure: the account of a project from its rows."""
    active = [a for a in allocations if is_active(a, now_ms)]
    allocated = sum(a.amount_micro for a in active)
    remaining = sum(a.amount_micro - a.drawn_micro for a in active) - project.overdraft_micro
    owed = sum(s.owed_since_charge(now_ms) for s in sessions)
    holds = sum(s.hold_outstanding(now_ms) for s in sessions)
    burn = sum(s.subsidy_per_hour for s in sessions)
    list_burn = sum(s.list_rate for s in sessions)
    exhaustion = predict_exhaustion(
        now_ms,
        owed + project.overdraft_micro,
        [(a.amount_micro - a.drawn_micro, a.valid_until_ms) for a in active],
        burn,
    )
    balance = remaining - owed
    return Account(
        project.id,
        now_ms,
        allocated,
        balance,
        balance - holds,
        holds,
        burn,
        list_burn,
        exhaustion,
        tuple(sessions),
    )


def load_accounts(session: Session, projects: Sequence[Project], now_ms: int) -> dict[int, Account]:
    """Accounts of several projects with two queries, whatever the history's length."""
    ids = [p.id for p in projects]
    if not ids:
        return {}
    allocations: dict[int, list[Allocation]] = {pid: [] for pid in ids}
    for allocation in session.scalars(select(Allocation).where(Allocation.project_id.in_(ids))):
        allocations[allocation.project_id].append(allocation)
    running = running_sessions(session, ids)
    return {p.id: compute_account(p, allocations[p.id], running[p.id], now_ms) for p in projects}


def load_account(session: Session, project: Project, now_ms: int) -> Account:
    return load_accounts(session, [project], now_ms)[project.id]


@dataclass(frozen=True, slots=True)
class Discrepancy:
    project_id: int
    drawn_and_overdraft: int
    subsidy_charged: int


def verify(session: Session) -> list[Discrepancy]:
    """Check the derived caches against the append-only entries; empty when consistent."""
    from sqlalchemy import func

    charged = dict(
        session.execute(
            select(Charge.project_id, func.sum(Charge.subsidy_micro)).group_by(Charge.project_id)
        ).all()
    )
    drawn = dict(
        session.execute(
            select(Allocation.project_id, func.sum(Allocation.drawn_micro)).group_by(
                Allocation.project_id
            )
        ).all()
    )
    problems = []
    for project in session.scalars(select(Project)):
        cached = int(drawn.get(project.id) or 0) + project.overdraft_micro
        entries = int(charged.get(project.id) or 0)
        if cached != entries:
            problems.append(Discrepancy(project.id, cached, entries))
    return problems


def charged_by_project(session: Session) -> dict[int, tuple[int, int]]:
    """(list, subsidy) charged so far per project id, from the sessions' running totals."""
    return {
        row[0]: (int(row[1] or 0), int(row[2] or 0))
        for row in session.execute(
            select(
                SpawnSession.project_id,
                func.sum(SpawnSession.charged_list_micro),
                func.sum(SpawnSession.charged_subsidy_micro),
            ).group_by(SpawnSession.project_id)
        )
    }
