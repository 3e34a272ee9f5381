"""Admission and stop: the two moments a server's money changes hands.

``admit`` reads the facts, asks the pure policy, and on a yes writes the session row (with its
rates fixed) and the hold, all in one serialised transaction: the project row is locked on
PostgreSQL and SQLite runs ``BEGIN IMMEDIATE``, so racing spawns see each other's holds and
never exceed a cap or the balance. ``stop`` writes the final charge and releases the hold;
stopping twice is harmless.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from subsidyhub.errors import InvalidInput, NotFound, Refused
from subsidyhub.ledger import prices
from subsidyhub.ledger.accounts import Account, load_account
from subsidyhub.ledger.metering import charge_one
from subsidyhub.ledger.models import Hold, Member, Project, SpawnSession
from subsidyhub.ledger.policy import (
    Decision,
    ProjectFacts,
    Quota,
    SpawnRequest,
    Usage,
    decide,
    is_student,
)
from subsidyhub.ledger.pricing import PriceList, Resources, cost_for, list_rate_per_hour
from subsidyhub.ledger.projects import get_member, get_project, projects_of
from subsidyhub.money import MS_PER_HOUR
from subsidyhub.settings import Profile, Settings

WEEK_MS = 7 * 24 * MS_PER_HOUR


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


def resources_of(profile: Profile) -> Resources:
    return Resources(profile.cpu, profile.memory_gib, profile.gpu_type, profile.gpu_count)


def hold_for(price_list: PriceList, profile: Profile, subsidy_bp: int, settings: Settings) -> int:
    """The subsidy a profile burns in the minimum billable period: what a spawn must hold."""
    rate = list_rate_per_hour(price_list, resources_of(profile))
    return cost_for(rate, subsidy_bp, settings.metering.min_start_ms).subsidy


def effective_quota(project: Project, member: Member | None) -> Quota:
    """Project quotas with the member's own caps taking precedence where set."""
    week = project.gpu_ms_per_week
    longest = project.max_session_ms
    member_gpus = project.member_max_gpus
    if member is not None:
        week = member.gpu_ms_per_week if member.gpu_ms_per_week is not None else week
        longest = member.max_session_ms if member.max_session_ms is not None else longest
        member_gpus = member.max_gpus if member.max_gpus is not None else member_gpus
    return Quota(
        max_gpus=project.max_gpus,
        member_max_gpus=member_gpus,
        gpu_hours_per_week=None if week is None else Decimal(week) / MS_PER_HOUR,
        max_session_hours=None if longest is None else Decimal(longest) / MS_PER_HOUR,
        allowed_profiles=None
        if project.allowed_profiles is None
        else frozenset(project.allowed_profiles),
        allowed_gpu_types=None
        if project.allowed_gpu_types is None
        else frozenset(project.allowed_gpu_types),
    )


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
    )


def evaluate(
    session: Session,
    settings: Settings,
    project: Project,
    username: str,
    profile: Profile,
    price_list: PriceList,
    now_ms: int,
) -> tuple[Decision, Account, int]:
    """Facts plus policy, without writing: used by admission and by the spawn form's preview."""
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
    )
    decision = decide(
        _facts(project, account, member, settings.currency),
        effective_quota(project, member),
        usage,
        request,
    )
    return decision, account, hold


def admit(
    session: Session,
    settings: Settings,
    *,
    username: str,
    project_slug: str | None,
    profile_slug: str,
    server_name: str,
    now_ms: int,
) -> Admission:
    """Decide and, if admitted, write the session and its hold; raises :class:`Refused`.

    An open session for the same server is closed first (reason ``superseded``).
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
        stop(session, stale.id, now_ms=now_ms, reason="superseded")
    version = prices.current_version(session, now_ms)
    price_list = prices.as_price_list(version)
    decision, _account, hold = evaluate(
        session, settings, project, username, profile, price_list, now_ms
    )
    if not decision.allowed:
        raise Refused(decision.message, reason=decision.reason)
    rate = list_rate_per_hour(price_list, resources_of(profile))
    max_stop = None if decision.max_duration_ms is None else now_ms + decision.max_duration_ms
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
    )
    session.add(row)
    session.flush()
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


def stop(session: Session, session_id: int, *, now_ms: int, reason: str) -> Stopped:
    """Final charge, hold released, session closed; idempotent."""
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
    if running.stopped_ms is not None:
        return Stopped(
            running.id,
            project.slug,
            running.username,
            running.server_name,
            running.stopped_ms,
            running.stop_reason or "",
            running.charged_list_micro,
            running.charged_subsidy_micro,
            True,
        )
    end = max(now_ms, running.charged_until_ms)
    charge_one(session, running, end)
    running.stopped_ms = end
    running.stop_reason = reason
    hold = session.scalars(select(Hold).where(Hold.session_id == running.id)).first()
    if hold is not None and hold.released_ms is None:
        hold.released_ms = end
    return Stopped(
        running.id,
        project.slug,
        running.username,
        running.server_name,
        end,
        reason,
        running.charged_list_micro,
        running.charged_subsidy_micro,
        False,
    )


def find_running(session: Session, username: str, server_name: str) -> SpawnSession | None:
    return session.scalars(
        select(SpawnSession).where(
            SpawnSession.username == username,
            SpawnSession.server_name == server_name,
            SpawnSession.stopped_ms.is_(None),
        )
    ).first()
