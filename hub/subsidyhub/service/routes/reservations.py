"""Reservations of GPUs for a project or course: list, create, cancel.

Admins reserve for any project. A project's managers (a course's lecturers) reserve for their
own project, within its ``reservable_gpus`` limit, which admins set; without it they may not.
Others see nothing here: project names do not leak to people outside them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from subsidyhub import shapes
from subsidyhub.errors import Forbidden
from subsidyhub.ledger import reservations
from subsidyhub.service.auth import ADMINS, CurrentIdentity, project_for, require_admin
from subsidyhub.service.context import Context
from subsidyhub.service.schemas import ProjectSlugQuery, ReservationCreate, ReservationId

router = APIRouter(tags=["reservations"])


@router.get(
    "/reservations",
    summary="Reservations not ended (admins: all; managers: their project's)",
    response_model=shapes.Reservations,
    response_model_exclude_unset=True,
)
def list_reservations(
    identity: CurrentIdentity,
    context: Context,
    project: ProjectSlugQuery = None,
    include_past: bool = False,
) -> dict[str, Any]:
    now = context.clock()
    with context.db.read() as session:
        if project is not None:
            project_for(session, identity, project, "list the reservations")
        elif not identity.is_admin:
            require_admin(identity, "list every project's reservations (give project=…)")
        rows = reservations.listing(session, now, project=project, include_past=include_past)
        return {"reservations": [shapes.describe_reservation(row, slug) for row, slug in rows]}


@router.post(
    "/reservations",
    status_code=201,
    summary="Reserve GPUs of a type for a project, once or weekly (admins; managers within "
    "reservable_gpus)",
    response_model=shapes.Reservation,
    response_model_exclude_unset=True,
)
def create_reservation(
    body: ReservationCreate, identity: CurrentIdentity, context: Context
) -> dict[str, Any]:
    now = context.clock()
    with context.db.write() as session:
        target = project_for(session, identity, body.project, "reserve GPUs")
        manager_limit = None
        if not identity.is_admin:
            manager_limit = target.limits.get("reservable_gpus")
            if manager_limit is None:
                raise Forbidden(
                    f"Project {target.name or target.slug}'s managers may not reserve GPUs: "
                    f"ask {ADMINS} to reserve, or to set the project's reservable_gpus."
                )
        row = reservations.create(
            session,
            context.settings,
            reservations.Request(
                body.project,
                body.gpu_type,
                body.gpus,
                body.starts,
                body.ends,
                body.weeks,
                body.note,
            ),
            actor=identity.actor,
            now_ms=now,
            manager_limit=manager_limit,
        )
        return shapes.describe_reservation(row, body.project)


@router.post(
    "/reservations/{reservation_id}/cancel",
    summary="Cancel a reservation (admins; the project's managers); repeating it is harmless",
    response_model=shapes.Reservation,
    response_model_exclude_unset=True,
)
def cancel_reservation(
    reservation_id: ReservationId, identity: CurrentIdentity, context: Context
) -> dict[str, Any]:
    now = context.clock()
    with context.db.write() as session:
        slug = reservations.project_of(session, reservation_id)
        if slug is None:
            require_admin(identity, "cancel reservations")
        else:
            project_for(session, identity, slug, "cancel the reservations")
        row = reservations.cancel(session, reservation_id, actor=identity.actor, now_ms=now)
        return shapes.describe_reservation(row, slug or "")
