"""GPUs per type: how many the centre has, how many are free now and for whom, and when more
will be.

At 80–90% utilisation a GPU spawn often finds nothing free; letting it through means a pod
Pending until ``start_timeout`` on Kubernetes, or a refusal from the host's pool after the
money was held. So admission counts the GPUs of the type that admitted sessions and open
offers hold against the type's capacity (:meth:`Settings.gpu_capacity_of`), inside the same
serialised transaction as the money (:func:`lock_type`), and racing spawns never exceed it.

Reservations (:mod:`subsidyhub.ledger.reservations`) split a type's capacity during their
windows: a project's reserved GPUs admit only its members, the rest admit anyone. A project's
own sessions fill its reservation first and overflow into the general pool. A session admitted
before a window is capped at the window's start when it would otherwise hold a GPU the window
needs (:func:`reservation_cap`).

The arithmetic is pure (a :class:`TypeState` in, numbers out), so it is table-tested, and the
wait estimate (:func:`first_free`) walks the same function forward in time over the known
and expected ends of running sessions and the windows' edges. Docs: docs/gpu-capacity.md.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from subsidyhub.ledger.models import (
    ObservedCapacity,
    Project,
    QueueEntry,
    Reservation,
    SpawnSession,
)
from subsidyhub.settings import Settings
from subsidyhub.timeutil import MS_PER_HOUR, WEEK_MS

# The high half of the GPU types' advisory lock keys: the ledger's other keys (the tick, the
# migration, the leader) are small numbers, so a type's key never meets one of them.
GPU_LOCK_SPACE = 0x5B5D_0100 << 32

# A queue entry's states (``queue_entries.state``): open while waiting or offered; it ends
# admitted, left (the person, or an admin, took it out) or expired (an offer not taken up).
WAITING = "waiting"
OFFERED = "offered"
ADMITTED = "admitted"
LEFT = "left"
EXPIRED = "expired"


def gpu_label(gpu_type: str) -> str:
    """A GPU type as people read it: ``h800`` → ``H800``, ``mig-1g`` → ``MIG-1G``."""
    return gpu_type.upper()


@dataclass(frozen=True, slots=True)
class Window:
    """One occurrence of a reservation."""

    reservation_id: int
    project_id: int
    project_name: str
    gpu_count: int
    starts_ms: int
    ends_ms: int

    def covers(self, at_ms: int) -> bool:
        return self.starts_ms <= at_ms < self.ends_ms


@dataclass(frozen=True, slots=True)
class Holder:
    """GPUs held now: a running session, or an offer not yet claimed (which ends unknown).

    ``known_end_ms`` is the latest it can run (session cap, weekly hours, a reservation, the
    subsidy running out); ``expected_end_ms`` is a guess from how long sessions of the type
    usually run, never later than the known end.
    """

    project_id: int
    gpu_count: int
    known_end_ms: int | None = None
    expected_end_ms: int | None = None
    username: str = ""
    server_name: str = ""
    offer_id: int | None = None
    # A running session whose GPUs are all idle now (ledger.idle: ``idle_since_ms`` is set).
    idle: bool = False


@dataclass(frozen=True, slots=True)
class TypeState:
    gpu_type: str
    capacity: int | None
    source: str
    holders: tuple[Holder, ...] = ()
    windows: tuple[Window, ...] = ()

    def without_offer_of(self, username: str, server_name: str) -> TypeState:
        """The state as the holder of an offer sees it: its own offer is what it claims."""
        kept = tuple(
            h
            for h in self.holders
            if h.offer_id is None or (h.username, h.server_name) != (username, server_name)
        )
        return replace(self, holders=kept)

    def offer_of(self, username: str, server_name: str) -> Holder | None:
        for holder in self.holders:
            if holder.offer_id is not None and (holder.username, holder.server_name) == (
                username,
                server_name,
            ):
                return holder
        return None

    @property
    def in_use(self) -> int:
        return sum(h.gpu_count for h in self.holders)

    @property
    def gpus_idle(self) -> int:
        """GPUs of running servers that do no work now (held, so counted in ``in_use``)."""
        return sum(h.gpu_count for h in self.holders if h.idle)


@dataclass(frozen=True, slots=True)
class Free:
    """Free GPUs at one instant: the general pool, and each project's unused reserved GPUs."""

    general: int
    reserved: dict[int, int] = field(default_factory=dict)

    def for_project(self, project_id: int) -> int:
        return max(0, self.general) + self.reserved.get(project_id, 0)


def occurrences(starts_ms: int, ends_ms: int, weeks: int) -> list[tuple[int, int]]:
    """The windows of a reservation: once, or the same hours every week for ``weeks`` weeks."""
    return [(starts_ms + k * WEEK_MS, ends_ms + k * WEEK_MS) for k in range(weeks)]


def reserved_at(windows: Iterable[Window], at_ms: int) -> dict[int, int]:
    """GPUs reserved at ``at_ms``, by project."""
    reserved: dict[int, int] = defaultdict(int)
    for window in windows:
        if window.covers(at_ms):
            reserved[window.project_id] += window.gpu_count
    return dict(reserved)


def free_at(
    capacity: int, holders: Iterable[Holder], windows: Sequence[Window], at_ms: int
) -> Free:
    """Free GPUs at ``at_ms`` with ``holders`` holding theirs: each project's holders fill its
    reservation first, the rest (and everyone else's) count against the general pool."""
    reserved = reserved_at(windows, at_ms)
    used: dict[int, int] = defaultdict(int)
    for holder in holders:
        used[holder.project_id] += holder.gpu_count
    general_used = 0
    unused_reserved: dict[int, int] = {}
    for project_id, gpus in used.items():
        inside = min(gpus, reserved.get(project_id, 0))
        general_used += gpus - inside
    for project_id, gpus in reserved.items():
        unused_reserved[project_id] = gpus - min(gpus, used.get(project_id, 0))
    return Free(capacity - sum(reserved.values()) - general_used, unused_reserved)


def free_now(state: TypeState, now_ms: int) -> Free | None:
    """What is free now; ``None`` when the type's capacity is unknown (nothing is counted)."""
    if state.capacity is None:
        return None
    return free_at(state.capacity, state.holders, state.windows, now_ms)


def _running_at(holder: Holder, at_ms: int, *, expected: bool) -> bool:
    end = holder.expected_end_ms if expected else holder.known_end_ms
    return end is None or end > at_ms


def reservation_cap(
    state: TypeState, project_id: int, gpu_count: int, now_ms: int
) -> Window | None:
    """The first upcoming window a new session (``gpu_count`` GPUs for ``project_id``) would
    take a reserved GPU from if it ran into it: the session must end at that window's start.

    Sessions already running count as running until their known end; a window of the
    session's own project counts in its favour.
    """
    if state.capacity is None:
        return None
    newcomer = Holder(project_id, gpu_count)
    for window in sorted(state.windows, key=lambda w: w.starts_ms):
        if window.starts_ms <= now_ms or window.project_id == project_id:
            continue
        at = window.starts_ms
        holders = [h for h in state.holders if _running_at(h, at, expected=False)]
        if free_at(state.capacity, [*holders, newcomer], state.windows, at).general < 0:
            return window
    return None


def _edges(
    holders: Iterable[Holder], windows: Iterable[Window], since_ms: int, *, expected: bool
) -> list[int]:
    """The instants from ``since_ms`` on at which what is free can change: ends of holders,
    windows' edges."""
    edges = {since_ms}
    for holder in holders:
        end = holder.expected_end_ms if expected else holder.known_end_ms
        if end is not None and end > since_ms:
            edges.add(end)
    for window in windows:
        edges.update(t for t in (window.starts_ms, window.ends_ms) if t > since_ms)
    return sorted(edges)


def first_free(
    capacity: int,
    holders: Sequence[Holder],
    windows: Sequence[Window],
    project_id: int,
    needed: int,
    since_ms: int,
    *,
    expected: bool,
) -> int | None:
    """The first instant from ``since_ms`` at which ``needed`` GPUs are free for
    ``project_id`` if holders end as known (``expected=False``; ``None`` when holders without
    a known end would have to stop) or as they usually do (``expected=True``)."""
    if needed > capacity:
        return None
    for at in _edges(holders, windows, since_ms, expected=expected):
        running = [h for h in holders if _running_at(h, at, expected=expected)]
        if free_at(capacity, running, windows, at).for_project(project_id) >= needed:
            return at
    return None


def queue_starts(
    state: TypeState,
    queue: Sequence[tuple[int, int]],
    now_ms: int,
    *,
    typical_ms: int | None,
    expected: bool,
) -> list[int | None]:
    """When each of ``queue`` (project id, GPUs; in order) would start: each takes its GPUs
    at the first instant they are free, never before the one ahead of it, and then holds
    them for the usual length of a session (``expected``) or for an unknown time (the
    latest: no promise beyond the known ends). ``None`` from the first that cannot be
    placed on."""
    if state.capacity is None:
        return [None] * len(queue)
    holders = list(state.holders)
    starts: list[int | None] = []
    since = now_ms
    for project_id, gpus in queue:
        at = first_free(
            state.capacity, holders, state.windows, project_id, gpus, since, expected=expected
        )
        if at is None:
            return starts + [None] * (len(queue) - len(starts))
        starts.append(at)
        since = at
        end = at + typical_ms if expected and typical_ms is not None else None
        holders.append(Holder(project_id, gpus, None, end))
    return starts


@dataclass(frozen=True, slots=True)
class Slot:
    """One hour of a type's calendar, as known now: reserved, held by servers still running
    then (until their known ends), and free for anyone."""

    at_ms: int
    reserved: int
    running: int
    free: int


def calendar(state: TypeState, start_ms: int, hours: int) -> list[Slot]:
    """The type's next ``hours`` from ``start_ms``, each at its start: what admins plan with
    (a reservation that would not fit shows as no free GPUs)."""
    if state.capacity is None:
        return []
    slots = []
    for n in range(hours):
        at = start_ms + n * MS_PER_HOUR
        holders = [h for h in state.holders if _running_at(h, at, expected=False)]
        free = free_at(state.capacity, holders, state.windows, at)
        slots.append(
            Slot(
                at,
                sum(reserved_at(state.windows, at).values()),
                sum(h.gpu_count for h in holders),
                max(0, free.general),
            )
        )
    return slots


# -- reads and the lock ---------------------------------------------------------------------


def lock_type(session: Session, gpu_type: str) -> None:
    """Serialise every transaction that hands out GPUs of ``gpu_type`` (admission, offers,
    reservations), whatever project they are for.

    PostgreSQL: a transaction-scoped advisory lock keyed by the type (released at commit);
    SQLite: ``BEGIN IMMEDIATE`` serialises all writers already. Taken after the project's row
    lock, never before it, so the order is the ledger's (project, then type).
    """
    if session.get_bind().dialect.name == "postgresql":
        key = GPU_LOCK_SPACE | zlib.crc32(gpu_type.encode())
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


# An observation older than this many refresh intervals is not trusted: the configured
# capacity counts again (a leader that stopped reading, an API server that stopped answering).
OBSERVATION_LIFETIMES = 3


def capacity_of(
    session: Session, settings: Settings, gpu_type: str, now_ms: int
) -> tuple[int | None, str]:
    """The type's capacity and its source: the cluster's nodes when ``kubernetes.
    capacity_from_nodes`` read them recently, else :meth:`Settings.gpu_capacity_of`."""
    k8s = settings.kubernetes
    if settings.backend == "kubernetes" and k8s.capacity_from_nodes:
        row = session.get(ObservedCapacity, gpu_type)
        fresh_ms = int(OBSERVATION_LIFETIMES * k8s.capacity_refresh_seconds * 1000)
        if row is not None and now_ms - row.observed_ms <= fresh_ms:
            return row.gpus, "cluster"
    return settings.gpu_capacity_of(gpu_type)


def record_observed(session: Session, observed: dict[str, tuple[int, int]], now_ms: int) -> None:
    """Replace the observed capacity of each type (GPUs, nodes) read from the cluster."""
    for gpu_type, (gpus, nodes) in observed.items():
        row = session.get(ObservedCapacity, gpu_type)
        if row is None:
            session.add(
                ObservedCapacity(gpu_type=gpu_type, gpus=gpus, nodes=nodes, observed_ms=now_ms)
            )
        else:
            row.gpus, row.nodes, row.observed_ms = gpus, nodes, now_ms


def load_windows(session: Session, gpu_type: str, now_ms: int) -> list[Window]:
    """Windows of the type's reservations that have not ended (cancelled ones excluded)."""
    rows = session.execute(
        select(Reservation, Project.name, Project.slug)
        .join(Project, Project.id == Reservation.project_id)
        .where(Reservation.gpu_type == gpu_type, Reservation.cancelled_ms.is_(None))
    ).all()
    windows = []
    for row, name, slug in rows:
        for starts, ends in occurrences(row.starts_ms, row.ends_ms, row.weeks):
            if ends > now_ms:
                windows.append(
                    Window(row.id, row.project_id, name or slug, row.gpu_count, starts, ends)
                )
    return windows


def load_state(
    session: Session,
    settings: Settings,
    gpu_type: str,
    now_ms: int,
    *,
    exhaustion: dict[int, int | None] | None = None,
    typical_ms: int | None = None,
) -> TypeState:
    """The type's capacity, holders and windows as this transaction sees them.

    ``exhaustion`` (project id → when its subsidy runs out) and ``typical_ms`` (how long a
    session of the type usually runs) refine the holders' ends for wait estimates; admission
    needs neither.
    """
    capacity, source = capacity_of(session, settings, gpu_type, now_ms)
    holders: list[Holder] = []
    for row in session.execute(
        select(
            SpawnSession.project_id,
            SpawnSession.gpu_count,
            SpawnSession.started_ms,
            SpawnSession.max_stop_ms,
            SpawnSession.username,
            SpawnSession.server_name,
            SpawnSession.idle_since_ms,
        ).where(SpawnSession.stopped_ms.is_(None), SpawnSession.gpu_type == gpu_type)
    ):
        ends = [row.max_stop_ms, (exhaustion or {}).get(row.project_id)]
        known = min((e for e in ends if e is not None), default=None)
        expected = None if typical_ms is None else max(now_ms, row.started_ms + typical_ms)
        if known is not None:
            expected = known if expected is None else min(expected, known)
        holders.append(
            Holder(
                row.project_id,
                row.gpu_count,
                known,
                expected,
                row.username,
                row.server_name,
                idle=row.idle_since_ms is not None,
            )
        )
    for entry in session.scalars(
        select(QueueEntry).where(
            QueueEntry.gpu_type == gpu_type,
            QueueEntry.ended_ms.is_(None),
            QueueEntry.state == OFFERED,
        )
    ):
        holders.append(
            Holder(
                entry.project_id,
                entry.gpu_count,
                None,
                None if typical_ms is None else now_ms + typical_ms,
                entry.username,
                entry.server_name,
                entry.id,
            )
        )
    return TypeState(
        gpu_type,
        capacity,
        source,
        tuple(holders),
        tuple(load_windows(session, gpu_type, now_ms)),
    )


def waiting_count(session: Session, gpu_type: str, *, exclude: tuple[str, str]) -> int:
    """People waiting for the type, besides the server ``exclude`` (user, server name)."""
    username, server_name = exclude
    count = session.scalar(
        select(func.count())
        .select_from(QueueEntry)
        .where(
            QueueEntry.gpu_type == gpu_type,
            QueueEntry.ended_ms.is_(None),
            QueueEntry.state == WAITING,
            ~((QueueEntry.username == username) & (QueueEntry.server_name == server_name)),
        )
    )
    return int(count or 0)


def typical_session_ms(session: Session, gpu_type: str, now_ms: int) -> int | None:
    """The median length of the type's sessions that ended in the last 7 days, if any."""
    lengths = sorted(
        stopped - started
        for started, stopped in session.execute(
            select(SpawnSession.started_ms, SpawnSession.stopped_ms).where(
                SpawnSession.gpu_type == gpu_type,
                SpawnSession.stopped_ms > now_ms - WEEK_MS,
            )
        )
        if stopped is not None
    )
    return lengths[len(lengths) // 2] if lengths else None


def gpu_types(settings: Settings) -> list[str]:
    """The GPU types the centre offers: those with a capacity and those a profile uses."""
    offered = set(settings.gpu_capacity) | {p.gpu_type for p in settings.profiles if p.gpu_type}
    return sorted(offered)
