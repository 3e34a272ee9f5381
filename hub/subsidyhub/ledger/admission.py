"""Admission and stop: the two moments a server's money changes hands.

``admit`` reads the facts, asks the pure policy, and on a yes writes the session row (with its
rates fixed) and the hold, all in one serialised transaction: the project row is locked on
PostgreSQL and SQLite runs ``BEGIN IMMEDIATE``, so racing spawns see each other's holds and
never exceed a cap or the balance. ``stop`` writes the final charge and releases the hold;
stopping twice is harmless.

The stop the hub saw is the one recorded (:func:`record_stop`), even when its notice comes
late: a tick that charged past it is reversed, and a stop the service placed on its own
(reconciliation's estimate, an enforced or superseded stop) is moved to it. Every such
correction is audited.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from subsidyhub import limits
from subsidyhub.errors import InvalidInput, NotFound, Refused
from subsidyhub.ledger import audit, capacity, prices
from subsidyhub.ledger.accounts import Account, load_account
from subsidyhub.ledger.metering import CORRECTION, USAGE, charge_one, recharge
from subsidyhub.ledger.models import Hold, Member, Project, QueueEntry, SpawnSession
from subsidyhub.ledger.policy import (
    Decision,
    GpuFacts,
    ProjectFacts,
    SpawnRequest,
    Usage,
    decide,
    is_student,
)
from subsidyhub.ledger.pricing import PriceList, cost_for, list_rate_per_hour, resources_of
from subsidyhub.ledger.projects import get_member, get_project, projects_of
from subsidyhub.ledger.stops import SUPERSEDED, deadline_reason
from subsidyhub.money import to_decimal_string
from subsidyhub.settings import Profile, Settings
from subsidyhub.timeutil import WEEK_MS, clock_time, iso

# Reconciliation closes a session whose server the hub no longer lists: an estimate, which
# the hub's own stop notice replaces in either direction.
RECONCILED = "reconciled"
# How far past the service's now a reported stop may lie: the hub's host clock may run ahead.
STOP_SKEW_MS = 5_000


@dataclass(frozen=True, slots=True)
class Admission:
    session_id: int
    project: str
    profile: str
    username: str
    server_name: str
    list_rate: int
    subsidy_bp: int
    hold: int
    started_ms: int
    max_stop_ms: int | None
    price_version: int
    # The session of the same server this admission closed first (reason "superseded").
    superseded_session_id: int | None = None


def hold_for(price_list: PriceList, profile: Profile, subsidy_bp: int, settings: Settings) -> int:
    """The subsidy a profile burns in the minimum billable period: what a spawn must hold."""
    rate = list_rate_per_hour(price_list, resources_of(profile))
    return cost_for(rate, subsidy_bp, settings.metering.min_start_ms).subsidy


def limits_in_force(project: Any, member: Any = None) -> dict[str, Any]:
    """The project's limits with the member's own where set (stored units; see ``limits``).

    ``project`` and ``member`` are ORM rows or plain rows with a ``limits`` mapping.
    """
    return limits.effective(project.limits, member.limits if member is not None else None)


def gpu_ms_in_week(sessions: Iterable[Any], now_ms: int) -> int:
    """GPU-milliseconds that ``sessions`` held in the 7 days before ``now_ms``.

    ``sessions`` have ``gpu_count``, ``started_ms`` and ``stopped_ms`` (``None`` while
    running): one member's sessions in one project, read here for admission or together with
    the rest of ``GET me`` by the service.
    """
    window = now_ms - WEEK_MS
    total = 0
    for row in sessions:
        stopped = row.stopped_ms
        if row.gpu_count <= 0 or (stopped is not None and stopped <= window):
            continue
        end = now_ms if stopped is None else min(stopped, now_ms)
        total += row.gpu_count * max(0, end - max(row.started_ms, window))
    return total


def member_gpu_ms_week(session: Session, project_id: int, username: str, now_ms: int) -> int:
    """GPU-milliseconds this member's sessions in this project held in the last 7 days."""
    rows = session.execute(
        select(SpawnSession.gpu_count, SpawnSession.started_ms, SpawnSession.stopped_ms).where(
            SpawnSession.project_id == project_id,
            SpawnSession.username == username,
            SpawnSession.gpu_count > 0,
            or_(SpawnSession.stopped_ms.is_(None), SpawnSession.stopped_ms > now_ms - WEEK_MS),
        )
    )
    return gpu_ms_in_week(rows, now_ms)


def choose_project(session: Session, username: str, slug: str | None) -> Project:
    """The project to charge: the one named, or the user's only project."""
    if slug:
        return get_project(session, slug, lock=True)
    mine = projects_of(session, username)
    if len(mine) == 1:
        return get_project(session, mine[0][0].slug, lock=True)
    if not mine:
        raise Refused(
            f"{username} is not a member of any project. Ask a project manager to add you.",
            reason="not_member",
        )
    options = ", ".join(p.slug for p, _ in mine)
    raise InvalidInput(f"{username} is in several projects; choose one with project=…: {options}")


def _facts(
    project: Project, account: Account, member: Member | None, currency: str
) -> ProjectFacts:
    return ProjectFacts(
        slug=project.slug,
        status=project.status,
        currency=currency,
        available=account.available,
        has_active_allocation=account.allocated > 0,
        is_member=member is not None,
        student=is_student(project.kind, member.role if member else None),
        name=project.name,
    )


def evaluate(
    session: Session,
    settings: Settings,
    project: Project,
    username: str,
    profile: Profile,
    price_list: PriceList,
    now_ms: int,
    *,
    server_name: str = "",
    count_gpus: bool = True,
    gpu_states: dict[str, capacity.TypeState] | None = None,
) -> tuple[Decision, Account, int]:
    """Facts plus policy, without writing: used by admission, by the spawn form's preview and
    by the queue (``count_gpus=False``: a place in the queue is asked for because no GPU is
    free, so every rule but capacity applies). ``gpu_states`` keeps each GPU type's state
    across the calls of one preview, which evaluates every profile of every project."""
    member = get_member(session, project, username)
    account = load_account(session, project, now_ms)
    hold = hold_for(price_list, profile, project.subsidy_bp, settings)
    alternatives = tuple(
        sorted(
            (
                (p.slug, hold_for(price_list, p, project.subsidy_bp, settings))
                for p in settings.profiles
                if p.slug != profile.slug
            ),
            key=lambda item: item[1],
        )
    )
    usage = Usage(
        project_gpus=account.gpus_in_use,
        member_gpus=sum(s.gpu_count for s in account.sessions if s.username == username),
        member_gpu_ms_week=member_gpu_ms_week(session, project.id, username, now_ms)
        if profile.gpu_count
        else 0,
    )
    request = SpawnRequest(
        user=username,
        profile=profile.slug,
        gpu_type=profile.gpu_type,
        gpu_count=profile.gpu_count,
        hold=hold,
        min_start_ms=settings.metering.min_start_ms,
        alternatives=alternatives,
        names={p.slug: p.display_name for p in settings.profiles},
    )
    gpus = (
        gpu_facts(session, settings, project.id, username, server_name, profile, now_ms, gpu_states)
        if count_gpus
        else None
    )
    decision = decide(
        _facts(project, account, member, settings.currency),
        limits_in_force(project, member),
        usage,
        request,
        gpus,
    )
    return decision, account, hold


def open_entry(session: Session, username: str, server_name: str) -> QueueEntry | None:
    """The server's place in a queue, if it has one (waiting or offered)."""
    return session.scalars(
        select(QueueEntry).where(
            QueueEntry.username == username,
            QueueEntry.server_name == server_name,
            QueueEntry.ended_ms.is_(None),
        )
    ).first()


def gpu_facts(
    session: Session,
    settings: Settings,
    project_id: int,
    username: str,
    server_name: str,
    profile: Profile,
    now_ms: int,
    states: dict[str, capacity.TypeState] | None = None,
) -> GpuFacts | None:
    """The profile's GPU type as this spawn sees it; ``None`` for a CPU profile or a type
    whose capacity is unknown. Admission reads it under the type's lock (:func:`admit`); the
    spawn form's preview reads a snapshot."""
    if not profile.gpu_count or profile.gpu_type is None:
        return None
    state = states.get(profile.gpu_type) if states is not None else None
    if state is None:
        state = capacity.load_state(session, settings, profile.gpu_type, now_ms)
        if states is not None:
            states[profile.gpu_type] = state
    if state.capacity is None:
        return None
    offered = state.offer_of(username, server_name) is not None
    seen = state.without_offer_of(username, server_name)
    free = capacity.free_now(seen, now_ms)
    assert free is not None
    waiting = 0
    if not offered and free.reserved.get(project_id, 0) < profile.gpu_count:
        waiting = capacity.waiting_count(session, profile.gpu_type, exclude=(username, server_name))
    window = capacity.reservation_cap(seen, project_id, profile.gpu_count, now_ms)
    return GpuFacts(
        label=capacity.gpu_label(profile.gpu_type),
        capacity=state.capacity,
        free=free.for_project(project_id),
        waiting=waiting,
        window_in_ms=None if window is None else window.starts_ms - now_ms,
        window_for=window.project_name if window else "",
        window_at=clock_time(window.starts_ms, now_ms) if window else "",
    )


def admit(
    session: Session,
    settings: Settings,
    *,
    username: str,
    project_slug: str | None,
    profile_slug: str,
    server_name: str,
    now_ms: int,
    gpu_devices: Sequence[str] = (),
    pod_name: str | None = None,
) -> Admission:
    """Decide and, if admitted, write the session and its hold; raises :class:`Refused`.

    An open session for the same server is closed first (reason ``superseded``).
    ``gpu_devices`` (host GPU ids) or ``pod_name`` say where its GPUs' utilisation is read.
    """
    try:
        profile = settings.profile(profile_slug)
    except KeyError as error:
        raise InvalidInput(str(error.args[0])) from None
    project = choose_project(session, username, project_slug)
    stale = find_running(session, username, server_name)
    if stale is not None:
        # The hub starts only servers it knows are stopped, so a session still open for this
        # server missed its stop (hub crash, lost hook): close it now before the new one.
        stop(session, stale.id, now_ms=now_ms, reason=SUPERSEDED)
    version = prices.current_version(session, now_ms)
    price_list = prices.as_price_list(version)
    if profile.gpu_count and profile.gpu_type is not None:
        capacity.lock_type(session, profile.gpu_type)
    decision, _account, hold = evaluate(
        session, settings, project, username, profile, price_list, now_ms, server_name=server_name
    )
    if not decision.allowed:
        raise Refused(decision.message, reason=decision.reason)
    rate = list_rate_per_hour(price_list, resources_of(profile))
    max_stop = None if decision.max_duration_ms is None else now_ms + decision.max_duration_ms
    in_force = limits_in_force(project, get_member(session, project, username))
    row = SpawnSession(
        project_id=project.id,
        username=username,
        server_name=server_name,
        profile_slug=profile.slug,
        cpu_millicores=int(profile.cpu * 1000),
        memory_mib=int(profile.memory_gib * 1024),
        gpu_type=profile.gpu_type,
        gpu_count=profile.gpu_count,
        price_version_id=version.id,
        list_rate_micro=rate,
        subsidy_bp=project.subsidy_bp,
        started_ms=now_ms,
        charged_until_ms=now_ms,
        charged_list_micro=0,
        charged_subsidy_micro=0,
        max_stop_ms=max_stop,
        max_stop_reason=deadline_reason(
            decision.max_duration_ms, in_force, reserved=decision.reserved_for is not None
        ),
        gpu_devices=list(gpu_devices) if profile.gpu_count and gpu_devices else None,
        pod_name=pod_name if profile.gpu_count else None,
    )
    session.add(row)
    session.flush()
    waited = open_entry(session, username, server_name)
    if waited is not None:
        # The server runs, so its wait is over: admitted with what it waited for, or left
        # (started with another profile, e.g. a CPU one, meanwhile).
        same = waited.gpu_type == profile.gpu_type and waited.gpu_count >= profile.gpu_count
        waited.state = capacity.ADMITTED if same else capacity.LEFT
        waited.ended_ms = now_ms
        waited.session_id = row.id if same else None
    session.add(
        Hold(session_id=row.id, project_id=project.id, amount_micro=hold, created_ms=now_ms)
    )
    return Admission(
        row.id,
        project.slug,
        profile.slug,
        username,
        server_name,
        rate,
        project.subsidy_bp,
        hold,
        now_ms,
        max_stop,
        version.id,
        stale.id if stale is not None else None,
    )


@dataclass(frozen=True, slots=True)
class Stopped:
    session_id: int
    project: str
    username: str
    server_name: str
    stopped_ms: int
    reason: str
    list_micro: int
    subsidy_micro: int
    already: bool


def _locked(session: Session, session_id: int) -> tuple[Project, SpawnSession]:
    """The session and its project, locked in the ledger's order (project first)."""
    project_id = session.scalar(
        select(SpawnSession.project_id).where(SpawnSession.id == session_id)
    )
    if project_id is None:
        raise NotFound(f"No such session: {session_id}")
    project = session.scalars(
        select(Project).where(Project.id == project_id).with_for_update()
    ).one()
    running = session.scalars(
        select(SpawnSession)
        .where(SpawnSession.id == session_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    return project, running


def _result(project: Project, row: SpawnSession, *, already: bool) -> Stopped:
    assert row.stopped_ms is not None
    return Stopped(
        row.id,
        project.slug,
        row.username,
        row.server_name,
        row.stopped_ms,
        row.stop_reason or "",
        row.charged_list_micro,
        row.charged_subsidy_micro,
        already,
    )


def _evidence(row: SpawnSession) -> dict[str, Any]:
    """What a stop correction changes, for the audit trail."""
    return {
        "stopped": iso(row.stopped_ms, exact=True),
        "reason": row.stop_reason,
        "charged_until": iso(row.charged_until_ms, exact=True),
        "list": to_decimal_string(row.charged_list_micro),
        "subsidy": to_decimal_string(row.charged_subsidy_micro),
    }


def _move_charged_end(
    session: Session,
    project: Project,
    row: SpawnSession,
    to_ms: int,
    *,
    now_ms: int,
    actor: str,
    reason: str,
    kind: str,
) -> None:
    """Charge or reverse to ``to_ms`` and stop there; audited when it takes money back or
    moves a recorded stop."""
    before = _evidence(row)
    owed = recharge(session, row, to_ms, now_ms=now_ms, kind=kind)
    moved = row.stopped_ms is not None and row.stopped_ms != to_ms
    row.stopped_ms = to_ms
    row.stop_reason = reason
    if moved or any(line.list_micro < 0 for line in owed.rows):
        audit.record(
            session,
            actor,
            "session.stop_corrected",
            f"project:{project.slug}/sessions/{row.id}",
            before,
            _evidence(row),
        )


def _close(
    session: Session,
    project: Project,
    row: SpawnSession,
    *,
    now_ms: int,
    reason: str,
    at_ms: int | None,
    actor: str,
    note: str | None = None,
) -> Stopped:
    row.stop_note = note
    if at_ms is None:
        end = max(now_ms, row.charged_until_ms)
        charge_one(session, row, end)
        row.stopped_ms = end
        row.stop_reason = reason
    else:
        _move_charged_end(
            session, project, row, at_ms, now_ms=now_ms, actor=actor, reason=reason, kind=USAGE
        )
    hold = session.scalars(select(Hold).where(Hold.session_id == row.id)).first()
    if hold is not None and hold.released_ms is None:
        # When the service closed it, which may be after the stop it records.
        hold.released_ms = now_ms
    return _result(project, row, already=False)


def stop(
    session: Session,
    session_id: int,
    *,
    now_ms: int,
    reason: str,
    at_ms: int | None = None,
    actor: str = "subsidy-service",
    note: str | None = None,
) -> Stopped:
    """Final charge, hold released, session closed; idempotent.

    ``reason`` is a code of :mod:`subsidyhub.ledger.stops`; ``note`` is an admin's word to the
    server's owner, which they are shown with the reason.

    ``at_ms`` is when the server is known to have stopped (reconciliation: the last instant it
    was seen running); charges a tick wrote past it are reversed. Default: now, or the end
    the session is charged to if later.
    """
    project, row = _locked(session, session_id)
    if row.stopped_ms is not None:
        return _result(project, row, already=True)
    return _close(
        session, project, row, now_ms=now_ms, reason=reason, at_ms=at_ms, actor=actor, note=note
    )


def record_stop(
    session: Session,
    session_id: int,
    *,
    stopped_ms: int,
    now_ms: int,
    reason: str,
    actor: str,
) -> Stopped:
    """The hub saw the server stop at ``stopped_ms``: the ledger records that stop.

    An open session closes there (lines a tick wrote past it are reversed). A session the
    service closed on its own moves to it as :func:`_corrects` says. A stop recorded from a
    notice is final: a repeated notice answers with it. Refuses a stop before the session
    started or in the future beyond :data:`STOP_SKEW_MS`.
    """
    project, row = _locked(session, session_id)
    if row.reported_stop_ms is not None:
        return _result(project, row, already=True)
    if stopped_ms < row.started_ms:
        raise InvalidInput(
            f"stopped_at {iso(stopped_ms, exact=True)} is before {row.username}'s session "
            f"started ({iso(row.started_ms, exact=True)}); send the time the hub saw the "
            "server stop"
        )
    if stopped_ms > now_ms + STOP_SKEW_MS:
        raise InvalidInput(
            f"stopped_at {iso(stopped_ms, exact=True)} is {(stopped_ms - now_ms) / 1000:.1f} s "
            f"in the future (clocks may differ by {STOP_SKEW_MS // 1000} s at most); send the "
            "time the hub saw the server stop"
        )
    if row.stopped_ms is None:
        row.reported_stop_ms = stopped_ms
        return _close(
            session, project, row, now_ms=now_ms, reason=reason, at_ms=stopped_ms, actor=actor
        )
    if _corrects(session, row, stopped_ms):
        row.reported_stop_ms = stopped_ms
        _move_charged_end(
            session,
            project,
            row,
            stopped_ms,
            now_ms=now_ms,
            actor=actor,
            reason=reason,
            kind=CORRECTION,
        )
    elif row.stop_reason != RECONCILED:
        # The hub's own stop of a server the ledger closed first (an enforced or admin stop):
        # kept as evidence, and the enforcer stops asking the hub to stop it.
        row.reported_stop_ms = stopped_ms
    return _result(project, row, already=True)


def _corrects(session: Session, row: SpawnSession, stopped_ms: int) -> bool:
    """Whether a reported stop moves the stop the service recorded on its own.

    Earlier: always; nobody pays for time after the server stopped. Later: only
    reconciliation's estimate (an enforced stop ends the charge however long the hub took),
    and only to an instant before reconciliation found the server gone, when it released
    the hold; a later one is the stop of another, unadmitted server of the same name.
    """
    assert row.stopped_ms is not None
    if stopped_ms < row.stopped_ms:
        return True
    if stopped_ms == row.stopped_ms or row.stop_reason != RECONCILED:
        return False
    released = session.scalar(select(Hold.released_ms).where(Hold.session_id == row.id))
    return released is not None and stopped_ms <= released


def session_for_stop(
    session: Session, username: str, server_name: str, stopped_ms: int
) -> int | None:
    """The session a stop at ``stopped_ms`` ends: the server's latest one started by then (a
    later one was admitted after that stop), else its first (which refuses the stop)."""
    mine = (SpawnSession.username == username, SpawnSession.server_name == server_name)
    started_by = session.scalar(
        select(SpawnSession.id)
        .where(*mine, SpawnSession.started_ms <= stopped_ms)
        .order_by(SpawnSession.started_ms.desc(), SpawnSession.id.desc())
        .limit(1)
    )
    if started_by is not None:
        return started_by
    return session.scalar(select(SpawnSession.id).where(*mine).order_by(SpawnSession.id).limit(1))


def find_running(session: Session, username: str, server_name: str) -> SpawnSession | None:
    return session.scalars(
        select(SpawnSession).where(
            SpawnSession.username == username,
            SpawnSession.server_name == server_name,
            SpawnSession.stopped_ms.is_(None),
        )
    ).first()


def list_running(
    session: Session, *, username: str | None = None, project_id: int | None = None
) -> list[tuple[SpawnSession, str]]:
    """Running sessions with their project's slug, oldest first; one query."""
    query = (
        select(SpawnSession, Project.slug)
        .join(Project, Project.id == SpawnSession.project_id)
        .where(SpawnSession.stopped_ms.is_(None))
        .order_by(SpawnSession.id)
    )
    if username is not None:
        query = query.where(SpawnSession.username == username)
    if project_id is not None:
        query = query.where(SpawnSession.project_id == project_id)
    return [(row[0], row[1]) for row in session.execute(query)]


def latest_session_id(session: Session, username: str, server_name: str) -> int | None:
    """The server's running session, else its last one (a repeated stop answers with it)."""
    running = find_running(session, username, server_name)
    if running is not None:
        return running.id
    return session.scalar(
        select(SpawnSession.id)
        .where(SpawnSession.username == username, SpawnSession.server_name == server_name)
        .order_by(SpawnSession.id.desc())
        .limit(1)
    )
