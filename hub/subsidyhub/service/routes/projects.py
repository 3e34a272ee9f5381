"""Projects, allocations, members and quotas.

Service admins do everything here. A project's managers may read it (summary, allocations,
members) and add, re-role or remove its members; member caps (GPUs, GPU-hours, session
length) are quota decisions and stay with the admins, since a member's cap overrides the
project's. Each change is one write transaction that also writes its audit entry.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy.orm import Session

from subsidyhub import shapes
from subsidyhub.errors import Forbidden
from subsidyhub.ledger import projects
from subsidyhub.ledger.accounts import load_account, load_accounts
from subsidyhub.ledger.courses import member_use
from subsidyhub.ledger.models import Project
from subsidyhub.ledger.summary import project_summary
from subsidyhub.service.auth import ADMINS, CurrentIdentity, project_for, require_admin
from subsidyhub.service.context import Context
from subsidyhub.service.schemas import (
    AllocationCreate,
    MemberPut,
    ProjectChange,
    ProjectCreate,
    ProjectSlugParam,
    QuotaPut,
    UsernameParam,
)
from subsidyhub.settings import Settings

router = APIRouter(tags=["projects"])


def _summary(session: Session, settings: Settings, project: Project, now: int) -> dict[str, Any]:
    return project_summary(session, settings, project, load_account(session, project, now))


@router.get(
    "/projects",
    summary="All projects with balances (admins)",
    response_model=shapes.Projects,
    response_model_exclude_unset=True,
)
def list_projects(identity: CurrentIdentity, context: Context) -> dict[str, Any]:
    require_admin(identity, "list projects")
    now = context.clock()
    with context.db.read() as session:
        found = projects.list_projects(session)
        accounts = load_accounts(session, found, now)
        return {
            "projects": [
                project_summary(session, context.settings, project, accounts[project.id])
                for project in found
            ]
        }


@router.post(
    "/projects",
    status_code=201,
    summary="Create a project (admins)",
    response_model=shapes.ProjectSummary,
    response_model_exclude_unset=True,
)
def create_project(
    body: ProjectCreate, identity: CurrentIdentity, context: Context
) -> dict[str, Any]:
    require_admin(identity, "create projects")
    now = context.clock()
    with context.db.write() as session:
        project = projects.create_project(
            session,
            context.settings,
            identity.actor,
            slug=body.slug,
            name=body.name,
            at_ms=now,
            organisation=body.organisation,
            subsidy_bp=body.subsidy_rate,
            kind=body.kind,
        )
        return _summary(session, context.settings, project, now)


@router.get(
    "/projects/{slug}",
    summary="One project (admins and its managers)",
    response_model=shapes.ProjectSummary,
    response_model_exclude_unset=True,
)
def read_project(
    slug: ProjectSlugParam, identity: CurrentIdentity, context: Context
) -> dict[str, Any]:
    now = context.clock()
    with context.db.read() as session:
        project = project_for(session, identity, slug, "read the details")
        return _summary(session, context.settings, project, now)


@router.patch(
    "/projects/{slug}",
    summary="Rename, suspend, close or re-rate a project (admins)",
    response_model=shapes.ProjectSummary,
    response_model_exclude_unset=True,
)
def change_project(
    slug: ProjectSlugParam, body: ProjectChange, identity: CurrentIdentity, context: Context
) -> dict[str, Any]:
    require_admin(identity, "change projects")
    now = context.clock()
    with context.db.write() as session:
        project = projects.update_project(
            session,
            identity.actor,
            slug,
            name=body.name,
            status=body.status,
            subsidy_bp=body.subsidy_rate,
        )
        return _summary(session, context.settings, project, now)


@router.get(
    "/projects/{slug}/allocations",
    summary="Allocations (admins and managers)",
    response_model=shapes.Allocations,
    response_model_exclude_unset=True,
)
def list_allocations(
    slug: ProjectSlugParam, identity: CurrentIdentity, context: Context
) -> dict[str, Any]:
    with context.db.read() as session:
        project = project_for(session, identity, slug, "read the allocations")
        rows = projects.allocations_of(session, project)
        return {
            "project": slug,
            "allocations": [shapes.describe_allocation(row) for row in rows],
        }


@router.post(
    "/projects/{slug}/allocations",
    status_code=201,
    summary="Add funds, or record a correction (admins)",
    response_model=shapes.Allocation,
    response_model_exclude_unset=True,
)
def add_allocation(
    slug: ProjectSlugParam, body: AllocationCreate, identity: CurrentIdentity, context: Context
) -> dict[str, Any]:
    require_admin(identity, "add allocations")
    with context.db.write() as session:
        allocation = projects.add_allocation(
            session,
            context.settings,
            identity.actor,
            slug,
            amount_micro=body.amount,
            at_ms=context.clock(),
            valid_from_ms=body.valid_from,
            valid_until_ms=body.valid_until,
            note=body.note,
            correction=body.correction,
        )
        return shapes.describe_allocation(allocation)


@router.get(
    "/projects/{slug}/members",
    summary="Members (admins and managers)",
    response_model=shapes.Members,
    response_model_exclude_unset=True,
)
def list_members(
    slug: ProjectSlugParam, identity: CurrentIdentity, context: Context
) -> dict[str, Any]:
    with context.db.read() as session:
        project = project_for(session, identity, slug, "read the members")
        return {
            "project": slug,
            "members": [shapes.describe_member(m) for m in projects.members_of(session, project)],
        }


@router.get(
    "/projects/{slug}/member-use",
    summary="Members with the limits in force for them and their use this week "
    "(admins and managers; a course's roster)",
    response_model=shapes.MembersUse,
    response_model_exclude_unset=True,
)
def list_member_use(
    slug: ProjectSlugParam, identity: CurrentIdentity, context: Context
) -> dict[str, Any]:
    with context.db.read() as session:
        project = project_for(session, identity, slug, "read the members' use")
        return {"project": slug, "members": member_use(session, project, context.clock())}


@router.put(
    "/projects/{slug}/members/{username}",
    summary="Add a member or change one (admins; managers for role only)",
    response_model=shapes.Member,
    response_model_exclude_unset=True,
)
def put_member(
    slug: ProjectSlugParam,
    username: UsernameParam,
    body: MemberPut,
    identity: CurrentIdentity,
    context: Context,
) -> dict[str, Any]:
    quota = body.quota.given() if body.quota is not None else {}
    with context.db.write() as session:
        project_for(session, identity, slug, "manage the members")
        if not identity.is_admin and quota:
            raise Forbidden(
                f"{identity.actor} may set members' roles in {slug} but not their quota "
                f"({', '.join(quota)}): a member's limits need {ADMINS}."
            )
        member = projects.set_member(
            session,
            identity.actor,
            slug,
            username,
            at_ms=context.clock(),
            role=body.role,
            quota=quota,
        )
        return shapes.describe_member(member)


@router.delete(
    "/projects/{slug}/members/{username}",
    status_code=204,
    summary="Remove a member (admins and managers)",
    response_model=None,
)
def remove_member(
    slug: ProjectSlugParam, username: UsernameParam, identity: CurrentIdentity, context: Context
) -> Response:
    with context.db.write() as session:
        project_for(session, identity, slug, "manage the members")
        projects.remove_member(session, identity.actor, slug, username)
    return Response(status_code=204)


@router.put(
    "/projects/{slug}/quota",
    summary="Set quotas; null removes a limit (admins)",
    response_model=shapes.ProjectQuota,
    response_model_exclude_unset=True,
)
def put_quota(
    slug: ProjectSlugParam, body: QuotaPut, identity: CurrentIdentity, context: Context
) -> dict[str, Any]:
    require_admin(identity, "set quotas")
    with context.db.write() as session:
        project = projects.set_quota(session, context.settings, identity.actor, slug, body.given())
        return {"project": slug, "quota": shapes.describe_quota(project)}
