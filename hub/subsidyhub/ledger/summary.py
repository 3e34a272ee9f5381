"""What a person sees of a project: balance, burn, time left, quota use and warnings.

One function builds the dictionary that ``GET me``, the admin API and ``admin project show``
return, so the numbers a researcher sees in JupyterLab are the numbers an admin sees in the
CLI. Amounts are decimal strings; times are ISO 8601 UTC.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from subsidyhub.ledger.accounts import Account
from subsidyhub.ledger.admission import effective_quota, member_gpu_ms_week
from subsidyhub.ledger.courses import describe_allowance
from subsidyhub.ledger.models import Member, Project
from subsidyhub.ledger.projects import ms_to_hours
from subsidyhub.money import bp_to_fraction_string, format_money, to_decimal_string
from subsidyhub.settings import Settings
from subsidyhub.timeutil import iso

STUDENT_WARNINGS = ("exhausted", "stop_soon")


def warnings_for(settings: Settings, project: Any, account: Account) -> list[dict[str, Any]]:
    """The most severe balance threshold crossed, and a stop forecast when it is near."""
    found: list[dict[str, Any]] = []
    currency = settings.currency
    if account.allocated > 0:
        crossed = [
            f
            for f in sorted(settings.metering.warn_fractions)
            if account.balance < account.allocated * f
        ]
        if account.balance <= 0:
            found.append(
                {
                    "code": "exhausted",
                    "level": "critical",
                    "message": f"Project {project.slug} has no subsidy left; servers are being stopped. "
                    "Ask your project manager to top up.",
                }
            )
        elif crossed:
            fraction = crossed[0]
            percent = int(fraction * 100)
            found.append(
                {
                    "code": f"below_{percent}_percent",
                    "level": "critical"
                    if fraction == min(settings.metering.warn_fractions)
                    else "warning",
                    "threshold": f"{fraction}",
                    "message": f"Project {project.slug} has less than {percent}% of its allocation left "
                    f"({format_money(account.balance, currency)} of {format_money(account.allocated, currency)}).",
                }
            )
    horizon_ms = int(settings.metering.warn_minutes_before_stop * 60_000)
    left = account.time_left_ms
    if left is not None and account.balance > 0 and left <= horizon_ms:
        minutes = max(1, round(left / 60_000))
        found.append(
            {
                "code": "stop_soon",
                "level": "critical",
                "at": iso(account.exhaustion_ms),
                "message": f"Save your work: servers in project {project.slug} stop in {minutes} minutes "
                f"(at {iso(account.exhaustion_ms)}) because the project's subsidy runs out.",
            }
        )
    return found


def project_summary(
    session: Session,
    settings: Settings,
    project: Project,
    account: Account,
    *,
    member: Member | None = None,
    username: str | None = None,
) -> dict[str, Any]:
    """The project as ``GET me`` shows it; with ``username``, that member's quota use too."""
    week_ms = (
        member_gpu_ms_week(session, project.id, username, account.at_ms)
        if username is not None
        else 0
    )
    return summarise_project(
        settings, project, account, member=member, username=username, gpu_ms_week=week_ms
    )


def summarise_project(
    settings: Settings,
    project: Any,
    account: Account,
    *,
    member: Any = None,
    username: str | None = None,
    gpu_ms_week: int = 0,
    allowance_only: bool = False,
) -> dict[str, Any]:
    """:func:`project_summary` from facts already read, without a query.

    ``project`` and ``member`` are ORM rows or plain rows with the same columns;
    ``gpu_ms_week`` is the member's GPU use in the last 7 days (see :func:`gpu_ms_in_week`),
    shown only with ``username``. ``allowance_only`` (a course's student) gives that
    member's allowance instead of the project's money, which is the lecturer's business.
    """
    quota = effective_quota(project, member)
    head: dict[str, Any] = {
        "slug": project.slug,
        "name": project.name,
        "kind": project.kind,
        "status": project.status,
        "role": member.role if member else None,
        "currency": settings.currency,
        "subsidy_rate": bp_to_fraction_string(project.subsidy_bp),
    }
    if allowance_only:
        return head | {
            "allowance": describe_allowance(quota, gpu_ms_week),
            # Stops concern the student too; how much money is left does not.
            "warnings": [
                w for w in warnings_for(settings, project, account) if w["code"] in STUDENT_WARNINGS
            ],
        }
    time_left = account.time_left_ms
    summary = head | {
        "allocated": to_decimal_string(account.allocated),
        "balance": to_decimal_string(account.balance),
        "available": to_decimal_string(account.available),
        "held": to_decimal_string(account.holds),
        "burn_rate_per_hour": to_decimal_string(account.burn_rate_per_hour),
        "list_rate_per_hour": to_decimal_string(account.list_rate_per_hour),
        "time_left_seconds": None if time_left is None else time_left // 1000,
        "exhaustion_at": iso(account.exhaustion_ms),
        "balance_display": format_money(account.balance, settings.currency),
        "running_servers": len(account.sessions),
        "gpus_in_use": account.gpus_in_use,
        "quota": {
            "max_gpus": quota.max_gpus,
            "member_max_gpus": quota.member_max_gpus,
            "gpu_hours_per_week": None
            if quota.gpu_hours_per_week is None
            else f"{quota.gpu_hours_per_week.normalize():f}",
            "max_session_hours": ms_to_hours(
                None
                if quota.max_session_hours is None
                else int(quota.max_session_hours * 3_600_000)
            ),
            "profiles": sorted(quota.allowed_profiles)
            if quota.allowed_profiles is not None
            else None,
            "gpu_types": sorted(quota.allowed_gpu_types)
            if quota.allowed_gpu_types is not None
            else None,
        },
        "warnings": warnings_for(settings, project, account),
    }
    if username is not None:
        summary["usage"] = {
            "gpus_in_use": sum(s.gpu_count for s in account.sessions if s.username == username),
            "gpu_hours_week": f"{(Decimal(gpu_ms_week) / 3_600_000).quantize(Decimal('0.01'))}",
        }
    return summary
