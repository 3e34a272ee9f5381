"""Hub-facing: admit a spawn, stop a session; and the admins' list of running sessions.

Only the hub (the subsidy service's own token, used by the hub plugin's ``pre_spawn`` and
``post_stop`` hooks) admits and stops. An admission is one serialised write transaction
(decision, session row, hold); a refusal writes nothing and answers 403 with the policy's
reason code and a message for the person spawning. A session still open for the same server
missed its stop and is closed by the ledger first (reason ``superseded``).

The hub says until when it waits (``deadline``): an admission that could not commit by then
is refused and rolled back, so a spawn the hub gave up on (a frozen or overloaded service)
never leaves a session to pay for. A dry run answers what the policy would say, writing
nothing: the hub asks it when the host's GPUs are all taken, to name the rule that refuses.

A stop carries the time the hub saw the server stop (``stopped_at``), which is what the
ledger records however late the notice comes (the hub keeps undelivered notices); stops are
idempotent, so the hook may retry: a second stop returns the same final totals.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from subsidyhub import shapes
from subsidyhub.errors import NotFound, Refused, SubsidyError, TooLate
from subsidyhub.ledger.admission import (
    Admission,
    Stopped,
    admit,
    latest_session_id,
    list_running,
    record_stop,
    session_for_stop,
    stop,
)
from subsidyhub.ledger.projects import get_project, require_known_project
from subsidyhub.service.auth import CurrentIdentity, require_admin, require_hub_facing
from subsidyhub.service.context import Context, ServiceContext
from subsidyhub.service.schemas import (
    AdmissionCheck,
    AdmissionRequest,
    ProjectSlugQuery,
    ServerStopRequest,
    SessionId,
    StopRequest,
    UsernameQuery,
)
from subsidyhub.timeutil import iso

log = logging.getLogger(__name__)

router = APIRouter(tags=["sessions"])


def _admit(
    session: Session,
    context: ServiceContext,
    body: AdmissionCheck,
    gpu_devices: Sequence[str] = (),
    pod: str | None = None,
) -> Admission:
    """The policy's answer to ``body``, written by ``session`` (a trial session writes nothing);
    ``gpu_devices`` or ``pod``: where the admitted server's GPUs are read."""
    if body.project:
        require_known_project(session, body.user, body.project)
    return admit(
        session,
        context.settings,
        username=body.user,
        project_slug=body.project,
        profile_slug=body.profile,
        server_name=body.server_name,
        now_ms=context.clock(),
        gpu_devices=gpu_devices,
        pod_name=pod,
    )


def _result(error: SubsidyError) -> str:
    """The ``result`` label of an admission that did not happen."""
    if isinstance(error, Refused):
        return "refused"
    return "expired" if isinstance(error, TooLate) else "invalid"


@router.post(
    "/admissions",
    status_code=201,
    summary="Admit a spawn (the hub only)",
    response_model=shapes.Admission,
    response_model_exclude_unset=True,
)
def admit_spawn(
    body: AdmissionRequest, identity: CurrentIdentity, context: Context
) -> dict[str, Any]:
    require_hub_facing(identity, "admit spawns")
    counter = context.metrics.admissions
    try:
        with context.db.write() as session:
            admission = _admit(session, context, body, body.gpu_devices, body.pod)
            # Last, just before the commit: past the deadline the hub has told the person the
            # spawn failed, so this admission must not exist.
            late_ms = context.clock() - body.deadline if body.deadline is not None else 0
            if late_ms > 0:
                log.warning(
                    "Admission of %s/%s refused: the hub stopped waiting %d ms ago",
                    body.user,
                    body.server_name,
                    late_ms,
                )
                raise TooLate(
                    f"The hub stopped waiting for this admission at "
                    f"{iso(body.deadline, exact=True)}, {late_ms} ms before it could be "
                    "written; nothing was admitted."
                )
    except SubsidyError as error:
        counter.labels(_result(error), error.reason).inc()
        raise
    counter.labels("admitted", "admitted").inc()
    if admission.superseded_session_id is not None:
        context.metrics.stops.labels("superseded").inc()
    return shapes.describe_admission(admission)


@router.post(
    "/admissions/dry-run",
    summary="What the policy would answer to an admission, writing nothing (the hub only)",
    response_model=shapes.AdmissionVerdict,
)
def check_spawn(
    body: AdmissionCheck, identity: CurrentIdentity, context: Context
) -> dict[str, Any]:
    require_hub_facing(identity, "check admissions")
    with context.db.trial() as session:
        admission = _admit(session, context, body)
    return shapes.describe_verdict(admission)


def _stopped(context: ServiceContext, stopped: Stopped) -> dict[str, Any]:
    if not stopped.already:
        context.metrics.stops.labels(stopped.reason).inc()
    return shapes.describe_stopped(stopped)


@router.post(
    "/sessions/{session_id}/stop",
    summary="Stop a session: final charge, hold released (the hub only; idempotent)",
    response_model=shapes.Stopped,
    response_model_exclude_unset=True,
)
def stop_session(
    session_id: SessionId, body: StopRequest, identity: CurrentIdentity, context: Context
) -> dict[str, Any]:
    require_hub_facing(identity, "stop sessions")
    with context.db.write() as session:
        stopped = stop(session, session_id, now_ms=context.clock(), reason=body.reason)
    return _stopped(context, stopped)


@router.post(
    "/servers/stop",
    summary="Stop the session of a user's server (the hub only; idempotent)",
    response_model=shapes.Stopped,
    response_model_exclude_unset=True,
)
def stop_server(
    body: ServerStopRequest, identity: CurrentIdentity, context: Context
) -> dict[str, Any]:
    require_hub_facing(identity, "stop sessions")
    now = context.clock()
    with context.db.write() as session:
        if body.stopped_at is None:
            session_id = latest_session_id(session, body.user, body.server_name)
        else:
            session_id = session_for_stop(session, body.user, body.server_name, body.stopped_at)
        if session_id is None:
            label = f"server {body.server_name!r}" if body.server_name else "default server"
            raise NotFound(f"No session is recorded for {body.user}'s {label}; nothing to stop.")
        if body.stopped_at is None:
            stopped = stop(session, session_id, now_ms=now, reason=body.reason)
        else:
            stopped = record_stop(
                session,
                session_id,
                stopped_ms=body.stopped_at,
                now_ms=now,
                reason=body.reason,
                actor=identity.actor,
            )
    return _stopped(context, stopped)


@router.get(
    "/sessions",
    summary="Running sessions (admins)",
    response_model=shapes.Sessions,
    response_model_exclude_unset=True,
)
def list_sessions(
    identity: CurrentIdentity,
    context: Context,
    project: ProjectSlugQuery = None,
    user: UsernameQuery = None,
) -> dict[str, Any]:
    if not identity.hub_facing:
        require_admin(identity, "list running sessions")
    now = context.clock()
    with context.db.read() as session:
        project_id = get_project(session, project).id if project else None
        rows = list_running(session, username=user, project_id=project_id)
        return {"sessions": [shapes.describe_session(row, slug, now) for row, slug in rows]}
