"""What a user sees of themself: ``GET me`` and the profiles they may spawn.

``GET me`` is polled by every JupyterLab status bar, so it is one read transaction with a
handful of queries whatever the history's length, and no hub call when the token is cached.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from subsidyhub.errors import Forbidden
from subsidyhub.ledger import prices
from subsidyhub.ledger.accounts import load_accounts
from subsidyhub.ledger.admission import evaluate
from subsidyhub.ledger.projects import projects_of
from subsidyhub.ledger.summary import project_summary
from subsidyhub.money import bp_to_fraction_string, to_decimal_string
from subsidyhub.service import views
from subsidyhub.service.auth import CurrentIdentity, require_user_or_admin
from subsidyhub.service.context import Context
from subsidyhub.timeutil import iso

router = APIRouter(tags=["me"])


@router.get(
    "/me",
    summary="The caller's projects, balances, warnings and running servers",
    response_model=None,
)
def read_me(identity: CurrentIdentity, context: Context) -> dict[str, Any]:
    if not identity.is_user:
        raise Forbidden(
            f"GET me describes a user; this token belongs to {identity.actor}. "
            "Use a user's token, or the admin endpoints."
        )
    now = context.clock()
    with context.db.read() as session:
        memberships = projects_of(session, identity.name)
        accounts = load_accounts(session, [project for project, _ in memberships], now)
        summaries = [
            project_summary(
                session,
                context.settings,
                project,
                accounts[project.id],
                member=member,
                username=identity.name,
            )
            for project, member in memberships
        ]
        running = views.running_sessions(session, username=identity.name)
        sessions = [views.describe_session(row, slug, now) for row, slug in running]
    return {
        "user": identity.name,
        "admin": identity.is_admin,
        "at": iso(now),
        "currency": context.settings.currency,
        "projects": summaries,
        "sessions": sessions,
    }


@router.get(
    "/users/{name}/profiles",
    summary="Each profile in each of the user's projects: price, subsidy, hours left, allowed",
    response_model=None,
)
def read_profiles(name: str, identity: CurrentIdentity, context: Context) -> dict[str, Any]:
    require_user_or_admin(identity, name, "read the spawn options")
    settings = context.settings
    now = context.clock()
    with context.db.read() as session:
        price_list = prices.as_price_list(prices.current_version(session, now))
        memberships = projects_of(session, name)
        accounts = load_accounts(session, [project for project, _ in memberships], now)
        offered: list[dict[str, Any]] = []
        for project, member in memberships:
            offers = []
            for profile in settings.profiles:
                decision, account, hold = evaluate(
                    session, settings, project, name, profile, price_list, now
                )
                offers.append(
                    views.describe_offer(
                        profile, price_list, project.subsidy_bp, account, decision, hold
                    )
                )
            offered.append(
                {
                    "slug": project.slug,
                    "name": project.name,
                    "role": member.role,
                    "status": project.status,
                    "subsidy_rate": bp_to_fraction_string(project.subsidy_bp),
                    "available": to_decimal_string(accounts[project.id].available),
                    "profiles": offers,
                }
            )
    return {
        "user": name,
        "currency": settings.currency,
        "price_version": price_list.version,
        "projects": offered,
    }
