"""``GET me/spending``: what each of the caller's projects spent per UTC day, for the panel's plot."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from subsidyhub import shapes
from subsidyhub.errors import Forbidden
from subsidyhub.ledger.policy import is_student
from subsidyhub.ledger.projects import projects_of
from subsidyhub.ledger.spending import MAX_DAYS, check_days, daily_spending
from subsidyhub.service.auth import CurrentIdentity
from subsidyhub.service.context import Context

router = APIRouter(tags=["me"])


@router.get(
    "/me/spending",
    summary="List price, subsidy and co-pay per UTC day of the caller's projects",
    response_model=shapes.Spending,
    response_model_exclude_unset=True,
)
def read_spending(
    identity: CurrentIdentity,
    context: Context,
    days: Annotated[
        str, Query(description=f"Days up to and including today (UTC): 1 to {MAX_DAYS}")
    ] = "7",
) -> dict[str, Any]:
    count = check_days(days)
    if not identity.is_user:
        raise Forbidden(
            f"GET me/spending describes a user; this token belongs to {identity.actor}. "
            "Use a user's token, or the statements."
        )
    currency = context.settings.currency
    with context.db.read() as session:
        # A course's money is its lecturers' business; its students see their allowance.
        projects = [
            project
            for project, member in projects_of(session, identity.name)
            if identity.is_admin or not is_student(project.kind, member.role)
        ]
        spent = daily_spending(session, [p.id for p in projects], context.clock(), count)
    return {
        "user": identity.name,
        "days": count,
        "projects": [
            {
                "slug": project.slug,
                "currency": currency,
                "days": [day.as_dict() for day in spent[project.id]],
            }
            for project in projects
        ],
    }
