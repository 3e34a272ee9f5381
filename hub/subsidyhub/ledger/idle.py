"""Idle GPUs: each GPU server's samples, its idle time, the warning, "Keep it" and the stop.

A GPU left allocated to a server that does no GPU work costs subsidy and blocks people who
wait for it, and JupyterHub's culler cannot see it (an open tab counts as activity). So the
service reads every GPU server's utilisation each ``idle_gpu.sample_seconds`` and records
it here (:func:`record`):

* a sample is **idle** when the busiest of the server's GPUs is below
  ``idle_gpu.threshold_percent``; memory held counts for nothing (a loaded model that computes
  nothing is idle), and neither does a running kernel;
* it covers the wall time since the server's previous sample (at most two sample periods: a
  gap while the source was away is not counted as idle), and idle samples add that time to
  ``sessions.idle_gpu_ms``, which statements report as waste; the sample row keeps what it
  added, so the total can be checked against the samples;
* ``idle_since_ms`` is where the current idle stretch began; a busy sample clears it.

The server is stopped (reason ``idle_gpu``) once it has been idle for the project's
``idle_gpu_hours`` (unset: ``idle_gpu.stop_after_minutes``; 0: never), provided its latest
sample is fresh: a source that stopped answering never stops anyone. From
``idle_gpu.warn_before_minutes`` before that, ``GET me`` carries a warning, and its owner may
press Keep it once per server (:func:`keep`, audited): the idle clock starts again from then.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from subsidyhub.errors import Conflict, NotFound
from subsidyhub.ledger import audit, stops
from subsidyhub.ledger.enforcement import StopOrder
from subsidyhub.ledger.models import GpuSample, IdleGpuDay, Project, SpawnSession
from subsidyhub.limits import BY_NAME
from subsidyhub.settings import Settings
from subsidyhub.timeutil import DAY_MS, clock_time, iso

IDLE_GPU = stops.IDLE_GPU
LIMIT = BY_NAME["idle_gpu_hours"]
# The most samples one server's plot carries.
MAX_PLOT_SAMPLES = 720


class Reading(Protocol):
    """One read of a server's GPUs (the service's ``GpuReading``)."""

    @property
    def utilisation_pct(self) -> int: ...

    @property
    def memory_mib(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Target:
    """A running GPU server and where its GPUs are read."""

    session_id: int
    gpu_devices: tuple[str, ...]
    pod: str | None


def targets(session: Session) -> list[Target]:
    """Every running GPU server, with its devices or pod."""
    rows = session.execute(
        select(SpawnSession.id, SpawnSession.gpu_devices, SpawnSession.pod_name).where(
            SpawnSession.stopped_ms.is_(None), SpawnSession.gpu_count > 0
        )
    )
    return [Target(row.id, tuple(row.gpu_devices or ()), row.pod_name) for row in rows]


def stop_after_ms(project_limits: Mapping[str, Any] | None, settings: Settings) -> int | None:
    """How long a project's servers may sit idle: its own limit, else the centre's; ``None``
    where they are never stopped for it (a limit of 0)."""
    own = (project_limits or {}).get(LIMIT.name)
    if own is None:
        return settings.idle_gpu.stop_after_ms
    return int(own) or None


def stops_at(
    idle_since_ms: int | None, project_limits: Mapping[str, Any] | None, settings: Settings
) -> int | None:
    """When a server idle since ``idle_since_ms`` is stopped; ``None`` while it is busy or
    where its project's servers are never stopped for idle GPUs."""
    after = stop_after_ms(project_limits, settings)
    return None if idle_since_ms is None or after is None else idle_since_ms + after


def record(
    session: Session, settings: Settings, readings: Mapping[int, Reading], now_ms: int
) -> dict[str, int]:
    """Record one round of readings (by session id) taken at ``now_ms``; returns the GPUs of
    idle servers by type. Samples older than the plot's window are deleted."""
    config = settings.idle_gpu
    idle_gpus: dict[str, int] = {}
    if readings:
        running = session.scalars(
            select(SpawnSession).where(
                SpawnSession.id.in_(list(readings)), SpawnSession.stopped_ms.is_(None)
            )
        ).all()
        # The idle days a span can touch (it is at most two periods long), loaded at once.
        first_day = now_ms - 2 * config.sample_ms
        days = {
            (day.session_id, day.day_ms): day
            for day in session.scalars(
                select(IdleGpuDay).where(
                    IdleGpuDay.session_id.in_([row.id for row in running]),
                    IdleGpuDay.day_ms >= first_day - first_day % DAY_MS,
                )
            )
        }
        for row in running:
            reading = readings[row.id]
            previous = row.gpu_sampled_ms if row.gpu_sampled_ms is not None else row.started_ms
            span = max(0, min(now_ms - previous, 2 * config.sample_ms))
            idle = reading.utilisation_pct < config.threshold_percent
            idle_ms = span if idle else 0
            session.add(
                GpuSample(
                    session_id=row.id,
                    at_ms=now_ms,
                    utilisation_pct=max(0, min(100, reading.utilisation_pct)),
                    memory_mib=max(0, reading.memory_mib),
                    idle_ms=idle_ms,
                )
            )
            row.idle_gpu_ms += idle_ms
            _add_to_days(session, days, row.id, now_ms - idle_ms, now_ms)
            row.gpu_sampled_ms = now_ms
            if idle:
                gpu_type = row.gpu_type or ""
                idle_gpus[gpu_type] = idle_gpus.get(gpu_type, 0) + row.gpu_count
                if row.idle_since_ms is None:
                    row.idle_since_ms = now_ms - span
            else:
                row.idle_since_ms = None
    session.execute(delete(GpuSample).where(GpuSample.at_ms < now_ms - config.window_ms))
    return idle_gpus


def _add_to_days(
    session: Session,
    days: dict[tuple[int, int], IdleGpuDay],
    session_id: int,
    start_ms: int,
    end_ms: int,
) -> None:
    """Add the idle span [start, end) to the session's UTC days (a span may cross midnight);
    ``days`` holds the rows loaded already, and gains those added."""
    while start_ms < end_ms:
        day = start_ms - start_ms % DAY_MS
        part = min(end_ms, day + DAY_MS) - start_ms
        existing = days.get((session_id, day))
        if existing is None:
            days[(session_id, day)] = IdleGpuDay(session_id=session_id, day_ms=day, idle_ms=part)
            session.add(days[(session_id, day)])
        else:
            existing.idle_ms += part
        start_ms += part


@dataclass(frozen=True, slots=True)
class IdleServer:
    """A running server whose GPUs are idle now, with its stop deadline (``None``: never)."""

    session_id: int
    username: str
    server_name: str
    project: str
    idle_since_ms: int
    stops_at_ms: int | None
    kept_ms: int | None
    fresh: bool  # the latest sample is recent enough to act on

    def warn_from_ms(self, settings: Settings) -> int | None:
        if self.stops_at_ms is None:
            return None
        return self.stops_at_ms - settings.idle_gpu.warn_before_ms


IDLE_SERVERS = (
    select(
        SpawnSession.id,
        SpawnSession.username,
        SpawnSession.server_name,
        SpawnSession.idle_since_ms,
        SpawnSession.idle_kept_ms,
        SpawnSession.gpu_sampled_ms,
        SpawnSession.stopped_ms,
        Project.slug,
        Project.limits,
    )
    .join(Project, Project.id == SpawnSession.project_id)
    .where(SpawnSession.stopped_ms.is_(None), SpawnSession.idle_since_ms.is_not(None))
)


def idle_server(
    row: Any, project_limits: Mapping[str, Any] | None, settings: Settings, now_ms: int
) -> IdleServer | None:
    """A running session's row (with ``slug``) as an idle server; ``None`` while it is busy."""
    if row.idle_since_ms is None or row.stopped_ms is not None:
        return None
    return IdleServer(
        row.id,
        row.username,
        row.server_name,
        row.slug,
        row.idle_since_ms,
        stops_at(row.idle_since_ms, project_limits, settings),
        row.idle_kept_ms,
        (row.gpu_sampled_ms or 0) >= now_ms - 2 * settings.idle_gpu.sample_ms,
    )


def idle_servers(session: Session, settings: Settings, now_ms: int) -> list[IdleServer]:
    """Every running server idle now."""
    servers = []
    for row in session.execute(IDLE_SERVERS):
        server = idle_server(row, row.limits, settings, now_ms)
        if server is not None:
            servers.append(server)
    return servers


def due(session: Session, settings: Settings, now_ms: int) -> list[StopOrder]:
    """Servers idle past their time, on a fresh sample: to stop with the reason ``idle_gpu``."""
    return [
        StopOrder(s.session_id, s.username, s.server_name, s.project, IDLE_GPU, s.stops_at_ms)
        for s in idle_servers(session, settings, now_ms)
        if s.fresh and s.stops_at_ms is not None and s.stops_at_ms <= now_ms
    ]


def warning(server: IdleServer, settings: Settings, now_ms: int) -> dict[str, Any] | None:
    """``GET me``'s warning for one of the caller's idle servers, once its stop is near."""
    warn_from = server.warn_from_ms(settings)
    if server.stops_at_ms is None or warn_from is None or now_ms < warn_from:
        return None
    which = f"server {server.server_name}" if server.server_name else "server"
    idle_minutes = max(1, (now_ms - server.idle_since_ms) // 60_000)
    stops_at = clock_time(server.stops_at_ms, now_ms)
    threshold = settings.idle_gpu.threshold_percent
    if server.kept_ms is None:
        then = "Press Keep it to keep it running (once), or save your work."
    else:
        then = "You kept it once already; save your work, or start GPU work to keep it."
    return {
        # A new idle stretch (after Keep it, or busy again) is a new warning.
        "id": f"{server.project}:idle_gpu:{server.session_id}:{server.idle_since_ms}",
        "code": "idle_gpu",
        "severity": "critical",
        "level": "critical",
        "message": f"Your {which}'s GPUs have done no work for {idle_minutes} min (below "
        f"{threshold}% use). It stops at {stops_at} to free them for others, unless they get "
        f"busy. {then}",
        "at": iso(server.stops_at_ms),
        "server_name": server.server_name,
        "can_keep": server.kept_ms is None,
    }


@dataclass(frozen=True, slots=True)
class Kept:
    session_id: int
    server_name: str
    kept_ms: int
    stops_at_ms: int | None


def keep(
    session: Session,
    settings: Settings,
    username: str,
    server_name: str,
    now_ms: int,
    actor: str,
) -> Kept:
    """The owner keeps an idle server: its idle clock starts again from now, once per server.

    Refused (409) when the server is not idle or was kept already, with what happens next.
    """
    found = _running_gpu_server(session, username, server_name, lock=True)
    which = f"server {server_name!r}" if server_name else "default server"
    if found is None:
        raise NotFound(f"You have no running GPU {which}; there is nothing to keep.")
    row, limits = found
    if row.idle_kept_ms is not None:
        deadline = stops_at(row.idle_since_ms, limits, settings)
        when = (
            "when its idle time runs out"
            if deadline is None
            else f"at {clock_time(deadline, now_ms)}"
        )
        raise Conflict(
            f"Your {which} was kept once already (at {clock_time(row.idle_kept_ms, now_ms)}); "
            f"it stops {when} unless its GPUs get busy. Save your work."
        )
    if row.idle_since_ms is None:
        raise Conflict(f"Your {which}'s GPUs are busy, so it is not idle: nothing to keep.")
    before = {"idle_since": iso(row.idle_since_ms)}
    row.idle_since_ms = now_ms
    row.idle_kept_ms = now_ms
    audit.record(
        session,
        actor,
        "idle_gpu_kept",
        f"session:{row.id}",
        before,
        {"idle_since": iso(now_ms), "server_name": server_name},
    )
    return Kept(row.id, server_name, now_ms, stops_at(now_ms, limits, settings))


@dataclass(frozen=True, slots=True)
class Plot:
    """A running GPU server's recent samples (oldest first) and idle state."""

    session: SpawnSession
    samples: list[GpuSample]
    stops_at_ms: int | None


def plot(
    session: Session, settings: Settings, username: str, server_name: str, now_ms: int
) -> Plot:
    """What the lab's panel plots for one running GPU server; :class:`NotFound` without one."""
    found = _running_gpu_server(session, username, server_name)
    if found is None:
        which = f"server {server_name!r}" if server_name else "default server"
        raise NotFound(f"{username} has no running GPU {which}.")
    row, limits = found
    recent = session.scalars(
        select(GpuSample)
        .where(GpuSample.session_id == row.id)
        .order_by(GpuSample.at_ms.desc())
        .limit(MAX_PLOT_SAMPLES)
    ).all()
    return Plot(row, list(reversed(recent)), stops_at(row.idle_since_ms, limits, settings))


def _running_gpu_server(
    session: Session, username: str, server_name: str, *, lock: bool = False
) -> tuple[SpawnSession, dict[str, Any]] | None:
    """A user's running GPU server by name, with its project's limits; ``None`` without one."""
    query = (
        select(SpawnSession, Project.limits)
        .join(Project, Project.id == SpawnSession.project_id)
        .where(
            SpawnSession.username == username,
            SpawnSession.server_name == server_name,
            SpawnSession.stopped_ms.is_(None),
            SpawnSession.gpu_count > 0,
        )
    )
    if lock:
        query = query.with_for_update(of=SpawnSession)
    found = session.execute(query).first()
    return None if found is None else (found[0], found[1])
