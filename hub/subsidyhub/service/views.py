"""JSON shapes the API returns for sessions, admissions, stops, audit entries and spawn offers.

Kept apart from the routes so ``GET me``, the admin session list and the hub-facing answers
describe a session identically. Amounts are decimal strings, rates are per hour, times are
ISO 8601 UTC, matching :mod:`subsidyhub.ledger.summary`.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from subsidyhub.ledger.accounts import Account
from subsidyhub.ledger.admission import Admission, Stopped, resources_of
from subsidyhub.ledger.models import AuditEntry, Project, SpawnSession
from subsidyhub.ledger.policy import Decision
from subsidyhub.ledger.pricing import PriceList, accrued, list_rate_per_hour, subsidy_rate_per_hour
from subsidyhub.money import to_decimal_string
from subsidyhub.settings import Profile
from subsidyhub.timeutil import iso


def running_sessions(
    session: Session, *, username: str | None = None, project_id: int | None = None
) -> list[tuple[SpawnSession, str]]:
    """Running sessions with their project's slug, oldest first; one query."""
    query = (
        select(SpawnSession, Project.slug)
        .join(Project, Project.id == SpawnSession.project_id)
        .where(SpawnSession.stopped_ms.is_(None))
        .order_by(SpawnSession.id)
    )
    if username is not None:
        query = query.where(SpawnSession.username == username)
    if project_id is not None:
        query = query.where(SpawnSession.project_id == project_id)
    return [(row[0], row[1]) for row in session.execute(query)]


def describe_session(row: SpawnSession, project_slug: str, now_ms: int) -> dict[str, Any]:
    """A running session with what it has cost so far (charged plus accrued since)."""
    end = row.stopped_ms if row.stopped_ms is not None else max(now_ms, row.started_ms)
    cost = accrued(row.list_rate_micro, row.subsidy_bp, end - row.started_ms)
    return {
        "id": row.id,
        "user": row.username,
        "server_name": row.server_name,
        "project": project_slug,
        "profile": row.profile_slug,
        "gpu_type": row.gpu_type,
        "gpu_count": row.gpu_count,
        "started": iso(row.started_ms),
        "list_rate_per_hour": to_decimal_string(row.list_rate_micro),
        "subsidy_rate_per_hour": to_decimal_string(
            subsidy_rate_per_hour(row.list_rate_micro, row.subsidy_bp)
        ),
        "cost": {
            "list": to_decimal_string(cost.list),
            "subsidy": to_decimal_string(cost.subsidy),
            "copay": to_decimal_string(cost.copay),
        },
        "charged_until": iso(row.charged_until_ms),
        "max_stop_at": iso(row.max_stop_ms),
    }


def describe_admission(admission: Admission) -> dict[str, Any]:
    return {
        "session_id": admission.session_id,
        "user": admission.username,
        "server_name": admission.server_name,
        "project": admission.project,
        "profile": admission.profile,
        "hold": to_decimal_string(admission.hold),
        "list_rate_per_hour": to_decimal_string(admission.list_rate),
        "subsidy_rate_per_hour": to_decimal_string(
            subsidy_rate_per_hour(admission.list_rate, admission.subsidy_bp)
        ),
        "started": iso(admission.started_ms),
        "max_stop_at": iso(admission.max_stop_ms),
        "price_version": admission.price_version,
    }


def describe_stopped(stopped: Stopped) -> dict[str, Any]:
    return {
        "session_id": stopped.session_id,
        "user": stopped.username,
        "server_name": stopped.server_name,
        "project": stopped.project,
        "stopped": iso(stopped.stopped_ms),
        "reason": stopped.reason,
        "already_stopped": stopped.already,
        "totals": {
            "list": to_decimal_string(stopped.list_micro),
            "subsidy": to_decimal_string(stopped.subsidy_micro),
            "copay": to_decimal_string(stopped.list_micro - stopped.subsidy_micro),
        },
    }


def describe_audit_entry(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": iso(entry.at_ms),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "before": entry.before,
        "after": entry.after,
    }


def hours_affordable(available: int, subsidy_per_hour: int) -> str | None:
    """How long the project's available subsidy runs this rate; ``None`` when it costs none."""
    if subsidy_per_hour <= 0:
        return None
    hours = Decimal(max(0, available)) / Decimal(subsidy_per_hour)
    return f"{hours.quantize(Decimal('0.01'), rounding=ROUND_DOWN)}"


def describe_offer(
    profile: Profile,
    prices: PriceList,
    subsidy_bp: int,
    account: Account,
    decision: Decision,
    hold: int,
) -> dict[str, Any]:
    """One profile as the spawn form offers it within one project."""
    rate = list_rate_per_hour(prices, resources_of(profile))
    subsidy = subsidy_rate_per_hour(rate, subsidy_bp)
    offer: dict[str, Any] = {
        "slug": profile.slug,
        "display_name": profile.display_name,
        "description": profile.description,
        "gpu_type": profile.gpu_type,
        "gpu_count": profile.gpu_count,
        "list_rate_per_hour": to_decimal_string(rate),
        "subsidy_rate_per_hour": to_decimal_string(subsidy),
        "copay_rate_per_hour": to_decimal_string(rate - subsidy),
        "hold": to_decimal_string(hold),
        "hours_left": hours_affordable(account.available, subsidy),
        "allowed": decision.allowed,
    }
    if not decision.allowed:
        offer["reason"] = decision.reason
        offer["message"] = decision.message
    return offer
