"""Projects, organisations, members, quotas and allocations: the admin side of the ledger.

Each change runs in the caller's write transaction and writes an audit entry with the state
before and after, so the audit trail and the change commit or roll back together.
Validation happens before anything is written: bad input raises :class:`InvalidInput` with
the limit, the value and what to do, and nothing is half-applied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from subsidyhub.errors import Conflict, InvalidInput, NotFound
from subsidyhub.ledger import audit
from subsidyhub.ledger.accounts import settle_overdraft
from subsidyhub.ledger.models import Allocation, Member, Organisation, Project
from subsidyhub.money import MS_PER_HOUR, bp_to_fraction_string, to_decimal_string
from subsidyhub.settings import Settings
from subsidyhub.timeutil import iso

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
USERNAME = re.compile(r"^[^\s/]{1,255}$")
STATUSES = ("active", "suspended", "closed")
KINDS = ("research", "course")
ROLES = ("manager", "member")
MAX_SUBSIDY_BP = 9000


def check_slug(slug: str, what: str = "project") -> str:
    if not SLUG.match(slug):
        raise InvalidInput(
            f"{what} slug {slug!r} is not valid; use 1-63 lowercase letters, digits and dashes"
        )
    return slug


def check_username(username: str) -> str:
    if not USERNAME.match(username):
        raise InvalidInput(
            f"username {username!r} is not valid; no spaces or slashes, 1-255 characters"
        )
    return username


def check_subsidy_bp(bp: int) -> int:
    if not 0 <= bp <= MAX_SUBSIDY_BP:
        raise InvalidInput(
            f"subsidy rate {bp / 10000:.4g} is outside 0..0.90 (the scheme pays at most 90%)"
        )
    return bp


def hours_to_ms(value: str | Decimal | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        hours = Decimal(str(value))
    except InvalidOperation:
        raise InvalidInput(f"{name} {value!r} is not a number of hours") from None
    if not hours.is_finite() or hours < 0:
        raise InvalidInput(f"{name} {value!r} must be a number of hours, 0 or more")
    return int(hours * MS_PER_HOUR)


def ms_to_hours(ms: int | None) -> str | None:
    if ms is None:
        return None
    return f"{(Decimal(ms) / MS_PER_HOUR).normalize():f}"


def describe_project(project: Project) -> dict[str, Any]:
    return {
        "slug": project.slug,
        "name": project.name,
        "kind": project.kind,
        "status": project.status,
        "subsidy_rate": bp_to_fraction_string(project.subsidy_bp),
        "quota": describe_quota(project),
    }


def describe_quota(project: Project) -> dict[str, Any]:
    return {
        "max_gpus": project.max_gpus,
        "member_max_gpus": project.member_max_gpus,
        "gpu_hours_per_week": ms_to_hours(project.gpu_ms_per_week),
        "max_session_hours": ms_to_hours(project.max_session_ms),
        "profiles": project.allowed_profiles,
        "gpu_types": project.allowed_gpu_types,
    }


def describe_member(member: Member) -> dict[str, Any]:
    return {
        "username": member.username,
        "role": member.role,
        "max_gpus": member.max_gpus,
        "gpu_hours_per_week": ms_to_hours(member.gpu_ms_per_week),
        "max_session_hours": ms_to_hours(member.max_session_ms),
        # How the membership came about (manual, roster, sso) and the contact a roster gave.
        "source": member.source,
        "name": member.display_name,
        "email": member.email,
    }


def describe_allocation(allocation: Allocation) -> dict[str, Any]:
    return {
        "id": allocation.id,
        "amount": to_decimal_string(allocation.amount_micro),
        "drawn": to_decimal_string(allocation.drawn_micro),
        "valid_from": iso(allocation.valid_from_ms),
        "valid_until": iso(allocation.valid_until_ms),
        "note": allocation.note,
        "created_by": allocation.created_by,
        "created": iso(allocation.created_ms),
    }


def get_project(session: Session, slug: str, *, lock: bool = False) -> Project:
    query = select(Project).where(Project.slug == slug)
    if lock:
        query = query.with_for_update()
    project = session.scalars(query).first()
    if project is None:
        known = session.scalars(select(Project.slug).order_by(Project.slug).limit(20)).all()
        options = (
            ", ".join(known)
            if known
            else "none yet; create one with `subsidyhub admin project create`"
        )
        raise NotFound(f"No such project: {slug}. Projects include: {options}")
    return project


def list_projects(session: Session) -> list[Project]:
    return list(session.scalars(select(Project).order_by(Project.slug)))


def projects_of(session: Session, username: str) -> list[tuple[Project, Member]]:
    rows = session.execute(
        select(Project, Member)
        .join(Member, Member.project_id == Project.id)
        .where(Member.username == username)
        .order_by(Project.slug)
    )
    return [(row[0], row[1]) for row in rows]


def ensure_organisation(session: Session, slug: str, name: str | None, at_ms: int) -> Organisation:
    check_slug(slug, "organisation")
    org = session.scalars(select(Organisation).where(Organisation.slug == slug)).first()
    if org is None:
        org = Organisation(slug=slug, name=name or slug, created_ms=at_ms)
        session.add(org)
        session.flush()
    return org


def create_project(
    session: Session,
    settings: Settings,
    actor: str,
    *,
    slug: str,
    name: str,
    at_ms: int,
    organisation: str | None = None,
    subsidy_bp: int | None = None,
    kind: str = "research",
) -> Project:
    check_slug(slug)
    if not name.strip():
        raise InvalidInput("project name is empty; give a name with --name")
    if kind not in KINDS:
        raise InvalidInput(f"project kind {kind!r} is not one of {', '.join(KINDS)}")
    bp = check_subsidy_bp(settings.subsidy_rate if subsidy_bp is None else subsidy_bp)
    if session.scalars(select(Project.id).where(Project.slug == slug)).first() is not None:
        raise Conflict(
            f"Project {slug} already exists; pick another slug or change it with `admin project update`"
        )
    org = ensure_organisation(session, organisation, None, at_ms) if organisation else None
    defaults = settings.defaults
    project = Project(
        slug=slug,
        name=name.strip(),
        organisation_id=org.id if org else None,
        kind=kind,
        status="active",
        subsidy_bp=bp,
        max_gpus=defaults.max_gpus,
        member_max_gpus=defaults.member_max_gpus,
        gpu_ms_per_week=hours_to_ms(defaults.gpu_hours_per_week, "gpu_hours_per_week"),
        max_session_ms=hours_to_ms(defaults.max_session_hours, "max_session_hours"),
        overdraft_micro=0,
        created_ms=at_ms,
    )
    session.add(project)
    session.flush()
    after = describe_project(project) | {"organisation": organisation}
    audit.record(session, actor, "project.create", f"project:{slug}", None, after)
    return project


def update_project(
    session: Session,
    actor: str,
    slug: str,
    *,
    name: str | None = None,
    status: str | None = None,
    subsidy_bp: int | None = None,
) -> Project:
    project = get_project(session, slug, lock=True)
    before = describe_project(project)
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status {status!r} is not one of {', '.join(STATUSES)}")
    if name is not None and not name.strip():
        raise InvalidInput("project name is empty")
    if subsidy_bp is not None:
        project.subsidy_bp = check_subsidy_bp(subsidy_bp)
    if status is not None:
        project.status = status
    if name is not None:
        project.name = name.strip()
    audit.record(
        session, actor, "project.update", f"project:{slug}", before, describe_project(project)
    )
    return project


def add_allocation(
    session: Session,
    actor: str,
    slug: str,
    *,
    amount_micro: int,
    at_ms: int,
    valid_from_ms: int | None = None,
    valid_until_ms: int | None = None,
    note: str = "",
    correction: bool = False,
) -> Allocation:
    """A new allocation row: top-ups add, corrections (negative, ``correction=True``) reverse."""
    if amount_micro == 0:
        raise InvalidInput("amount is 0; an allocation must add or (as a correction) remove funds")
    if amount_micro < 0 and not correction:
        raise InvalidInput(
            f"amount {to_decimal_string(amount_micro)} is negative; to reduce an allocation, "
            "record a correction (--correction) with a note saying why"
        )
    if correction and not note.strip():
        raise InvalidInput("a correction needs a note saying why (--note)")
    start = at_ms if valid_from_ms is None else valid_from_ms
    if valid_until_ms is not None and valid_until_ms <= start:
        raise InvalidInput(
            f"valid until {iso(valid_until_ms)} is not after valid from {iso(start)}; "
            "the window must end after it starts"
        )
    project = get_project(session, slug, lock=True)
    allocation = Allocation(
        project_id=project.id,
        amount_micro=amount_micro,
        valid_from_ms=start,
        valid_until_ms=valid_until_ms,
        note=note,
        created_by=actor,
        created_ms=at_ms,
        drawn_micro=0,
    )
    session.add(allocation)
    session.flush()
    allocations = list(
        session.scalars(
            select(Allocation).where(Allocation.project_id == project.id).with_for_update()
        )
    )
    settle_overdraft(project, allocations, at_ms)
    action = "allocation.correct" if correction else "allocation.add"
    audit.record(
        session, actor, action, f"project:{slug}/allocations", None, describe_allocation(allocation)
    )
    return allocation


def allocations_of(session: Session, project: Project) -> list[Allocation]:
    return list(
        session.scalars(
            select(Allocation).where(Allocation.project_id == project.id).order_by(Allocation.id)
        )
    )


def members_of(session: Session, project: Project) -> list[Member]:
    return list(
        session.scalars(
            select(Member).where(Member.project_id == project.id).order_by(Member.username)
        )
    )


def get_member(session: Session, project: Project, username: str) -> Member | None:
    return session.scalars(
        select(Member).where(Member.project_id == project.id, Member.username == username)
    ).first()


_UNSET: Any = object()


def set_member(
    session: Session,
    actor: str,
    slug: str,
    username: str,
    *,
    at_ms: int,
    role: str | None = None,
    max_gpus: int | None = _UNSET,
    gpu_hours_per_week: str | Decimal | None = _UNSET,
    max_session_hours: str | Decimal | None = _UNSET,
) -> Member:
    """Add a member or change one; caps left as ``_UNSET`` keep their value."""
    check_username(username)
    if role is not None and role not in ROLES:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(ROLES)}")
    if max_gpus is not _UNSET and max_gpus is not None and max_gpus < 0:
        raise InvalidInput(f"max GPUs {max_gpus} is negative; give 0 or more")
    week = (
        _UNSET
        if gpu_hours_per_week is _UNSET
        else hours_to_ms(gpu_hours_per_week, "GPU-hours per week")
    )
    longest = (
        _UNSET
        if max_session_hours is _UNSET
        else hours_to_ms(max_session_hours, "max session hours")
    )
    project = get_project(session, slug, lock=True)
    member = get_member(session, project, username)
    before = describe_member(member) if member else None
    if member is None:
        member = Member(
            project_id=project.id, username=username, role=role or "member", created_ms=at_ms
        )
        session.add(member)
    elif role is not None:
        member.role = role
    if max_gpus is not _UNSET:
        member.max_gpus = max_gpus
    if week is not _UNSET:
        member.gpu_ms_per_week = week
    if longest is not _UNSET:
        member.max_session_ms = longest
    session.flush()
    action = "member.add" if before is None else "member.update"
    audit.record(
        session,
        actor,
        action,
        f"project:{slug}/members/{username}",
        before,
        describe_member(member),
    )
    return member


def remove_member(session: Session, actor: str, slug: str, username: str) -> None:
    project = get_project(session, slug, lock=True)
    member = get_member(session, project, username)
    if member is None:
        names = ", ".join(m.username for m in members_of(session, project)[:20]) or "none"
        raise NotFound(f"{username} is not a member of project {slug}; members: {names}")
    before = describe_member(member)
    session.delete(member)
    audit.record(
        session, actor, "member.remove", f"project:{slug}/members/{username}", before, None
    )


@dataclass(frozen=True)
class QuotaChange:
    """Fields to change; ``_UNSET`` leaves a field, ``None`` makes it unlimited."""

    max_gpus: int | None = _UNSET
    member_max_gpus: int | None = _UNSET
    gpu_hours_per_week: str | Decimal | None = _UNSET
    max_session_hours: str | Decimal | None = _UNSET
    profiles: list[str] | None = _UNSET
    gpu_types: list[str] | None = _UNSET


def set_quota(
    session: Session, settings: Settings, actor: str, slug: str, change: QuotaChange
) -> Project:
    for name in ("max_gpus", "member_max_gpus"):
        value = getattr(change, name)
        if value is not _UNSET and value is not None and value < 0:
            raise InvalidInput(
                f"{name.replace('_', ' ')} {value} is negative; give 0 or more, or 'none'"
            )
    week = (
        _UNSET
        if change.gpu_hours_per_week is _UNSET
        else hours_to_ms(change.gpu_hours_per_week, "GPU-hours per week")
    )
    longest = (
        _UNSET
        if change.max_session_hours is _UNSET
        else hours_to_ms(change.max_session_hours, "max session hours")
    )
    if longest is not _UNSET and longest == 0:
        raise InvalidInput(
            "max session hours 0 would stop every server at once; give more than 0, or 'none'"
        )
    known_profiles = {p.slug for p in settings.profiles}
    if change.profiles not in (_UNSET, None):
        unknown = sorted(set(change.profiles) - known_profiles)
        if unknown:
            raise InvalidInput(
                f"unknown profiles {', '.join(unknown)}; profiles include: {', '.join(sorted(known_profiles))}"
            )
    if change.gpu_types not in (_UNSET, None):
        unknown = sorted(set(change.gpu_types) - set(settings.prices.gpu))
        if unknown:
            raise InvalidInput(
                f"unknown GPU types {', '.join(unknown)}; GPU types include: {', '.join(sorted(settings.prices.gpu))}"
            )
    project = get_project(session, slug, lock=True)
    before = describe_quota(project)
    if change.max_gpus is not _UNSET:
        project.max_gpus = change.max_gpus
    if change.member_max_gpus is not _UNSET:
        project.member_max_gpus = change.member_max_gpus
    if week is not _UNSET:
        project.gpu_ms_per_week = week
    if longest is not _UNSET:
        project.max_session_ms = longest
    if change.profiles is not _UNSET:
        project.allowed_profiles = sorted(change.profiles) if change.profiles is not None else None
    if change.gpu_types is not _UNSET:
        project.allowed_gpu_types = (
            sorted(change.gpu_types) if change.gpu_types is not None else None
        )
    audit.record(
        session, actor, "quota.set", f"project:{slug}/quota", before, describe_quota(project)
    )
    return project
