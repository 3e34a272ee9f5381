"""The versioned price list: anyone signed in may read it (the spawn form shows prices);
only service admins add a version. A new version applies to sessions admitted after its
``effective_from``; running sessions keep the rates they were admitted with.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from subsidyhub import shapes
from subsidyhub.ledger import prices
from subsidyhub.service.auth import CurrentIdentity, require_admin
from subsidyhub.service.context import Context
from subsidyhub.service.schemas import PriceChange

router = APIRouter(tags=["prices"])


@router.get(
    "/prices",
    summary="The price list in force and every version",
    response_model=shapes.Prices,
    response_model_exclude_unset=True,
)
def read_prices(identity: CurrentIdentity, context: Context) -> dict[str, Any]:
    with context.db.read() as session:
        current = prices.current_version(session, context.clock())
        return {
            "currency": context.settings.currency,
            "current": shapes.describe_price_version(current),
            "versions": [shapes.describe_price_version(v) for v in prices.versions(session)],
        }


@router.post(
    "/prices",
    status_code=201,
    summary="Add a price version (admins)",
    response_model=shapes.PriceVersion,
    response_model_exclude_unset=True,
)
def add_prices(body: PriceChange, identity: CurrentIdentity, context: Context) -> dict[str, Any]:
    require_admin(identity, "change prices")
    with context.db.write() as session:
        version = prices.set_prices(
            session,
            context.settings,
            identity.actor,
            at_ms=context.clock(),
            effective_from_ms=body.effective_from,
            cpu_core=body.cpu_core,
            memory_gib=body.memory_gib,
            gpu=body.gpu,
            note=body.note,
            confirm=body.confirm,
        )
        return shapes.describe_price_version(version)
