"""GPU capacity and the queue: what is free per type, a place to wait, leaving it.

Anyone signed in reads the capacity (the spawn page shows it to everyone). A place is taken
for a user by the hub (the spawn page's "Join the queue") or by the user themself; admins see
and clear every queue, a user sees their own places. Offers are made by the service's
enforcer, not here (:mod:`subsidyhub.service.enforcer`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from subsidyhub import shapes
from subsidyhub.ledger import capacity, queue
from subsidyhub.service.auth import CurrentIdentity, require_admin, require_user_or_admin
from subsidyhub.service.context import Context
from subsidyhub.service.schemas import GpuTypeQuery, QueueJoin, QueueLeave, UsernameQuery
from subsidyhub.timeutil import MS_PER_HOUR

router = APIRouter(tags=["capacity"])


@router.get(
    "/capacity",
    summary="GPUs per type: capacity, in use, reserved, free now, queue and next free",
    response_model=shapes.Capacity,
    response_model_exclude_unset=True,
)
def read_capacity(identity: CurrentIdentity, context: Context) -> dict[str, Any]:
    now = context.clock()
    with context.db.read() as session:
        views = [
            queue.view(session, context.settings, gpu_type, now)
            for gpu_type in capacity.gpu_types(context.settings)
        ]
    return {"gpu_types": [shapes.describe_type_view(view) for view in views]}


@router.get(
    "/capacity/calendar",
    summary="Each GPU type's next 7 days by the hour: reserved, running, free (admins)",
    response_model=shapes.CapacityCalendars,
    response_model_exclude_unset=True,
)
def read_calendar(identity: CurrentIdentity, context: Context) -> dict[str, Any]:
    require_admin(identity, "read the capacity calendar")
    now = context.clock()
    hour_start = now - now % MS_PER_HOUR
    with context.db.read() as session:
        states = [
            capacity.load_state(session, context.settings, gpu_type, now)
            for gpu_type in capacity.gpu_types(context.settings)
        ]
    return {
        "calendars": [
            shapes.describe_calendar(state, capacity.calendar(state, hour_start, 7 * 24))
            for state in states
            if state.capacity is not None
        ]
    }


@router.get(
    "/queue",
    summary="Places in the GPU queues: every place (admins, the hub) or the caller's own",
    response_model=shapes.Queue,
    response_model_exclude_unset=True,
)
def read_queue(
    identity: CurrentIdentity,
    context: Context,
    gpu_type: GpuTypeQuery = None,
    user: UsernameQuery = None,
) -> dict[str, Any]:
    everyone = identity.is_admin or identity.hub_facing
    if user is not None:
        require_user_or_admin(identity, user, "read the queue places")
    elif not everyone:
        user = identity.name
    now = context.clock()
    with context.db.read() as session:
        places = queue.all_places(
            session,
            context.settings,
            now,
            gpu_type=gpu_type,
            username=user,
            places_of=context.queue_places.of_type,
        )
    return {"places": [shapes.describe_place(place) for place in places]}


@router.post(
    "/queue",
    status_code=201,
    summary="Take a place in the queue for a GPU server (the hub, or the user themself)",
    response_model=shapes.QueuePlace,
    response_model_exclude_unset=True,
)
def join_queue(body: QueueJoin, identity: CurrentIdentity, context: Context) -> dict[str, Any]:
    require_user_or_admin(identity, body.user, "join a queue")
    now = context.clock()
    with context.db.write() as session:
        entry = queue.join(
            session,
            context.settings,
            username=body.user,
            project_slug=body.project,
            profile_slug=body.profile,
            server_name=body.server_name,
            now_ms=now,
        )
        entry_id = entry.id
    with context.db.read() as session:
        place = queue.place_of(session, context.settings, body.user, body.server_name, now)
        if place is not None and place.entry.id == entry_id:
            return shapes.describe_place(place)
        return shapes.describe_entry(entry, queue.project_slug(session, entry))


@router.post(
    "/queue/leave",
    summary="Leave the queue (the user, an admin or the hub); an offer held passes on",
    response_model=shapes.QueuePlace,
    response_model_exclude_unset=True,
)
def leave_queue(body: QueueLeave, identity: CurrentIdentity, context: Context) -> dict[str, Any]:
    require_user_or_admin(identity, body.user, "leave a queue")
    now = context.clock()
    with context.db.write() as session:
        entry = queue.leave(session, body.user, body.server_name, now_ms=now, actor=identity.actor)
        return shapes.describe_entry(entry, queue.project_slug(session, entry))
