"""Monthly statements: per user and profile, hours and money, reconciling exactly with charges.

A statement is a grouping of charge lines whose interval starts in the month (metering cuts
intervals at month starts, so none straddles two months). Totals are sums of the same lines,
so list = subsidy + co-pay holds on every row and the statement's subsidy equals what was
drawn from the project's allocations for that month, to the micro-unit. Reversal lines
(time charged past a stop the hub saw) count negative in hours as in money. This is what a
centre attaches to its subsidy claim.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

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
    """The statement of ``month`` (YYYY-MM) for the given projects, or all when ``None``."""
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
    lines = [
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
