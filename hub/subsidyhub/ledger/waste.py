"""Idle GPUs' time and cost: what the subsidy paid for GPUs that did no work (issue 17).

A funder asks what its subsidy paid for GPUs that sat allocated and idle, and a centre wants
to show that it measures this and acts on it. The service samples every running GPU server
(:mod:`subsidyhub.ledger.idle`) and keeps each session's idle time per UTC day
(``idle_gpu_days``); this module turns those days into GPU-hours and money over a month (the
statements) or a period of whole days (the utilisation report), grouped per project, user,
profile and GPU type, from which callers sum per user, project or type (:func:`summed`).

Definitions, also in the statement and report texts:

* **Idle GPU-hours**: the wall time a server's GPUs were all below the utilisation threshold,
  × its GPUs. Only the days inside the period count, so a session that straddles a month
  bound is split at the UTC midnight, as its charges are.
* **Cost of idle GPUs**: the GPU part of the session's rate over that time, at the rates fixed
  at its admission: list = the price version's ``gpu_micro[gpu_type]`` × ``gpu_count`` per
  hour, split into subsidy and co-pay by the session's ``subsidy_bp``. The profile's CPU and
  memory are left out, since they may have been working (editing, data preparation) while
  the GPUs idled. The cost is **part of the charges**, already in a statement's list,
  subsidy and co-pay, never in addition to them.
* **Rounding** is the charges': a session's cost over a period is the difference of two
  accruals (:func:`subsidyhub.ledger.pricing.interval_charge`), its idle time before the
  period and up to its end, so the months of a session sum to its whole idle time's cost
  rounded once, and list = subsidy + co-pay on every row.

Read-only, and one query per call whatever the number of sessions.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from subsidyhub.ledger.models import IdleGpuDay, PriceVersion, Project, SpawnSession
from subsidyhub.ledger.pricing import Split, interval_charge
from subsidyhub.timeutil import DAY_MS, month_bounds


@dataclass(frozen=True, slots=True)
class Idle:
    """Idle GPU time and its cost: GPU-milliseconds (wall time × GPUs) and micro-units."""

    sessions: int = 0
    gpu_ms: int = 0
    list_micro: int = 0
    subsidy_micro: int = 0

    @property
    def copay_micro(self) -> int:
        return self.list_micro - self.subsidy_micro

    def __add__(self, other: Idle) -> Idle:
        return Idle(
            self.sessions + other.sessions,
            self.gpu_ms + other.gpu_ms,
            self.list_micro + other.list_micro,
            self.subsidy_micro + other.subsidy_micro,
        )


NONE = Idle()


@dataclass(frozen=True, slots=True)
class IdleLine:
    """One project's user's idle GPUs of one profile (and so one GPU type) in a period."""

    project: str
    username: str
    profile: str
    gpu_type: str
    idle: Idle

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.project, self.username, self.profile, self.gpu_type)


def gpu_rate(gpu_micro: Mapping[str, Any], gpu_type: str | None, gpu_count: int) -> int:
    """The GPU part of a session's list rate per hour (micro-units): its GPUs at the price of
    its type in its price version. A type without a price there (admission refuses such a
    session) was charged nothing for its GPUs, so its idle GPUs cost nothing either."""
    if not gpu_type or gpu_count <= 0:
        return 0
    return int(gpu_micro.get(gpu_type, 0)) * gpu_count


def idle_cost(gpu_rate_micro: int, subsidy_bp: int, before_ms: int, within_ms: int) -> Split:
    """What ``within_ms`` of idle time costs, after ``before_ms`` of it in earlier periods:
    the difference of two accruals, rounded as charges are (pure)."""
    return interval_charge(gpu_rate_micro, subsidy_bp, before_ms, before_ms + within_ms)


def _check_days(start_ms: int, end_ms: int) -> None:
    if start_ms % DAY_MS or end_ms % DAY_MS or end_ms < start_ms:
        raise ValueError(
            f"an idle GPU period is whole UTC days (idle time is kept per day); got "
            f"[{start_ms}, {end_ms})"
        )


def idle_between(
    session: Session, start_ms: int, end_ms: int, project_ids: Collection[int] | None = None
) -> list[IdleLine]:
    """Idle GPUs in [start_ms, end_ms) (UTC midnights), per project, user, profile and GPU
    type, ordered by them; only the projects ``project_ids`` when given. One query."""
    _check_days(start_ms, end_ms)
    in_period = (IdleGpuDay.day_ms >= start_ms) & (IdleGpuDay.day_ms < end_ms)
    touched = select(IdleGpuDay.session_id).where(in_period)
    if project_ids is not None:
        touched = touched.join(SpawnSession, SpawnSession.id == IdleGpuDay.session_id).where(
            SpawnSession.project_id.in_(list(project_ids))
        )
    # Per session: its idle time before the period (for the telescoping rounding) and in it.
    per_session = (
        select(
            IdleGpuDay.session_id.label("session_id"),
            func.sum(case((IdleGpuDay.day_ms < start_ms, IdleGpuDay.idle_ms), else_=0)).label(
                "before_ms"
            ),
            func.sum(case((in_period, IdleGpuDay.idle_ms), else_=0)).label("within_ms"),
        )
        .where(IdleGpuDay.day_ms < end_ms, IdleGpuDay.session_id.in_(touched))
        .group_by(IdleGpuDay.session_id)
        .subquery()
    )
    query = (
        select(
            Project.slug,
            SpawnSession.username,
            SpawnSession.profile_slug,
            SpawnSession.gpu_type,
            SpawnSession.gpu_count,
            SpawnSession.subsidy_bp,
            PriceVersion.gpu_micro,
            per_session.c.before_ms,
            per_session.c.within_ms,
        )
        .join(SpawnSession, SpawnSession.id == per_session.c.session_id)
        .join(Project, Project.id == SpawnSession.project_id)
        .join(PriceVersion, PriceVersion.id == SpawnSession.price_version_id)
    )
    grouped: dict[tuple[str, str, str, str], Idle] = {}
    for row in session.execute(query):
        within = int(row.within_ms or 0)
        if within <= 0:
            continue
        cost = idle_cost(
            gpu_rate(row.gpu_micro or {}, row.gpu_type, row.gpu_count),
            row.subsidy_bp,
            int(row.before_ms or 0),
            within,
        )
        key = (row.slug, row.username, row.profile_slug, row.gpu_type or "")
        grouped[key] = grouped.get(key, NONE) + Idle(
            1, within * row.gpu_count, cost.list, cost.subsidy
        )
    return [IdleLine(*key, idle) for key, idle in sorted(grouped.items())]


def idle_in_month(
    session: Session, month: str, project_ids: Collection[int] | None = None
) -> list[IdleLine]:
    """Idle GPUs in ``month`` (YYYY-MM, UTC): :func:`idle_between` its bounds."""
    return idle_between(session, *month_bounds(month), project_ids)


def summed[Key: Hashable](
    lines: Iterable[IdleLine], key: Callable[[IdleLine], Key]
) -> dict[Key, Idle]:
    """The lines added up per ``key`` (e.g. ``lambda line: line.gpu_type``), in key order of
    first appearance."""
    sums: dict[Key, Idle] = {}
    for line in lines:
        group = key(line)
        sums[group] = sums.get(group, NONE) + line.idle
    return sums


def total(lines: Iterable[IdleLine]) -> Idle:
    """Everything idle in the lines."""
    result = NONE
    for line in lines:
        result = result + line.idle
    return result
