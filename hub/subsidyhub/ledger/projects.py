"""Projects, organisations, members, quotas and allocations: the admin side of the ledger.

Each change runs in the caller's write transaction and writes an audit entry with the state
before and after, so the audit trail and the change commit or roll back together.
Validation happens before anything is written: bad input raises :class:`InvalidInput` with
the limit, the value and what to do, and nothing is half-applied.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from subsidyhub import limits
from subsidyhub.errors import Conflict, InvalidInput, NotFound
from subsidyhub.ledger import audit
from subsidyhub.ledger.accounts import load_account, settle_overdraft
from subsidyhub.ledger.models import Allocation, Member, Organisation, Project
from subsidyhub.money import to_decimal_string
from subsidyhub.settings import Settings
from subsidyhub.shapes import describe_allocation, describe_member, describe_project, describe_quota
from subsidyhub.slugs import PROJECT_SLUG, USERNAME_DESCRIPTION, USERNAME_PATTERN
from subsidyhub.text import check_text
from subsidyhub.timeutil import iso

USERNAME = re.compile(USERNAME_PATTERN)
STATUSES = ("active", "suspended", "closed")
KINDS = ("research", "course")
ROLES = ("manager", "member")
MAX_SUBSIDY_BP = 9000


def check_slug(slug: str, what: str = "project") -> str:
    if not PROJECT_SLUG.matches(slug):
        raise InvalidInput(f"{what} slug {slug!r} is not valid; use {PROJECT_SLUG.description}")
    return slug


def check_username(username: str) -> str:
    check_text(username, "username", max_length=255)
    if not USERNAME.match(username):
        raise InvalidInput(f"username {username[:60]!r} is not valid; use {USERNAME_DESCRIPTION}")
    return username


def check_subsidy_bp(bp: int) -> int:
    if not 0 <= bp <= MAX_SUBSIDY_BP:
        raise InvalidInput(
            f"subsidy rate {bp / 10000:.4g} is outside 0..0.90 (the scheme pays at most 90%)"
        )
    return bp


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


def require_known_project(session: Session, username: str, slug: str) -> None:
    """An unknown project is a 404 that lists only the user's own projects.

    The message reaches the person spawning, who should not learn other projects' names.
    """
    if session.scalar(select(Project.id).where(Project.slug == slug)) is None:
        mine = ", ".join(project.slug for project, _ in projects_of(session, username))
        raise NotFound(f"No such project: {slug}. {username}'s projects: {mine or 'none'}.")


def managed_project(session: Session, slug: str, username: str) -> Project | None:
    """Project ``slug`` if ``username`` is one of its managers, else None."""
    return session.scalars(
        select(Project)
        .join(Member, Member.project_id == Project.id)
        .where(Project.slug == slug, Member.username == username, Member.role == "manager")
    ).first()


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
    check_text(name, "project name", max_length=200)
    if not name.strip():
        raise InvalidInput("project name is empty; give the project a name")
    if kind not in KINDS:
        raise InvalidInput(f"project kind {kind!r} is not one of {', '.join(KINDS)}")
    bp = check_subsidy_bp(settings.subsidy_rate if subsidy_bp is None else subsidy_bp)
    if session.scalars(select(Project.id).where(Project.slug == slug)).first() is not None:
        raise Conflict(f"Project {slug} already exists; pick another slug or update that project")
    org = ensure_organisation(session, organisation, None, at_ms) if organisation else None
    project = Project(
        slug=slug,
        name=name.strip(),
        organisation_id=org.id if org else None,
        kind=kind,
        status="active",
        subsidy_bp=bp,
        limits=limits.apply({}, limits.parse_changes(settings.defaults.given(), settings)),
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
    if name is not None and not check_text(name, "project name", max_length=200).strip():
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
    settings: Settings,
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
    """A new allocation row: top-ups add, corrections (negative, ``correction=True``) reverse.

    An entry is at most ``bounds.max_amount``; a correction removes at most what the project
    has left (it cannot make a balance negative: a negative balance comes only from charges
    enforcement could not stop in time, and shows as the project's overdraft).
    """
    check_text(note, "note", max_length=2000, multiline=True)
    if amount_micro == 0:
        raise InvalidInput("amount is 0; an allocation must add or (as a correction) remove funds")
    if amount_micro < 0 and not correction:
        raise InvalidInput(
            f"amount {to_decimal_string(amount_micro)} is negative; to reduce an allocation, "
            "record a correction with a note saying why"
        )
    if correction and amount_micro > 0:
        raise InvalidInput(
            f"a correction removes funds, so its amount is negative, e.g. "
            f"-{to_decimal_string(amount_micro)}; to add funds, record an allocation"
        )
    if correction and not note.strip():
        raise InvalidInput("a correction needs a note saying why it is made")
    maximum = settings.bounds.max_amount
    if abs(amount_micro) > maximum:
        raise InvalidInput(
            f"amount {to_decimal_string(amount_micro)} is larger than one entry may be "
            f"({to_decimal_string(maximum)}, bounds.max_amount in the config); split it, or "
            "ask the centre's operators to raise the bound"
        )
    start = at_ms if valid_from_ms is None else valid_from_ms
    if valid_until_ms is not None and valid_until_ms <= start:
        raise InvalidInput(
            f"valid until {iso(valid_until_ms)} is not after valid from {iso(start)}; "
            "the window must end after it starts"
        )
    if valid_until_ms is not None and valid_until_ms <= at_ms:
        raise InvalidInput(
            f"valid until {iso(valid_until_ms)} is already past; an allocation that has "
            "ended would never be drawn. Give a later end, or none"
        )
    project = get_project(session, slug, lock=True)
    if correction:
        left = load_account(session, project, at_ms).balance
        if -amount_micro > left:
            raise InvalidInput(
                f"a correction of {to_decimal_string(amount_micro)} would take project {slug} "
                f"below zero: it has {to_decimal_string(max(0, left))} left that has not been "
                "drawn; correct at most that much"
            )
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


def set_member(
    session: Session,
    actor: str,
    slug: str,
    username: str,
    *,
    at_ms: int,
    role: str | None = None,
    quota: Mapping[str, Any] | None = None,
) -> Member:
    """Add a member or change one; ``quota`` sets member-level limits by name (given values;
    ``None`` for a name lifts the member's own value), and limits not named keep theirs."""
    check_username(username)
    if role is not None and role not in ROLES:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(ROLES)}")
    changes = limits.parse_changes(quota or {}, None, member=True)
    project = get_project(session, slug, lock=True)
    member = get_member(session, project, username)
    before = describe_member(member) if member else None
    if member is None:
        member = Member(
            project_id=project.id,
            username=username,
            role=role or "member",
            limits={},
            created_ms=at_ms,
        )
        session.add(member)
    elif role is not None:
        member.role = role
    if changes:
        member.limits = limits.apply(member.limits, changes)
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


def set_quota(
    session: Session, settings: Settings, actor: str, slug: str, changes: Mapping[str, Any]
) -> Project:
    """Change a project's limits by name (given values; ``None`` lifts a limit); every value
    is checked against its declaration (:mod:`subsidyhub.limits`) before any is applied."""
    if not changes:
        raise InvalidInput(f"nothing to change; give any of {', '.join(limits.BY_NAME)}")
    stored = limits.parse_changes(changes, settings)
    project = get_project(session, slug, lock=True)
    before = describe_quota(project)
    project.limits = limits.apply(project.limits, stored)
    audit.record(
        session, actor, "quota.set", f"project:{slug}/quota", before, describe_quota(project)
    )
    return project
