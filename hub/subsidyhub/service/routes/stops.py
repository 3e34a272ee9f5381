"""Why a user's servers stopped: the hub's home and spawn pages ask before they render.

The hub shows the newest stop its user did not ask for above the Start button, so a person
whose server the service stopped reads why and what to do (see
:mod:`subsidyhub.ledger.stops`). The same list is part of ``GET me`` for JupyterLab.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select

from subsidyhub import shapes
from subsidyhub.ledger.models import Member
from subsidyhub.ledger.stops import recent_stops
from subsidyhub.service.auth import CurrentIdentity, require_user_or_admin
from subsidyhub.service.context import Context
from subsidyhub.service.schemas import UsernameParam

router = APIRouter(tags=["me"])


@router.get(
    "/users/{name}/stops",
    summary="The user's server stops of the last 7 days, newest first, each with why",
    response_model=shapes.RecentStops,
)
def read_stops(name: UsernameParam, identity: CurrentIdentity, context: Context) -> dict[str, Any]:
    require_user_or_admin(identity, name, "read why their servers stopped")
    now = context.clock()
    with context.db.read_engine.begin() as connection:
        project_ids = connection.scalars(
            select(Member.project_id).where(Member.username == name)
        ).all()
        grace_ms = int(context.settings.metering.admin_stop_grace_seconds * 1000)
        stops = recent_stops(connection, name, project_ids, now, grace_ms)
    return {"user": name, "stops": stops}
