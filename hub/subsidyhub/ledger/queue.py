"""The queue for a GPU type: a place for each waiting server, offers when GPUs free, and an
honest estimate of the wait.

A spawn that finds no GPU of its type free (``gpus_busy``) may take a place instead. The
place is a row (``queue_entries``), so a hub or service restart loses nobody. When GPUs free,
:func:`make_offers` offers them to the head of the queue, in order, for
``queue.offer_minutes``: the offer holds the GPUs (capacity counts it like a running session)
until the server is admitted, the person leaves, or it expires and passes on. Nobody is
skipped: while anyone waits for a type, a spawn without an offer is refused (except into its
own project's reservation), and an entry that cannot be served yet blocks those behind it.

Order (``queue.order``): ``fifo`` is first come, first served within priority classes
(``queue.priorities`` by project kind); ``fair_share`` puts projects that used less than their
share of the type in the last 7 days first (a share is the type's GPU-hours of the week split
evenly among the projects that used it or wait for it), first come first served within each.

Entries only move forward (waiting → offered → admitted, or left / expired) and keep their
rows: the wait-time figures and "nobody skipped" can be read back. Docs: docs/gpu-capacity.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from subsidyhub.errors import InvalidInput, NotFound, Refused
from subsidyhub.ledger import audit, capacity, prices
from subsidyhub.ledger.accounts import load_accounts
from subsidyhub.ledger.admission import choose_project, evaluate, open_entry
from subsidyhub.ledger.models import Member, Project, QueueEntry, SpawnSession
from subsidyhub.ledger.projects import require_known_project
from subsidyhub.settings import Settings
from subsidyhub.timeutil import WEEK_MS, clock_time, format_duration


@dataclass(frozen=True, slots=True)
class Place:
    """One open entry as people see it: where it stands and how long it may take."""

    entry: QueueEntry
    project: str
    position: int  # 1 = next; 0 for an entry holding an offer
    gpus_ahead: int
    # When the GPUs are expected free (the usual length of sessions) and at the latest (the
    # known ends of running sessions); None where no end is known.
    estimate_ms: int | None
    latest_ms: int | None


@dataclass(frozen=True, slots=True)
class Offer:
    entry_id: int
    username: str
    server_name: str
    gpu_type: str
    gpu_count: int
    expires_ms: int
    waited_ms: int


def _open(session: Session, gpu_type: str) -> list[QueueEntry]:
    return list(
        session.scalars(
            select(QueueEntry)
            .where(QueueEntry.gpu_type == gpu_type, QueueEntry.ended_ms.is_(None))
            .order_by(QueueEntry.joined_ms, QueueEntry.id)
        )
    )


def usage_week(session: Session, gpu_type: str, now_ms: int) -> dict[int, int]:
    """GPU-milliseconds each project held of the type in the last 7 days."""
    since = now_ms - WEEK_MS
    used: dict[int, int] = defaultdict(int)
    for row in session.execute(
        select(
            SpawnSession.project_id,
            SpawnSession.gpu_count,
            SpawnSession.started_ms,
            SpawnSession.stopped_ms,
        ).where(
            SpawnSession.gpu_type == gpu_type,
            (SpawnSession.stopped_ms.is_(None)) | (SpawnSession.stopped_ms > since),
        )
    ):
        end = now_ms if row.stopped_ms is None else min(row.stopped_ms, now_ms)
        used[row.project_id] += row.gpu_count * max(0, end - max(row.started_ms, since))
    return dict(used)


def order(
    waiting: Sequence[QueueEntry],
    *,
    fair_share: bool,
    used_ms: dict[int, int],
    capacity_gpus: int,
) -> list[QueueEntry]:
    """``waiting`` in the order offers go: priority class, then (fair share) projects under
    their share of the week first, then first come first served."""
    projects = set(used_ms) | {entry.project_id for entry in waiting}
    share_ms = capacity_gpus * WEEK_MS // max(1, len(projects))

    def key(entry: QueueEntry) -> tuple[int, bool, int, int]:
        over = fair_share and used_ms.get(entry.project_id, 0) >= share_ms
        return (-entry.priority, over, entry.joined_ms, entry.id)

    return sorted(waiting, key=key)


def _ordered(
    session: Session, settings: Settings, state: capacity.TypeState, now_ms: int
) -> tuple[list[QueueEntry], list[QueueEntry]]:
    """The type's offered entries and its waiting ones in queue order."""
    entries = _open(session, state.gpu_type)
    offered = [e for e in entries if e.state == capacity.OFFERED]
    waiting = [e for e in entries if e.state == capacity.WAITING]
    fair = settings.queue.order == "fair_share"
    used = usage_week(session, state.gpu_type, now_ms) if fair else {}
    return offered, order(waiting, fair_share=fair, used_ms=used, capacity_gpus=state.capacity or 0)


def join(
    session: Session,
    settings: Settings,
    *,
    username: str,
    project_slug: str | None,
    profile_slug: str,
    server_name: str,
    now_ms: int,
) -> QueueEntry:
    """A place in the queue for a spawn that every rule but a free GPU admits.

    Idempotent for the same server and profile; a server waits in one queue at a time.
    """
    try:
        profile = settings.profile(profile_slug)
    except KeyError as error:
        raise InvalidInput(str(error.args[0])) from None
    if not profile.gpu_count or profile.gpu_type is None:
        raise InvalidInput(
            f"Profile {profile.display_name} has no GPUs, so it never waits: start it directly."
        )
    if project_slug:
        require_known_project(session, username, project_slug)
    project = choose_project(session, username, project_slug)
    gpu_type = profile.gpu_type
    label = capacity.gpu_label(gpu_type)
    capacity.lock_type(session, gpu_type)
    current = open_entry(session, username, server_name)
    if current is not None:
        if current.profile_slug == profile.slug and current.project_id == project.id:
            return current
        server = f"server {server_name!r}" if server_name else "default server"
        raise InvalidInput(
            f"Your {server} is already waiting for {capacity.gpu_label(current.gpu_type)} GPUs with "
            f"profile {current.profile_slug}; leave that queue first, then join with "
            f"{profile.display_name}."
        )
    gpus_total, _source = capacity.capacity_of(session, settings, gpu_type, now_ms)
    if gpus_total is None:
        raise InvalidInput(
            f"{label} GPUs have no queue: the centre has not declared how many it runs. Start "
            "the server directly."
        )
    if gpus_total < profile.gpu_count:
        raise Refused(
            f"The centre has {gpus_total} {label} GPUs, and {profile.display_name} needs "
            f"{profile.gpu_count}: waiting would never end. Pick a profile with fewer GPUs.",
            reason="no_gpu_capacity",
        )
    # The server has no open entry (checked above), so this counts everyone waiting.
    if capacity.waiting_count(session, gpu_type, exclude=(username, server_name)) >= (
        settings.queue.max_waiting
    ):
        raise Refused(
            f"The queue for {label} GPUs is full ({settings.queue.max_waiting} waiting). Try "
            "again later, or pick a CPU profile.",
            reason="queue_full",
        )
    price_list = prices.as_price_list(prices.current_version(session, now_ms))
    decision, _account, _hold = evaluate(
        session, settings, project, username, profile, price_list, now_ms, count_gpus=False
    )
    if not decision.allowed:
        raise Refused(decision.message, reason=decision.reason)
    entry = QueueEntry(
        username=username,
        server_name=server_name,
        project_id=project.id,
        profile_slug=profile.slug,
        gpu_type=gpu_type,
        gpu_count=profile.gpu_count,
        priority=settings.queue.priorities.get(project.kind, 0),  # type: ignore[call-overload]
        joined_ms=now_ms,
        state=capacity.WAITING,
    )
    session.add(entry)
    session.flush()
    return entry


def project_slug(session: Session, entry: QueueEntry) -> str:
    """The slug of the project an entry is charged to (for its description)."""
    return session.scalar(select(Project.slug).where(Project.id == entry.project_id)) or ""


def leave(
    session: Session, username: str, server_name: str, *, now_ms: int, actor: str
) -> QueueEntry:
    """Take a server out of its queue (its offer, if it had one, passes on)."""
    entry = open_entry(session, username, server_name)
    if entry is None:
        server = f"server {server_name!r}" if server_name else "default server"
        raise NotFound(f"{username}'s {server} is not waiting in any queue; nothing to leave.")
    capacity.lock_type(session, entry.gpu_type)
    entry.state, entry.ended_ms = capacity.LEFT, now_ms
    if actor != username:
        audit.record(
            session,
            actor,
            "queue.removed",
            f"queue:{entry.gpu_type}/{entry.id}",
            {"user": username, "server_name": server_name, "state": "waiting"},
            {"state": capacity.LEFT},
        )
    return entry


def make_offers(
    session: Session, settings: Settings, gpu_type: str, now_ms: int
) -> tuple[list[Offer], list[QueueEntry]]:
    """Expire offers not taken up, then offer free GPUs to the head of the queue, in order;
    returns the new offers and the expired entries. An entry that cannot be served blocks
    those behind it, so a 4-GPU request is not starved by 1-GPU ones."""
    capacity.lock_type(session, gpu_type)
    expired = list(
        session.scalars(
            select(QueueEntry).where(
                QueueEntry.gpu_type == gpu_type,
                QueueEntry.ended_ms.is_(None),
                QueueEntry.state == capacity.OFFERED,
                QueueEntry.offer_expires_ms <= now_ms,
            )
        )
    )
    for entry in expired:
        entry.state, entry.ended_ms = capacity.EXPIRED, now_ms
    session.flush()
    state = capacity.load_state(session, settings, gpu_type, now_ms)
    if state.capacity is None:
        return [], expired
    _offered, waiting = _ordered(session, settings, state, now_ms)
    offers: list[Offer] = []
    holders = list(state.holders)
    for entry in waiting:
        free = capacity.free_at(state.capacity, holders, state.windows, now_ms)
        if free.for_project(entry.project_id) < entry.gpu_count:
            break
        entry.state = capacity.OFFERED
        entry.offered_ms = now_ms
        entry.offer_expires_ms = now_ms + settings.queue.offer_ms
        holders.append(capacity.Holder(entry.project_id, entry.gpu_count))
        offers.append(
            Offer(
                entry.id,
                entry.username,
                entry.server_name,
                gpu_type,
                entry.gpu_count,
                entry.offer_expires_ms,
                now_ms - entry.joined_ms,
            )
        )
    return offers, expired


def places(session: Session, settings: Settings, gpu_type: str, now_ms: int) -> list[Place]:
    """Every open entry of the type with its position and wait estimate, in queue order."""
    running_projects = session.scalars(
        select(Project).where(
            Project.id.in_(
                select(SpawnSession.project_id).where(
                    SpawnSession.stopped_ms.is_(None), SpawnSession.gpu_type == gpu_type
                )
            )
        )
    ).all()
    accounts = load_accounts(session, running_projects, now_ms)
    typical = capacity.typical_session_ms(session, gpu_type, now_ms)
    state = capacity.load_state(
        session,
        settings,
        gpu_type,
        now_ms,
        exhaustion={pid: account.exhaustion_ms for pid, account in accounts.items()},
        typical_ms=typical,
    )
    offered, waiting = _ordered(session, settings, state, now_ms)
    # The slugs of the waiting projects only (not every project of the centre).
    slugs: dict[int, str] = {
        pid: slug
        for pid, slug in session.execute(
            select(Project.id, Project.slug).where(
                Project.id.in_({e.project_id for e in [*offered, *waiting]})
            )
        )
    }
    result = [Place(e, slugs.get(e.project_id, ""), 0, 0, now_ms, now_ms) for e in offered]
    queue = [(entry.project_id, entry.gpu_count) for entry in waiting]
    estimates = capacity.queue_starts(state, queue, now_ms, typical_ms=typical, expected=True)
    latest = capacity.queue_starts(state, queue, now_ms, typical_ms=typical, expected=False)
    ahead = 0
    for position, entry in enumerate(waiting, start=1):
        result.append(
            Place(
                entry,
                slugs.get(entry.project_id, ""),
                position,
                ahead,
                estimates[position - 1],
                latest[position - 1],
            )
        )
        ahead += entry.gpu_count
    return result


PlacesOf = Callable[[Session, str, int], list[Place]]


def all_places(
    session: Session,
    settings: Settings,
    now_ms: int,
    *,
    gpu_type: str | None = None,
    username: str | None = None,
    places_of: PlacesOf | None = None,
) -> list[Place]:
    """Open places of one type (or every type anyone waits for), of one user or everyone;
    ``places_of`` computes a type's places (default :func:`places`; the service's keeps them
    for a second)."""
    compute = places_of or (lambda s, name, now: places(s, settings, name, now))
    types = [gpu_type] if gpu_type else open_types(session)
    return [
        place
        for name in types
        for place in compute(session, name, now_ms)
        if username is None or place.entry.username == username
    ]


def marker(session: Session, gpu_type: str) -> tuple[int, ...]:
    """What moves whenever a place of the type changes: the newest entry, the open ones, the
    newest offer and the newest end (one small query)."""
    row = session.execute(
        select(
            func.max(QueueEntry.id),
            func.count(QueueEntry.id).filter(QueueEntry.ended_ms.is_(None)),
            func.max(QueueEntry.offered_ms),
            func.max(QueueEntry.ended_ms),
        ).where(QueueEntry.gpu_type == gpu_type)
    ).one()
    return tuple(value or 0 for value in row)


def place_of(
    session: Session, settings: Settings, username: str, server_name: str, now_ms: int
) -> Place | None:
    entry = open_entry(session, username, server_name)
    if entry is None:
        return None
    for place in places(session, settings, entry.gpu_type, now_ms):
        if place.entry.id == entry.id:
            return place
    return None


@dataclass(frozen=True, slots=True)
class TypeView:
    """One GPU type now: what the spawn page and ``capacity show`` print."""

    state: capacity.TypeState
    reserved_now: int
    # Of the reserved GPUs, how many the reserving projects use now.
    reserved_in_use: int
    free_now: int | None
    waiting: int
    next_free_ms: int | None
    next_free_latest_ms: int | None
    windows: list[capacity.Window]


# How far ahead the capacity view lists reservation windows.
VIEW_AHEAD_MS = WEEK_MS


def view(
    session: Session, settings: Settings, gpu_type: str, now_ms: int, *, estimate: bool = True
) -> TypeView:
    """The type's capacity, use, reservations and queue now, with when a GPU frees
    (``estimate=False``: without it, for readers of the counts alone, such as metrics)."""
    typical = capacity.typical_session_ms(session, gpu_type, now_ms) if estimate else None
    state = capacity.load_state(session, settings, gpu_type, now_ms, typical_ms=typical)
    free = capacity.free_now(state, now_ms)
    waiting = [e for e in _open(session, gpu_type) if e.state == capacity.WAITING]
    next_free = latest = None
    if estimate and state.capacity:
        # "For anyone": a project id no reservation names.
        ahead = [(0, entry.gpu_count) for entry in waiting] + [(0, 1)]
        next_free = capacity.queue_starts(state, ahead, now_ms, typical_ms=typical, expected=True)[
            -1
        ]
        latest = capacity.queue_starts(state, ahead, now_ms, typical_ms=typical, expected=False)[-1]
    reserved = sum(capacity.reserved_at(state.windows, now_ms).values())
    unused = sum(free.reserved.values()) if free is not None else 0
    return TypeView(
        state,
        reserved,
        reserved - unused,
        None if free is None else max(0, free.general),
        len(waiting),
        next_free,
        latest,
        sorted(
            (w for w in state.windows if w.starts_ms < now_ms + VIEW_AHEAD_MS),
            key=lambda w: w.starts_ms,
        ),
    )


def email_for(session: Session, entry_id: int) -> str | None:
    """The waiting person's address: from their membership of the entry's project (a course's
    roster), else from any of their memberships."""
    entry = session.get(QueueEntry, entry_id)
    if entry is None:
        return None
    rows = sorted(
        session.execute(
            select(Member.email, Member.project_id).where(
                Member.username == entry.username, Member.email.is_not(None)
            )
        ),
        key=lambda row: row.project_id != entry.project_id,
    )
    return rows[0].email if rows else None


def offer_email(offer: Offer, centre: str, now_ms: int) -> tuple[str, str]:
    """Subject and text of the email telling someone a GPU is held for them."""
    what = f"{offer.gpu_count} × {capacity.gpu_label(offer.gpu_type)}"
    until = clock_time(offer.expires_ms, now_ms)
    server = f"server {offer.server_name}" if offer.server_name else "server"
    subject = f"Your turn: {what} is held for you until {until}"
    body = (
        f"A GPU you were waiting for is free. {what} is held for your {server} until {until} "
        f"({format_duration(offer.expires_ms - now_ms)} from now).\n\n"
        "Start it from the hub's spawn page; a spawn page you left open starts it by itself. "
        "If it is not started by then, it passes to the next person in the queue, and you can "
        "join the queue again.\n\n"
        f"{centre}\n"
    )
    return subject, body


def open_types(session: Session) -> list[str]:
    """GPU types with anyone waiting or holding an offer."""
    return sorted(
        set(
            session.scalars(
                select(QueueEntry.gpu_type).where(QueueEntry.ended_ms.is_(None)).distinct()
            )
        )
    )
