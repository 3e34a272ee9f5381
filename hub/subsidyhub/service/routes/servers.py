"""Admins stop a running server now (the admin page's Stop button).

The ledger goes first: one write transaction charges the session to this instant, closes it
with the admin's reason (``admin`` by default) and writes the audit entry naming the admin
and their note (:mod:`subsidyhub.ledger.server_stops`).
The server's user is then given ``metering.admin_stop_grace_seconds`` to save their work:
JupyterLab shows them the stop and its note at once (``GET me``'s stops), and the enforcer
asks the hub after the grace. With no grace, the
hub is asked at once, with the service's own token; its ``post_stop``
hook finds the session closed already (stops are idempotent), so the recorded reason stays
the admin's. Should the hub not answer, the enforcer retries the stop each round, as it
does for its own stops; without an enforcer the answer is a 503 saying the server still runs.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from subsidyhub import shapes
from subsidyhub.ledger.admission import Stopped
from subsidyhub.ledger.server_stops import stop_by_admin
from subsidyhub.service.auth import CurrentIdentity, HubUnavailable, require_admin
from subsidyhub.service.context import Context, ServiceContext
from subsidyhub.service.hubclient import HubClient
from subsidyhub.service.hubclient import HubUnavailable as HubNotAnswering
from subsidyhub.service.schemas import AdminStopRequest, SessionId
from subsidyhub.timeutil import iso

router = APIRouter(tags=["sessions"])


def close_session(
    context: ServiceContext, session_id: int, actor: str, reason: str, note: str | None
) -> Stopped:
    """Final charge, session closed and the audit entry, in one transaction."""
    with context.db.write() as session:
        stopped = stop_by_admin(
            session, session_id, actor=actor, now_ms=context.clock(), reason=reason, note=note
        )
    context.metrics.stops.labels(reason).inc()
    return stopped


@router.post(
    "/sessions/{session_id}/stop-server",
    summary="Stop a running server now: charge, close, ask the hub to stop it (admins)",
    response_model=shapes.AdminStopped,
    response_model_exclude_unset=True,
)
async def stop_server_now(
    session_id: SessionId,
    body: AdminStopRequest,
    identity: CurrentIdentity,
    context: Context,
    request: Request,
) -> dict[str, Any]:
    require_admin(identity, "stop servers")
    hub: HubClient | None = request.app.state.hub
    if hub is None:
        raise HubUnavailable(
            "This service runs without a hub token, so it cannot stop servers; start it as "
            "JupyterHub's managed service (JUPYTERHUB_API_TOKEN)."
        )
    stopped = await asyncio.to_thread(
        close_session, context, session_id, identity.actor, body.reason, body.note
    )
    answer = shapes.describe_stopped(stopped)
    enforcer = getattr(request.app.state, "enforcer", None)
    grace = context.settings.metering.admin_stop_grace_seconds
    if enforcer is not None and grace > 0:
        at_ms = stopped.stopped_ms + int(grace * 1000)
        enforcer.stop_after_grace(
            stopped.username, stopped.server_name, stopped.session_id, body.reason, at_ms
        )
        return answer | {"hub": "scheduled", "hub_stop_at": iso(at_ms, exact=True)}
    try:
        await hub.stop_server(stopped.username, stopped.server_name)
    except HubNotAnswering:
        if enforcer is None:
            raise HubUnavailable(
                f"Session {session_id} is closed and charged, but JupyterHub did not stop "
                f"{stopped.username}'s server; stop it on the hub's admin page."
            ) from None
        enforcer.retry_hub_stop(stopped.username, stopped.server_name, body.reason)
        return answer | {"hub": "retrying"}
    return answer | {"hub": "stopping"}
