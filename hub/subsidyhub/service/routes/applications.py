"""Applications for grants (issue 18): applicants write and submit them, admins comment and
decide; burn plans against spending, per project and for the whole scheme.

Anyone signed in may apply for a new project; a project's managers apply for its top-ups and
extensions. An applicant sees and comments on their own applications; admins see all, and
decide (:mod:`subsidyhub.ledger.applications`). Every change of state is told to the
applicant on the usage page (the application's history) and, where SMTP is configured, by
email to the address on the application, sent after the answer so a slow mail server never
holds a decision. A project's burn plan is for its managers and the admins; the scheme's
view, with projects ranked by under-use, for admins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, BackgroundTasks
from sqlalchemy.orm import Session

from subsidyhub import shapes
from subsidyhub.errors import Forbidden
from subsidyhub.ledger import applications, burn_plan
from subsidyhub.ledger.applications import Decision, Fields
from subsidyhub.ledger.models import Application
from subsidyhub.service.auth import CurrentIdentity, Identity, project_for, require_admin
from subsidyhub.service.context import Context, ServiceContext
from subsidyhub.service.mailer import Mailer
from subsidyhub.service.schemas import (
    AllocationId,
    ApplicationApprove,
    ApplicationBody,
    ApplicationComment,
    ApplicationId,
    ApplicationReject,
    ApplicationStateQuery,
    PlanPut,
    ProjectSlugParam,
)

router = APIRouter(tags=["applications"])


def _applicant(identity: Identity, what: str) -> str:
    if not identity.is_user:
        raise Forbidden(f"{identity.actor} may not {what}: applications are made by people")
    return identity.name


def _fields(body: ApplicationBody) -> Fields:
    return Fields(
        kind=body.kind,
        slug=body.slug,
        title=body.title,
        amount_micro=body.amount,
        starts_ms=body.starts,
        ends_ms=body.ends,
        organisation=body.organisation,
        abstract=body.abstract,
        gpu_hours=body.gpu_hours,
        team=body.team,
        plan=body.plan,
        email=body.email,
    )


def _shown(session: Session, application: Application) -> dict[str, Any]:
    """One application with its history, read in the transaction that changed it."""
    return shapes.describe_application(
        application,
        applications.project_slug(session, application),
        applications.events(session, application.id),
    )


def _tell(context: ServiceContext, tasks: BackgroundTasks, shown: dict[str, Any]) -> None:
    """Email the applicant the application's new state, after the answer is sent."""
    mailer = Mailer(context.settings.smtp)
    if not (mailer.enabled and shown["email"]):
        return
    subject = f"Your application {shown['id']} ({shown['title'][:60]}): {shown['state']}"
    lines = [f'Your application {shown["id"]}, "{shown["title"]}", is now {shown["state"]}.']
    if shown["reason"]:
        lines.append(shown["reason"])
    lines.append(
        f"Its history and any comments are on {context.settings.centre_name}'s usage page "
        "(the hub's Services menu, subsidy)."
    )
    tasks.add_task(mailer.send, shown["email"], subject, "\n\n".join(lines))


def _change(
    context: ServiceContext,
    tasks: BackgroundTasks,
    change: Callable[[Session], Application],
) -> dict[str, Any]:
    """Change an application's state in one transaction, then tell its applicant."""
    with context.db.write() as session:
        shown = _shown(session, change(session))
    _tell(context, tasks, shown)
    return shown


def _positions(
    context: ServiceContext, session: Session, identity: Identity, slug: str, now: int
) -> dict[str, Any]:
    """A project's grants against their plan, for its managers and admins."""
    project = project_for(session, identity, slug, "read the burn plan")
    found = burn_plan.positions(session, context.settings, now, [project.id])
    currency = context.settings.currency
    return {"positions": [shapes.describe_position(p, currency, now) for p in found]}


@router.get(
    "/applications",
    summary="Applications: the caller's own; every one for admins (by state)",
    response_model=shapes.Applications,
    response_model_exclude_unset=True,
)
def list_applications(
    identity: CurrentIdentity, context: Context, state: ApplicationStateQuery = None
) -> dict[str, Any]:
    applicant = None if identity.is_admin else _applicant(identity, "list applications")
    with context.db.read() as session:
        rows = applications.listing(session, state=state, applicant=applicant)
        return {"applications": [shapes.describe_application(row, slug) for row, slug in rows]}


@router.post(
    "/applications",
    status_code=201,
    summary="Start an application (a draft, editable until submitted)",
    response_model=shapes.Application,
    response_model_exclude_unset=True,
)
def create_application(
    body: ApplicationBody, identity: CurrentIdentity, context: Context
) -> dict[str, Any]:
    applicant = _applicant(identity, "apply")
    with context.db.write() as session:
        application = applications.create(
            session,
            context.settings,
            applicant,
            _fields(body),
            context.clock(),
            is_admin=identity.is_admin,
        )
        return _shown(session, application)


@router.get(
    "/applications/{application_id}",
    summary="One application with its history (its applicant; admins)",
    response_model=shapes.Application,
    response_model_exclude_unset=True,
)
def read_application(
    application_id: ApplicationId, identity: CurrentIdentity, context: Context
) -> dict[str, Any]:
    with context.db.read() as session:
        application = applications.get(session, application_id, identity.name, identity.is_admin)
        return _shown(session, application)


@router.put(
    "/applications/{application_id}",
    summary="Replace a draft's fields (its applicant)",
    response_model=shapes.Application,
    response_model_exclude_unset=True,
)
def edit_application(
    application_id: ApplicationId,
    body: ApplicationBody,
    identity: CurrentIdentity,
    context: Context,
) -> dict[str, Any]:
    applicant = _applicant(identity, "edit applications")
    with context.db.write() as session:
        application = applications.update(
            session, context.settings, application_id, applicant, _fields(body), context.clock()
        )
        return _shown(session, application)


@router.post(
    "/applications/{application_id}/submit",
    summary="Submit a draft for review; it is then read-only for its applicant",
    response_model=shapes.Application,
    response_model_exclude_unset=True,
)
def submit_application(
    application_id: ApplicationId,
    identity: CurrentIdentity,
    context: Context,
    tasks: BackgroundTasks,
) -> dict[str, Any]:
    applicant = _applicant(identity, "submit applications")
    return _change(
        context,
        tasks,
        lambda session: applications.submit(
            session, context.settings, application_id, applicant, context.clock()
        ),
    )


@router.post(
    "/applications/{application_id}/withdraw",
    summary="Withdraw a draft or a submitted application (its applicant)",
    response_model=shapes.Application,
    response_model_exclude_unset=True,
)
def withdraw_application(
    application_id: ApplicationId,
    identity: CurrentIdentity,
    context: Context,
    tasks: BackgroundTasks,
) -> dict[str, Any]:
    applicant = _applicant(identity, "withdraw applications")
    return _change(
        context,
        tasks,
        lambda session: applications.withdraw(session, application_id, applicant, context.clock()),
    )


@router.post(
    "/applications/{application_id}/comments",
    status_code=201,
    summary="Comment on an application (admins; its applicant): both read it",
    response_model=shapes.Application,
    response_model_exclude_unset=True,
)
def comment_application(
    application_id: ApplicationId,
    body: ApplicationComment,
    identity: CurrentIdentity,
    context: Context,
    tasks: BackgroundTasks,
) -> dict[str, Any]:
    with context.db.write() as session:
        applications.comment(
            session, application_id, identity.actor, identity.is_admin, body.body, context.clock()
        )
        application = applications.get(session, application_id, identity.name, identity.is_admin)
        shown = _shown(session, application)
    if identity.is_admin and identity.name != shown["applicant"]:
        _tell(context, tasks, shown | {"reason": f"A comment from the centre: {body.body}"})
    return shown


@router.post(
    "/applications/{application_id}/approve",
    summary="Approve: the project, members, rate, quotas, allocation and plan in one step (admins)",
    response_model=shapes.Application,
    response_model_exclude_unset=True,
)
def approve_application(
    application_id: ApplicationId,
    body: ApplicationApprove,
    identity: CurrentIdentity,
    context: Context,
    tasks: BackgroundTasks,
) -> dict[str, Any]:
    require_admin(identity, "approve applications")
    decision = Decision(
        rate_bp=body.subsidy_rate,
        amount_micro=body.amount,
        valid_from_ms=body.valid_from,
        valid_until_ms=body.valid_until,
        slug=body.slug,
        quota=body.quota.given() if body.quota else {},
        note=body.note,
    )
    return _change(
        context,
        tasks,
        lambda session: applications.approve(
            session, context.settings, application_id, identity.actor, decision, context.clock()
        ),
    )


@router.post(
    "/applications/{application_id}/reject",
    summary="Reject with a reason the applicant reads (admins)",
    response_model=shapes.Application,
    response_model_exclude_unset=True,
)
def reject_application(
    application_id: ApplicationId,
    body: ApplicationReject,
    identity: CurrentIdentity,
    context: Context,
    tasks: BackgroundTasks,
) -> dict[str, Any]:
    require_admin(identity, "reject applications")
    return _change(
        context,
        tasks,
        lambda session: applications.reject(
            session, application_id, identity.actor, body.reason, context.clock()
        ),
    )


@router.get(
    "/projects/{slug}/burn-plan",
    summary="A project's grants: plan against subsidy spent per month (managers; admins)",
    response_model=shapes.BurnPositions,
)
def read_burn_plan(
    slug: ProjectSlugParam, identity: CurrentIdentity, context: Context
) -> dict[str, Any]:
    with context.db.read() as session:
        return _positions(context, session, identity, slug, context.clock())


@router.put(
    "/projects/{slug}/allocations/{allocation_id}/plan",
    summary="Set a grant's plan per month (admins); empty: even over its window",
    response_model=shapes.BurnPositions,
)
def put_plan(
    slug: ProjectSlugParam,
    allocation_id: AllocationId,
    body: PlanPut,
    identity: CurrentIdentity,
    context: Context,
) -> dict[str, Any]:
    require_admin(identity, "set burn plans")
    with context.db.write() as session:
        burn_plan.set_plan(session, identity.actor, slug, allocation_id, body.months)
        return _positions(context, session, identity, slug, context.clock())


@router.get(
    "/reports/scheme",
    summary="The scheme: approved, allocated, spent, remaining, projected; under-use ranked",
    response_model=shapes.SchemeView,
)
def read_scheme(identity: CurrentIdentity, context: Context) -> dict[str, Any]:
    require_admin(identity, "read the scheme's report")
    now = context.clock()
    currency = context.settings.currency
    with context.db.read() as session:
        view = burn_plan.scheme(session, context.settings, now)
    return shapes.describe_scheme(view, currency, now)
