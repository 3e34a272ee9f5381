"""``GET {prefix}health/live`` and ``{prefix}health/ready``: probes for Kubernetes and Docker.

Unauthenticated on purpose: a kubelet has no hub token, and the answers say nothing about
projects or money. The two differ in what they check, because they trigger different actions:

* **live**: the process answers HTTP. A failure restarts the container, so it must not depend
  on the database: a database outage would otherwise restart every replica in a loop.
* **ready**: the ledger database answers ``SELECT 1``. A failure takes the replica out of the
  Service until the database is back; the message names the error class, never the URL
  (which may hold a password).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from subsidyhub import shapes
from subsidyhub.errors import SubsidyError
from subsidyhub.service.context import Context

router = APIRouter(tags=["health"])


class NotReady(SubsidyError):
    status = 503
    reason = "not_ready"


@router.get(
    "/health/live",
    summary="The process answers (no authentication)",
    response_model=shapes.Health,
    response_model_exclude_unset=True,
)
def live() -> dict[str, Any]:
    return {"status": "ok"}


@router.get(
    "/health/ready",
    summary="The ledger database answers (no authentication)",
    response_model=shapes.Health,
    response_model_exclude_unset=True,
    responses={503: shapes.ERROR_RESPONSES[503]},
)
def ready(context: Context) -> dict[str, Any]:
    try:
        with context.db.read() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        cause = type(getattr(error, "orig", None) or error).__name__
        raise NotReady(
            f"The ledger database does not answer ({cause}); this replica takes no requests "
            "until it does. Check that the database named by SUBSIDYHUB_DATABASE_URL (or "
            "database_url in subsidyhub.yaml) is up and reachable."
        ) from None
    return {"status": "ok", "database": context.db.engine.dialect.name}
