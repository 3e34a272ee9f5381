"""Hub-facing: admit a spawn, stop a session; and the admins' list of running sessions.

Only the hub (the subsidy service's own token, used by the hub plugin's ``pre_spawn`` and
``post_stop`` hooks) admits and stops. An admission is one serialised write transaction
(decision, session row, hold); a refusal writes nothing and answers 403 with the policy's
reason code and a message for the person spawning. A session still open for the same server
missed its stop and is closed by the ledger first (reason ``superseded``). Stops are
idempotent, so the hook may retry: a second stop returns the same final totals.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from subsidyhub.errors import NotFound, Refused, SubsidyError
from subsidyhub.ledger.admission import Stopped, admit, find_running, stop
from subsidyhub.ledger.models import Project, SpawnSession
from subsidyhub.ledger.projects import get_project, projects_of
from subsidyhub.service import views
from subsidyhub.service.auth import CurrentIdentity, require_admin, require_hub_facing
from subsidyhub.service.context import Context, ServiceContext
from subsidyhub.service.schemas import AdmissionRequest, ServerStopRequest, StopRequest

router = APIRouter(tags=["sessions"])


def _require_known_project(session: Session, username: str, slug: str) -> None:
    """An unknown project is a 404 that lists only the user's own projects.

    The message reaches the person spawning, who should not learn other projects' names.
    """
    if session.scalar(select(Project.id).where(Project.slug == slug)) is None:
        mine = ", ".join(project.slug for project, _ in projects_of(session, username))
        raise NotFound(f"No such project: {slug}. {username}'s projects: {mine or 'none'}.")


@router.post(
    "/admissions", status_code=201, summary="Admit a spawn (the hub only)", response_model=None
)
def admit_spawn(
    body: AdmissionRequest, identity: CurrentIdentity, context: Context
) -> dict[str, Any]:
    require_hub_facing(identity, "admit spawns")
    counter = context.metrics.admissions
    try:
        with context.db.write() as session:
            if body.project:
                _require_known_project(session, body.user, body.project)
            admission = admit(
                session,
                context.settings,
                username=body.user,
                project_slug=body.project,
                profile_slug=body.profile,
                server_name=body.server_name,
                now_ms=context.clock(),
            )
    except SubsidyError as error:
        counter.labels("refused" if isinstance(error, Refused) else "invalid", error.reason).inc()
        raise
    counter.labels("admitted", "admitted").inc()
    if admission.superseded_session_id is not None:
        context.metrics.stops.labels("superseded").inc()
    return views.describe_admission(admission)


def _stopped(context: ServiceContext, stopped: Stopped) -> dict[str, Any]:
    if not stopped.already:
        context.metrics.stops.labels(stopped.reason).inc()
    return views.describe_stopped(stopped)


@router.post(
    "/sessions/{session_id}/stop",
    summary="Stop a session: final charge, hold released (the hub only; idempotent)",
    response_model=None,
)
def stop_session(
    session_id: int, body: StopRequest, identity: CurrentIdentity, context: Context
) -> dict[str, Any]:
    require_hub_facing(identity, "stop sessions")
    with context.db.write() as session:
        stopped = stop(session, session_id, now_ms=context.clock(), reason=body.reason)
    return _stopped(context, stopped)


@router.post(
    "/servers/stop",
    summary="Stop the session of a user's server (the hub only; idempotent)",
    response_model=None,
)
def stop_server(
    body: ServerStopRequest, identity: CurrentIdentity, context: Context
) -> dict[str, Any]:
    require_hub_facing(identity, "stop sessions")
    with context.db.write() as session:
        running = find_running(session, body.user, body.server_name)
        session_id = running.id if running is not None else None
        if session_id is None:
            # Already stopped: answer with the server's last session, as a repeated stop would.
            session_id = session.scalar(
                select(SpawnSession.id)
                .where(
                    SpawnSession.username == body.user,
                    SpawnSession.server_name == body.server_name,
                )
                .order_by(SpawnSession.id.desc())
                .limit(1)
            )
        if session_id is None:
            label = f"server {body.server_name!r}" if body.server_name else "default server"
            raise NotFound(f"No session is recorded for {body.user}'s {label}; nothing to stop.")
        stopped = stop(session, session_id, now_ms=context.clock(), reason=body.reason)
    return _stopped(context, stopped)


@router.get("/sessions", summary="Running sessions (admins)", response_model=None)
def list_sessions(
    identity: CurrentIdentity,
    context: Context,
    project: Annotated[str | None, Query(max_length=63)] = None,
    user: Annotated[str | None, Query(max_length=255)] = None,
) -> dict[str, Any]:
    if not identity.hub_facing:
        require_admin(identity, "list running sessions")
    now = context.clock()
    with context.db.read() as session:
        project_id = get_project(session, project).id if project else None
        rows = views.running_sessions(session, username=user, project_id=project_id)
        return {"sessions": [views.describe_session(row, slug, now) for row, slug in rows]}
