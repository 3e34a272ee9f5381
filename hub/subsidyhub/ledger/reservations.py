"""Reservations: GPUs of a type kept for one project or course over a window, once or weekly.

"8 × mig-1g, Tuesdays 14:00–16:00, 13 weeks" is one row with ``weeks=13``. During a window
the reserved GPUs admit only the project's members (:mod:`subsidyhub.ledger.capacity`); outside
it, anyone. A reservation spends no money: the sessions in it are charged as usual.

Creating one is refused when, at any instant, the type's reservations would add up to more
than its capacity. Servers already running that would hold a GPU the window needs get their
end moved to the window's start (the latest started first), audited, and are stopped then by
the enforcer with the reason ``reservation``; admission caps later ones the same way. Admins
reserve for any project; a project's managers for their own project, up to its
``reservable_gpus`` limit at any instant. Docs: docs/gpu-capacity.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from subsidyhub.errors import InvalidInput, NotFound, Refused
from subsidyhub.ledger import audit, capacity, stops
from subsidyhub.ledger.models import Project, Reservation, SpawnSession
from subsidyhub.settings import Settings
from subsidyhub.timeutil import WEEK_MS, format_duration, iso

# A reservation reaches at most two years ahead, repeats for at most two years of weeks.
MAX_AHEAD_MS = 2 * 52 * WEEK_MS
MAX_WEEKS = 104
# A window lasts a minute at least and a week at most (a weekly one must not meet itself).
MIN_WINDOW_MS = 60_000
MAX_NOTE = 200


@dataclass(frozen=True, slots=True)
class Request:
    project: str
    gpu_type: str
    gpu_count: int
    starts_ms: int
    ends_ms: int
    weeks: int = 1
    note: str = ""


def _check_shape(session: Session, request: Request, settings: Settings, now_ms: int) -> int:
    """Bounds of one request; returns the type's capacity."""
    if request.gpu_type not in settings.prices.gpu:
        allowed = ", ".join(sorted(settings.prices.gpu)) or "none"
        raise InvalidInput(f"unknown GPU type {request.gpu_type!r}; GPU types: {allowed}")
    gpus, _source = capacity.capacity_of(session, settings, request.gpu_type, now_ms)
    label = capacity.gpu_label(request.gpu_type)
    if gpus is None:
        raise InvalidInput(
            f"{label} GPUs cannot be reserved: the centre has not declared how many it runs "
            "(gpu_capacity in the config)."
        )
    if not 1 <= request.gpu_count <= gpus:
        raise InvalidInput(
            f"gpus {request.gpu_count} is out of range; the centre has {gpus} {label} GPUs, "
            f"reserve 1 to {gpus}"
        )
    length = request.ends_ms - request.starts_ms
    if not MIN_WINDOW_MS <= length <= WEEK_MS:
        raise InvalidInput(
            f"the window lasts {format_duration(max(0, length))}; give an end 1 minute to 7 days "
            "after its start"
        )
    if not 1 <= request.weeks <= MAX_WEEKS:
        raise InvalidInput(f"weeks {request.weeks} is out of range; give 1 to {MAX_WEEKS}")
    last_end = request.ends_ms + (request.weeks - 1) * WEEK_MS
    if last_end <= now_ms:
        raise InvalidInput(
            f"the reservation ends at {iso(last_end)}, in the past; give a future window"
        )
    if request.starts_ms > now_ms + MAX_AHEAD_MS:
        raise InvalidInput(
            f"the reservation starts at {iso(request.starts_ms)}, more than two years ahead"
        )
    if len(request.note) > MAX_NOTE:
        raise InvalidInput(f"note has {len(request.note)} characters; give at most {MAX_NOTE}")
    return gpus


def peak(windows: Sequence[capacity.Window], project_id: int | None = None) -> tuple[int, int]:
    """The most GPUs the windows (of ``project_id``, or all) reserve at one instant, and when."""
    chosen = [w for w in windows if project_id is None or w.project_id == project_id]
    best, when = 0, 0
    for window in chosen:
        at = window.starts_ms
        total = sum(w.gpu_count for w in chosen if w.covers(at))
        if total > best:
            best, when = total, at
    return best, when


def create(
    session: Session,
    settings: Settings,
    request: Request,
    *,
    actor: str,
    now_ms: int,
    manager_limit: int | None = None,
) -> Reservation:
    """Write a reservation after its checks; ``manager_limit`` is the project's
    ``reservable_gpus`` when a manager (not an admin) asks."""
    gpus = _check_shape(session, request, settings, now_ms)
    project = session.scalars(
        select(Project).where(Project.slug == request.project).with_for_update()
    ).first()
    if project is None:
        raise NotFound(f"No such project: {request.project}")
    if project.status != "active":
        raise Refused(
            f"Project {project.name or project.slug} is {project.status}; reserve for an "
            "active project.",
            reason="project_inactive",
        )
    capacity.lock_type(session, request.gpu_type)
    label = capacity.gpu_label(request.gpu_type)
    new = [
        capacity.Window(0, project.id, project.name or project.slug, request.gpu_count, s, e)
        for s, e in capacity.occurrences(request.starts_ms, request.ends_ms, request.weeks)
    ]
    existing = capacity.load_windows(session, request.gpu_type, now_ms)
    total, when = peak([*existing, *new])
    if total > gpus:
        raise Refused(
            f"At {iso(when)} the reservations of {label} GPUs would add up to {total} of the "
            f"{gpus} there are; reserve fewer GPUs or another window.",
            reason="reservations_exceed_capacity",
        )
    if manager_limit is not None:
        own, own_when = peak([*existing, *new], project.id)
        if own > manager_limit:
            raise Refused(
                f"Project {project.name or project.slug} may reserve {manager_limit} GPUs at "
                f"once, and at {iso(own_when)} it would hold {own}. Ask the centre's admins "
                "for more.",
                reason="reservable_gpus",
            )
    row = Reservation(
        project_id=project.id,
        gpu_type=request.gpu_type,
        gpu_count=request.gpu_count,
        starts_ms=request.starts_ms,
        ends_ms=request.ends_ms,
        weeks=request.weeks,
        note=request.note,
        created_by=actor,
        created_ms=now_ms,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "reservation.created",
        f"project:{project.slug}/reservations/{row.id}",
        None,
        _evidence(row),
    )
    _cap_running(session, settings, request.gpu_type, now_ms, actor)
    return row


def _cap_running(
    session: Session, settings: Settings, gpu_type: str, now_ms: int, actor: str
) -> list[int]:
    """End running servers at the start of a window they would take a GPU from (the latest
    started first); returns their session ids."""
    state = capacity.load_state(session, settings, gpu_type, now_ms)
    if state.capacity is None:
        return []
    rows = {
        (row.username, row.server_name): row
        for row in session.scalars(
            select(SpawnSession).where(
                SpawnSession.stopped_ms.is_(None), SpawnSession.gpu_type == gpu_type
            )
        )
    }
    capped: list[int] = []
    holders = list(state.holders)
    for window in sorted(state.windows, key=lambda w: w.starts_ms):
        at = window.starts_ms
        if at <= now_ms:
            continue
        while True:
            running = [h for h in holders if h.known_end_ms is None or h.known_end_ms > at]
            free = capacity.free_at(state.capacity, running, state.windows, at)
            if free.general >= 0:
                break
            reserved = capacity.reserved_at(state.windows, at)
            victims = [h for h in running if h.offer_id is None and h.project_id not in reserved]
            if not victims:
                break
            victim = max(victims, key=lambda h: rows[(h.username, h.server_name)].started_ms)
            row = rows[(victim.username, victim.server_name)]
            before = {"max_stop": iso(row.max_stop_ms), "reason": row.max_stop_reason}
            row.max_stop_ms, row.max_stop_reason = at, stops.RESERVATION
            audit.record(
                session,
                actor,
                "session.end_moved",
                f"sessions/{row.id}",
                before,
                {"max_stop": iso(at), "reason": stops.RESERVATION, "for": window.project_name},
            )
            capped.append(row.id)
            ended = replace(victim, known_end_ms=at, expected_end_ms=at)
            holders = [h if h is not victim else ended for h in holders]
    return capped


def project_of(session: Session, reservation_id: int) -> str | None:
    """The slug of a reservation's project; ``None`` if there is no such reservation."""
    return session.scalar(
        select(Project.slug)
        .join(Reservation, Reservation.project_id == Project.id)
        .where(Reservation.id == reservation_id)
    )


def cancel(session: Session, reservation_id: int, *, actor: str, now_ms: int) -> Reservation:
    """Cancel a reservation (its row stays, marked); cancelling twice is harmless."""
    row = session.get(Reservation, reservation_id, with_for_update=True)
    if row is None:
        raise NotFound(f"No such reservation: {reservation_id}")
    if row.cancelled_ms is None:
        row.cancelled_ms, row.cancelled_by = now_ms, actor
        slug = session.scalar(select(Project.slug).where(Project.id == row.project_id)) or ""
        audit.record(
            session,
            actor,
            "reservation.cancelled",
            f"project:{slug}/reservations/{row.id}",
            {"cancelled": None},
            {"cancelled": iso(now_ms)},
        )
    return row


def listing(
    session: Session, now_ms: int, *, project: str | None = None, include_past: bool = False
) -> list[tuple[Reservation, str]]:
    """Reservations not cancelled whose last window has not ended, with the project's slug,
    by first start; ``include_past`` adds ended and cancelled ones."""
    query = select(Reservation, Project.slug).join(Project, Project.id == Reservation.project_id)
    if project is not None:
        query = query.where(Project.slug == project)
    rows = [
        (row, slug)
        for row, slug in session.execute(query.order_by(Reservation.starts_ms, Reservation.id))
    ]
    if include_past:
        return rows
    return [
        (row, slug)
        for row, slug in rows
        if row.cancelled_ms is None and row.ends_ms + (row.weeks - 1) * WEEK_MS > now_ms
    ]


def _evidence(row: Reservation) -> dict[str, object]:
    """What the audit keeps of a new reservation."""
    return {
        "gpu_type": row.gpu_type,
        "gpus": row.gpu_count,
        "starts": iso(row.starts_ms),
        "ends": iso(row.ends_ms),
        "weeks": row.weeks,
        "note": row.note,
    }
