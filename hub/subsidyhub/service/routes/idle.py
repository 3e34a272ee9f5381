"""Idle GPUs, as their owner sees them: a server's recent GPU utilisation, and Keep it.

The lab's panel plots ``GET users/{name}/gpu-usage``; the warning that a server's GPUs are idle
(``GET me``, code ``idle_gpu``) offers Keep it, which is ``POST users/{name}/keep``: once per
server, audited (:mod:`subsidyhub.ledger.idle`). The owner or an admin may do either.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from subsidyhub import shapes
from subsidyhub.ledger import idle
from subsidyhub.service.auth import CurrentIdentity, require_user_or_admin
from subsidyhub.service.context import Context
from subsidyhub.service.schemas import IdleKeep, ServerNameQuery, UsernameParam
from subsidyhub.timeutil import iso

router = APIRouter(tags=["idle GPUs"])


@router.get(
    "/users/{name}/gpu-usage",
    summary="A running GPU server's recent utilisation and idle state (its owner; admins)",
    response_model=shapes.GpuUsagePlot,
)
def read_gpu_usage(
    name: UsernameParam,
    identity: CurrentIdentity,
    context: Context,
    server_name: ServerNameQuery = "",
) -> dict[str, Any]:
    require_user_or_admin(identity, name, "read the GPU usage")
    with context.db.read() as session:
        plot = idle.plot(session, context.settings, name, server_name, context.clock())
    return shapes.describe_gpu_plot(plot, context.settings)


@router.post(
    "/users/{name}/keep",
    summary="Keep a server whose GPUs are idle: its idle time starts again, once per server",
    response_model=shapes.IdleKept,
)
def keep_server(
    name: UsernameParam, body: IdleKeep, identity: CurrentIdentity, context: Context
) -> dict[str, Any]:
    require_user_or_admin(identity, name, "keep the server")
    with context.db.write() as session:
        kept = idle.keep(
            session, context.settings, name, body.server_name, context.clock(), identity.actor
        )
    return {
        "session_id": kept.session_id,
        "server_name": kept.server_name,
        "kept_at": iso(kept.kept_ms),
        "stops_at": iso(kept.stops_at_ms),
    }
