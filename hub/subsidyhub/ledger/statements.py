"""Monthly statements: per user and profile, hours and money, reconciling exactly with charges.

A statement is a grouping of charge lines whose interval starts in the month (metering cuts
intervals at month starts, so none straddles two months). Totals are sums of the same lines,
so list = subsidy + co-pay holds on every row and the statement's subsidy equals what was
drawn from the project's allocations for that month, to the micro-unit. Reversal lines
(time charged past a stop the hub saw) count negative in hours as in money. This is what a
centre attaches to its subsidy claim.

Each line and the totals also say how much of those charges paid for idle GPUs (GPUs that did
no work, :mod:`subsidyhub.ledger.waste`): idle GPU-hours and the GPU part of the list price
over them, split into subsidy and co-pay. Those figures are **part of** the line's list,
subsidy and co-pay, never added to them; list = subsidy + co-pay holds for them too. A
running server's idle time can be recorded a little before its charge (the sampler and the
meter tick apart), so a current month may show an idle line before its charge line.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from subsidyhub.ledger import waste
from subsidyhub.ledger.metering import charged_ms
from subsidyhub.ledger.models import Charge, Organisation, Project, SpawnSession
from subsidyhub.money import bp_to_fraction_string, to_decimal_string
from subsidyhub.timeutil import format_hours, month_bounds


def _hours(ms: int) -> str:
    return format_hours(ms, 4)


@dataclass(frozen=True, slots=True)
class StatementLine:
    project: str
    username: str
    profile: str
    gpu_type: str | None
    sessions: int
    duration_ms: int
    gpu_ms: int
    cpu_core_ms: int
    list_micro: int
    subsidy_micro: int
    copay_micro: int
    # Of the above, what the line's idle GPUs cost (waste.Idle): part of it, not added to it.
    idle: waste.Idle = waste.NONE

    def as_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "username": self.username,
            "profile": self.profile,
            "gpu_type": self.gpu_type,
            "sessions": self.sessions,
            "hours": _hours(self.duration_ms),
            "gpu_hours": _hours(self.gpu_ms),
            "cpu_hours": _hours(self.cpu_core_ms),
            "list": to_decimal_string(self.list_micro),
            "subsidy": to_decimal_string(self.subsidy_micro),
            "copay": to_decimal_string(self.copay_micro),
            **idle_columns(self.idle),
        }


def idle_columns(idle: waste.Idle) -> dict[str, str]:
    """A line's or total's idle GPU figures, as the JSON and CSV carry them."""
    return {
        "idle_gpu_hours": _hours(idle.gpu_ms),
        "idle_list": to_decimal_string(idle.list_micro),
        "idle_subsidy": to_decimal_string(idle.subsidy_micro),
        "idle_copay": to_decimal_string(idle.copay_micro),
    }


@dataclass(frozen=True, slots=True)
class Statement:
    month: str
    currency: str
    projects: list[dict[str, Any]]
    lines: list[StatementLine] = field(default_factory=list)

    @property
    def total_list(self) -> int:
        return sum(line.list_micro for line in self.lines)

    @property
    def total_subsidy(self) -> int:
        return sum(line.subsidy_micro for line in self.lines)

    @property
    def total_copay(self) -> int:
        return sum(line.copay_micro for line in self.lines)

    @property
    def total_idle(self) -> waste.Idle:
        """What idle GPUs cost, summed over the lines: part of the totals, not added to them."""
        return sum((line.idle for line in self.lines), waste.NONE)

    def as_dict(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "currency": self.currency,
            "projects": self.projects,
            "lines": [line.as_dict() for line in self.lines],
            "totals": {
                "hours": _hours(sum(line.duration_ms for line in self.lines)),
                "gpu_hours": _hours(sum(line.gpu_ms for line in self.lines)),
                "cpu_hours": _hours(sum(line.cpu_core_ms for line in self.lines)),
                "list": to_decimal_string(self.total_list),
                "subsidy": to_decimal_string(self.total_subsidy),
                "copay": to_decimal_string(self.total_copay),
                **idle_columns(self.total_idle),
            },
        }

    def as_csv(self) -> str:
        buffer = io.StringIO()
        columns = [
            "month",
            "currency",
            "project",
            "username",
            "profile",
            "gpu_type",
            "sessions",
            "hours",
            "gpu_hours",
            "cpu_hours",
            "list",
            "subsidy",
            "copay",
            "idle_gpu_hours",
            "idle_list",
            "idle_subsidy",
            "idle_copay",
        ]
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for line in self.lines:
            writer.writerow({"month": self.month, "currency": self.currency, **line.as_dict()})
        totals = self.as_dict()["totals"]
        writer.writerow(
            {
                "month": self.month,
                "currency": self.currency,
                "project": "TOTAL",
                "username": "",
                "profile": "",
                "gpu_type": "",
                "sessions": sum(line.sessions for line in self.lines),
                **totals,
            }
        )
        return buffer.getvalue()


def statement(
    session: Session, month: str, currency: str, projects: list[Project] | None = None
) -> Statement:
    """The statement of ``month`` (YYYY-MM) for the given projects, or all when ``None``,
    with each line's idle GPU figures (two queries: the charges, the idle days)."""
    start, end = month_bounds(month)
    duration = charged_ms()
    query = (
        select(
            Project.slug,
            SpawnSession.username,
            SpawnSession.profile_slug,
            SpawnSession.gpu_type,
            func.count(func.distinct(SpawnSession.id)),
            func.sum(duration),
            func.sum(duration * SpawnSession.gpu_count),
            func.sum(duration * SpawnSession.cpu_millicores),
            func.sum(Charge.list_micro),
            func.sum(Charge.subsidy_micro),
            func.sum(Charge.copay_micro),
        )
        .join(SpawnSession, SpawnSession.id == Charge.session_id)
        .join(Project, Project.id == Charge.project_id)
        .where(Charge.interval_start_ms >= start, Charge.interval_start_ms < end)
        .group_by(
            Project.slug, SpawnSession.username, SpawnSession.profile_slug, SpawnSession.gpu_type
        )
        .order_by(Project.slug, SpawnSession.username, SpawnSession.profile_slug)
    )
    if projects is not None:
        query = query.where(Charge.project_id.in_([p.id for p in projects]))
    charged = [
        StatementLine(
            project=row[0],
            username=row[1],
            profile=row[2],
            gpu_type=row[3],
            sessions=int(row[4]),
            duration_ms=int(row[5] or 0),
            gpu_ms=int(row[6] or 0),
            cpu_core_ms=int(row[7] or 0) // 1000,
            list_micro=int(row[8] or 0),
            subsidy_micro=int(row[9] or 0),
            copay_micro=int(row[10] or 0),
        )
        for row in session.execute(query)
    ]
    project_ids = None if projects is None else [p.id for p in projects]
    lines = with_idle(charged, waste.idle_between(session, start, end, project_ids))
    listed = (
        projects
        if projects is not None
        else list(session.scalars(select(Project).order_by(Project.slug)))
    )
    organisations = {org.id: org.name for org in session.scalars(select(Organisation))}
    described = [
        {
            "slug": p.slug,
            "name": p.name,
            "organisation": organisations.get(p.organisation_id) if p.organisation_id else None,
            "subsidy_rate": bp_to_fraction_string(p.subsidy_bp),
        }
        for p in listed
    ]
    return Statement(month, currency, described, lines)


def with_idle(lines: list[StatementLine], idle: list[waste.IdleLine]) -> list[StatementLine]:
    """The charge lines with their idle GPU figures. Idle time not charged yet (a running
    server sampled after the meter's last tick) makes a line of its own, with no charges."""
    by_key = {line.key: line.idle for line in idle}
    merged = []
    for line in lines:
        found = by_key.pop((line.project, line.username, line.profile, line.gpu_type or ""), None)
        merged.append(line if found is None else replace(line, idle=found))
    uncharged = [
        StatementLine(
            project=line.project,
            username=line.username,
            profile=line.profile,
            gpu_type=line.gpu_type or None,
            sessions=line.idle.sessions,
            duration_ms=0,
            gpu_ms=0,
            cpu_core_ms=0,
            list_micro=0,
            subsidy_micro=0,
            copay_micro=0,
            idle=line.idle,
        )
        for line in idle
        if line.key in by_key
    ]
    if uncharged:
        merged = sorted([*merged, *uncharged], key=lambda x: (x.project, x.username, x.profile))
    return merged


def charged_in_month(session: Session, project: Project, month: str) -> tuple[int, int, int]:
    """(list, subsidy, co-pay) straight from the charge lines: the statement must equal this."""
    start, end = month_bounds(month)
    row = session.execute(
        select(
            func.sum(Charge.list_micro),
            func.sum(Charge.subsidy_micro),
            func.sum(Charge.copay_micro),
        ).where(
            Charge.project_id == project.id,
            Charge.interval_start_ms >= start,
            Charge.interval_start_ms < end,
        )
    ).one()
    return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0)
