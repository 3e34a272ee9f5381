"""SSO group mapping: a user's project memberships follow their identity-provider groups.

At every login the hub sends the groups the identity provider (IdP) reports for the user;
:func:`sync_memberships` maps them through ``sso.groups`` to the memberships they imply and
applies the difference in the caller's write transaction, with an audit entry per change
(actor ``sso``), so the memberships and their trail commit or roll back together.

Guarantees:

* Only memberships whose ``source`` is ``sso`` are re-roled or removed. One added by an admin
  or from a course roster stays exactly as it is, even where the groups imply another role:
  SSO never undoes a person's decision.
* When several groups map to one project, the highest role wins (manager over member).
* A mapping naming a project the ledger does not know is skipped with a logged warning: a
  typo in the config must not stop people logging in.
* With ``sso.remove_unlisted`` off, SSO only adds and re-roles; removal stays with admins.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from subsidyhub.ledger import audit
from subsidyhub.ledger.models import Member, Project
from subsidyhub.ledger.projects import check_username
from subsidyhub.settings import Sso, SsoGroup
from subsidyhub.shapes import describe_member

log = logging.getLogger(__name__)

ACTOR = "sso"
SOURCE = "sso"
# Higher wins when two groups map to one project.
ROLE_RANK = {"member": 0, "manager": 1}


@dataclass(frozen=True)
class MembershipChange:
    project: str
    change: str  # "added", "role_changed" or "removed"
    role: str | None  # after the change; None once removed
    previous_role: str | None  # None when added


@dataclass(frozen=True)
class SyncResult:
    username: str
    changes: tuple[MembershipChange, ...]
    # Projects the groups imply where a manual or roster membership was left as it is.
    kept: tuple[str, ...]
    unknown_projects: tuple[str, ...]


def implied_roles(mapping: Sequence[SsoGroup], groups: Iterable[str]) -> dict[str, str]:
    """Project slug → the highest role that any of ``groups`` grants there (pure)."""
    held = set(groups)
    roles: dict[str, str] = {}
    for entry in mapping:
        if entry.group not in held:
            continue
        current = roles.get(entry.project)
        if current is None or ROLE_RANK[entry.role] > ROLE_RANK[current]:
            roles[entry.project] = entry.role
    return roles


def _memberships(session: Session, username: str) -> dict[str, tuple[Project, Member]]:
    rows = session.execute(
        select(Project, Member)
        .join(Member, Member.project_id == Project.id)
        .where(Member.username == username)
    )
    return {project.slug: (project, member) for project, member in rows}


def _audit(
    session: Session,
    slug: str,
    username: str,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    audit.record(session, ACTOR, action, f"project:{slug}/members/{username}", before, after)


def sync_memberships(
    session: Session, sso: Sso, username: str, groups: Iterable[str], *, at_ms: int
) -> SyncResult:
    """Make ``username``'s SSO memberships what ``groups`` imply; returns what changed."""
    check_username(username)
    targets = implied_roles(sso.groups, groups)
    # Lock every project this sync may touch, in id order (no deadlock between two logins),
    # then read the memberships afresh: member writers lock the project first too.
    held_ids = session.scalars(select(Member.project_id).where(Member.username == username))
    touched = session.scalars(
        select(Project)
        .where(Project.slug.in_(list(targets)) | Project.id.in_(list(held_ids)))
        .order_by(Project.id)
        .with_for_update()
    ).all()
    known = {project.slug: project for project in touched}
    unknown = tuple(sorted(set(targets) - set(known)))
    if unknown:
        log.warning(
            "sso.groups maps %s's groups to unknown projects %s; skipped (create them, or fix "
            "sso.groups)",
            username,
            ", ".join(unknown),
        )
    current = _memberships(session, username)
    changes: list[MembershipChange] = []
    kept: list[str] = []
    for slug in sorted(set(targets) - set(unknown)):
        role = targets[slug]
        if slug not in current:
            member = Member(
                project_id=known[slug].id,
                username=username,
                role=role,
                source=SOURCE,
                created_ms=at_ms,
            )
            session.add(member)
            session.flush()
            _audit(session, slug, username, "member.add", None, describe_member(member))
            changes.append(MembershipChange(slug, "added", role, None))
            continue
        member = current[slug][1]
        if member.source != SOURCE:
            kept.append(slug)
        elif member.role != role:
            before = describe_member(member)
            member.role = role
            _audit(session, slug, username, "member.update", before, describe_member(member))
            changes.append(MembershipChange(slug, "role_changed", role, before["role"]))
    if sso.remove_unlisted:
        for slug, (_project, member) in sorted(current.items()):
            if member.source == SOURCE and slug not in targets:
                before = describe_member(member)
                session.delete(member)
                _audit(session, slug, username, "member.remove", before, None)
                changes.append(MembershipChange(slug, "removed", None, member.role))
    session.flush()
    return SyncResult(username, tuple(changes), tuple(kept), unknown)
