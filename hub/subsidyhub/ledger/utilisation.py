"""Monthly GPU utilisation per GPU type: GPU-hours charged over GPU capacity.

The figure a centre reports to its funder. Definitions, also in
docs/statements-and-reports.md:

* **Used (allocated) GPU-hours** of a type: GPU-hours charged to admitted sessions on that
  type, i.e. the same charge lines as :mod:`subsidyhub.ledger.statements` (intervals starting
  in the month; metering cuts them at month starts), so the report's GPU-hours equal the sum
  of the month's statements to the millisecond. A GPU held by a running server counts as
  used whether or not its kernel computes: the subsidy pays for the reservation.
* **Capacity** of a type: its GPUs × the hours of the month. The GPU count comes from
  ``gpu_capacity`` in the config; failing that, from ``local.gpus``/``docker.gpus`` of the
  backend in force when every GPU profile uses one type (that host pool is then all of that
  type); otherwise it is unknown and the report says how to set it.
* **List and subsidy** per type are whole sessions' charges (the profile's CPU and memory
  included); CPU-only sessions form their own row, so the totals equal the statements'.
* **Reserved GPU-hours** of a type: the GPUs its reservations kept × the hours of their windows
  in the month, up to now (a cancelled reservation's windows before its cancellation count).
  **Reserved but unused**: of those, the GPU-hours the reserving project did not use (at each
  instant, the reserved GPUs less the project's GPUs of the type, if fewer): capacity kept
  from everyone else for nothing, which a funder asks about.
* **Idle GPU-hours** of a type or project: of the used GPU-hours, those while every GPU of a
  server did no work (:mod:`subsidyhub.ledger.waste`, by UTC day within the month), with the
  **idle share** of used GPU-hours and the GPUs' part of the list price and subsidy over them
  (part of the list and subsidy, not in addition; the servers' CPU and memory are left out).
  Per project too, since a funder asks who left GPUs idle.

Read-only: a query of the month's charges, one of its idle days, and the reservations'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from subsidyhub.ledger import burn_plan, waste
from subsidyhub.ledger.capacity import occurrences
from subsidyhub.ledger.metering import charged_ms
from subsidyhub.ledger.models import Charge, Project, Reservation, SpawnSession
from subsidyhub.money import to_decimal_string
from subsidyhub.settings import Settings
from subsidyhub.timeutil import format_hours, month_bounds

_PERCENT = Decimal("0.01")
CPU_ONLY = "cpu-only"


def _hours(ms: int | None) -> str | None:
    return None if ms is None else format_hours(ms, 4)


def _percent(used_ms: int, capacity_ms: int | None) -> str | None:
    if not capacity_ms:
        return None
    return f"{(Decimal(100 * used_ms) / capacity_ms).quantize(_PERCENT)}"


@dataclass(frozen=True, slots=True)
class Capacity:
    """How many GPUs of a type the centre has, and where that number came from."""

    gpus: int | None
    source: str  # "gpu_capacity", "local.gpus", "docker.gpus", or "unknown"


@dataclass(frozen=True, slots=True)
class TypeUtilisation:
    """One row: a GPU type (``None`` for CPU-only sessions) in one month."""

    gpu_type: str | None
    capacity: Capacity | None  # None for the CPU-only row, where capacity does not apply
    capacity_ms: int | None
    used_ms: int
    sessions: int
    list_micro: int
    subsidy_micro: int
    reserved_ms: int = 0
    reserved_unused_ms: int = 0
    idle: waste.Idle = waste.NONE

    def as_dict(self) -> dict[str, Any]:
        return {
            "gpu_type": self.gpu_type or CPU_ONLY,
            "gpus": self.capacity.gpus if self.capacity else None,
            "capacity_source": self.capacity.source if self.capacity else None,
            "capacity_gpu_hours": _hours(self.capacity_ms),
            "used_gpu_hours": _hours(self.used_ms),
            "utilisation_percent": _percent(self.used_ms, self.capacity_ms),
            "reserved_gpu_hours": _hours(self.reserved_ms),
            "reserved_unused_gpu_hours": _hours(self.reserved_unused_ms),
            "sessions": self.sessions,
            "list": to_decimal_string(self.list_micro),
            "subsidy": to_decimal_string(self.subsidy_micro),
            **idle_columns(self.idle, self.used_ms),
        }


def idle_columns(idle: waste.Idle, used_ms: int) -> dict[str, Any]:
    """Idle GPU-hours, their share of the used GPU-hours, and their list and subsidy."""
    return {
        "idle_gpu_hours": _hours(idle.gpu_ms),
        "idle_percent": _percent(idle.gpu_ms, used_ms),
        "idle_list": to_decimal_string(idle.list_micro),
        "idle_subsidy": to_decimal_string(idle.subsidy_micro),
    }


@dataclass(frozen=True, slots=True)
class ProjectUtilisation:
    """One project's GPU-hours in the month (all types), and how many of them were idle."""

    project: str
    used_ms: int
    idle: waste.Idle = waste.NONE

    def as_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "used_gpu_hours": _hours(self.used_ms),
            **idle_columns(self.idle, self.used_ms),
        }


@dataclass(frozen=True, slots=True)
class Utilisation:
    month: str
    currency: str
    month_ms: int
    rows: list[TypeUtilisation]
    # Projects that used or left idle GPUs in the month, by slug.
    projects: list[ProjectUtilisation] = field(default_factory=list)
    # The scheme as a whole at the report's "now" (issue 18): grants against their plans.
    scheme: burn_plan.Scheme | None = None

    @property
    def unknown_types(self) -> list[str]:
        """GPU types whose capacity is unknown (the total's capacity is then unknown too)."""
        return [
            row.gpu_type
            for row in self.rows
            if row.gpu_type and row.capacity is not None and row.capacity.gpus is None
        ]

    @property
    def total_gpus(self) -> int | None:
        if self.unknown_types:
            return None
        return sum(row.capacity.gpus or 0 for row in self.rows if row.capacity)

    @property
    def total_capacity_ms(self) -> int | None:
        gpus = self.total_gpus
        return None if gpus is None else gpus * self.month_ms

    @property
    def total_used_ms(self) -> int:
        return sum(row.used_ms for row in self.rows)

    @property
    def total_idle(self) -> waste.Idle:
        return sum((row.idle for row in self.rows), waste.NONE)

    def totals(self) -> dict[str, Any]:
        capacity = self.total_capacity_ms
        return {
            "gpu_type": "TOTAL",
            "gpus": self.total_gpus,
            "capacity_source": None,
            "capacity_gpu_hours": _hours(capacity),
            "used_gpu_hours": _hours(self.total_used_ms),
            "utilisation_percent": _percent(self.total_used_ms, capacity),
            "reserved_gpu_hours": _hours(sum(row.reserved_ms for row in self.rows)),
            "reserved_unused_gpu_hours": _hours(sum(row.reserved_unused_ms for row in self.rows)),
            "sessions": sum(row.sessions for row in self.rows),
            "list": to_decimal_string(sum(row.list_micro for row in self.rows)),
            "subsidy": to_decimal_string(sum(row.subsidy_micro for row in self.rows)),
            **idle_columns(self.total_idle, self.total_used_ms),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "currency": self.currency,
            "hours_in_month": _hours(self.month_ms),
            "rows": [row.as_dict() for row in self.rows],
            "totals": self.totals(),
            "projects": [project.as_dict() for project in self.projects],
            "unknown_capacity": self.unknown_types,
            "scheme": None if self.scheme is None else self.scheme.totals(),
        }


def gpu_capacity(settings: Settings, gpu_type: str) -> Capacity:
    """GPUs of ``gpu_type`` and where the figure comes from (:meth:`Settings.gpu_capacity_of`)."""
    return Capacity(*settings.gpu_capacity_of(gpu_type))


def used_within(count: int, start_ms: int, end_ms: int, held: list[tuple[int, int, int]]) -> int:
    """GPU-milliseconds of a window of ``count`` reserved GPUs that ``held`` (start, end, GPUs of
    the reserving project) used: at each instant the lesser of the two."""
    edges: dict[int, int] = {start_ms: 0, end_ms: 0}
    for begin, end, gpus in held:
        begin, end = max(begin, start_ms), min(end, end_ms)
        if begin < end:
            edges[begin] = edges.get(begin, 0) + gpus
            edges[end] = edges.get(end, 0) - gpus
    used, level, previous = 0, 0, start_ms
    for at in sorted(edges):
        used += min(count, level) * (at - previous)
        level += edges[at]
        previous = at
    return used


def reserved_use(session: Session, gpu_type: str, start_ms: int, end_ms: int) -> tuple[int, int]:
    """Reserved GPU-milliseconds of the type between the instants, and how many went unused."""
    reserved = unused = 0
    for row in session.scalars(select(Reservation).where(Reservation.gpu_type == gpu_type)):
        for begin, end in occurrences(row.starts_ms, row.ends_ms, row.weeks):
            if row.cancelled_ms is not None:
                end = min(end, row.cancelled_ms)
            begin, end = max(begin, start_ms), min(end, end_ms)
            if begin >= end:
                continue
            held = [
                (started, stopped if stopped is not None else end_ms, gpus)
                for started, stopped, gpus in session.execute(
                    select(
                        SpawnSession.started_ms, SpawnSession.stopped_ms, SpawnSession.gpu_count
                    ).where(
                        SpawnSession.project_id == row.project_id,
                        SpawnSession.gpu_type == gpu_type,
                        SpawnSession.started_ms < end,
                        (SpawnSession.stopped_ms.is_(None)) | (SpawnSession.stopped_ms > begin),
                    )
                )
            ]
            kept = row.gpu_count * (end - begin)
            reserved += kept
            unused += kept - used_within(row.gpu_count, begin, end, held)
    return reserved, unused


def utilisation(
    session: Session, settings: Settings, month: str, now_ms: int | None = None
) -> Utilisation:
    """Utilisation of ``month`` (YYYY-MM, UTC) per GPU type, plus a CPU-only row if any, and
    per project; reservations count up to ``now_ms`` (default: the month's end)."""
    start, end = month_bounds(month)
    until = end if now_ms is None else min(end, now_ms)
    duration = charged_ms()
    query = (
        select(
            SpawnSession.gpu_type,
            Project.slug,
            func.count(func.distinct(SpawnSession.id)),
            func.sum(duration * SpawnSession.gpu_count),
            func.sum(Charge.list_micro),
            func.sum(Charge.subsidy_micro),
        )
        .join(SpawnSession, SpawnSession.id == Charge.session_id)
        .join(Project, Project.id == Charge.project_id)
        .where(Charge.interval_start_ms >= start, Charge.interval_start_ms < end)
        .group_by(SpawnSession.gpu_type, Project.slug)
    )
    # Per type: [sessions, GPU-ms, list, subsidy] (a session is of one type and one project,
    # so the projects' distinct counts add up); per project: GPU-ms.
    used: dict[str | None, list[int]] = {}
    used_by_project: dict[str, int] = {}
    for gpu_type, slug, *figures in session.execute(query):
        sums = used.setdefault(gpu_type, [0, 0, 0, 0])
        for index, value in enumerate(figures):
            sums[index] += int(value or 0)
        used_by_project[slug] = used_by_project.get(slug, 0) + int(figures[1] or 0)
    idle_lines = waste.idle_between(session, start, end)
    idle_by_type = waste.summed(idle_lines, lambda line: line.gpu_type)
    idle_by_project = waste.summed(idle_lines, lambda line: line.project)
    offered = set(settings.gpu_capacity) | {p.gpu_type for p in settings.profiles if p.gpu_type}
    gpu_types = sorted(offered | {t for t in used if t is not None} | set(idle_by_type))
    rows = []
    for gpu_type in [*gpu_types, *([None] if None in used else [])]:
        row = used.get(gpu_type)
        capacity = gpu_capacity(settings, gpu_type) if gpu_type else None
        capacity_ms = (
            capacity.gpus * (end - start) if capacity and capacity.gpus is not None else None
        )
        reserved, unused = reserved_use(session, gpu_type, start, until) if gpu_type else (0, 0)
        rows.append(
            TypeUtilisation(
                gpu_type=gpu_type,
                capacity=capacity,
                capacity_ms=capacity_ms,
                used_ms=row[1] if row else 0,
                sessions=row[0] if row else 0,
                list_micro=row[2] if row else 0,
                subsidy_micro=row[3] if row else 0,
                reserved_ms=reserved,
                reserved_unused_ms=unused,
                idle=idle_by_type.get(gpu_type, waste.NONE) if gpu_type else waste.NONE,
            )
        )
    projects = [
        ProjectUtilisation(
            slug, used_by_project.get(slug, 0), idle_by_project.get(slug, waste.NONE)
        )
        for slug in sorted(set(used_by_project) | set(idle_by_project))
        if used_by_project.get(slug, 0) or slug in idle_by_project
    ]
    scheme = burn_plan.scheme(session, settings, until)
    return Utilisation(month, settings.currency, end - start, rows, projects, scheme)
