"""Applications for grants: the scheme's front door (issue 18).

Organisations apply, about half are approved, each with its own subsidy rate and amount. An
application is one of three kinds:

* **new**: a principal investigator asks for a project (title, organisation, abstract,
  amount, GPU types and hours, period, team, and optionally an amount per quarter);
* **top_up**: a manager of a project asks for more money within a period;
* **extension**: a manager asks for a further period (and the amount for it) after the
  project's current grant ends. What the current grant leaves unspent is not carried over.

A draft may be edited by its applicant; :func:`submit` makes it read-only for them. Admins
comment (the applicant reads every comment) and decide. :func:`approve` does, in the caller's
one transaction: create the project (new) with its applicant as manager and its team as
members, set the subsidy rate and quotas, add the allocation over the decided window, store
the burn plan (:mod:`subsidyhub.ledger.burn_plan`) and link the allocation and project from
the application; all audited. Racing decisions are serialised on the application's row:
the second finds it decided and is refused, so one application makes at most one project.

Every bound is checked here, whatever the entry point (API, CLI, pages), with a message that
names the field, the value and the range.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from subsidyhub.errors import Conflict, Forbidden, InvalidInput, NotFound
from subsidyhub.ledger import audit, burn_plan, projects
from subsidyhub.ledger.models import Application, ApplicationEvent, Project
from subsidyhub.money import bp_to_fraction_string, format_money, to_decimal_string
from subsidyhub.settings import Settings
from subsidyhub.slugs import PROJECT_SLUG
from subsidyhub.text import check_text
from subsidyhub.timeutil import day_of, iso, month_of

KINDS = ("new", "top_up", "extension")
DRAFT, SUBMITTED, APPROVED, REJECTED, WITHDRAWN = (
    "draft",
    "submitted",
    "approved",
    "rejected",
    "withdrawn",
)
STATES = (DRAFT, SUBMITTED, APPROVED, REJECTED, WITHDRAWN)
MAX_TEAM = 200
MAX_GPU_HOURS = 10_000_000
MAX_ABSTRACT = 10_000
MAX_COMMENT = 5_000


@dataclass(frozen=True, slots=True)
class Fields:
    """What an applicant gives (already in ledger units: micro-units, epoch ms)."""

    kind: str
    slug: str  # new: the project's proposed slug; top_up and extension: the project's
    title: str
    amount_micro: int
    starts_ms: int
    ends_ms: int
    organisation: str = ""
    abstract: str = ""
    gpu_hours: Mapping[str, int] = field(default_factory=dict)
    team: Sequence[str] = ()
    plan: Sequence[int] = ()
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """What an admin decides on approval (ledger units); ``None`` takes the application's."""

    rate_bp: int
    amount_micro: int | None = None
    valid_from_ms: int | None = None
    valid_until_ms: int | None = None
    slug: str | None = None
    quota: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""


def _months(start_ms: int, end_ms: int) -> int:
    """Calendar months touched by [start, end)."""
    first, last = month_of(start_ms), month_of(end_ms - 1)
    return (int(last[:4]) - int(first[:4])) * 12 + int(last[5:]) - int(first[5:]) + 1


def check_fields(session: Session, settings: Settings, fields: Fields, now_ms: int) -> None:
    """Every bound of an application, before anything is written."""
    if fields.kind not in KINDS:
        raise InvalidInput(f"kind {fields.kind[:40]!r} is not one of {', '.join(KINDS)}")
    check_text(fields.title, "title", max_length=200)
    if not fields.title.strip():
        raise InvalidInput("title is empty; give the project's title")
    check_text(fields.organisation, "organisation", max_length=200)
    check_text(fields.abstract, "abstract", max_length=MAX_ABSTRACT, multiline=True)
    if fields.email is not None:
        check_text(fields.email, "email", max_length=320)
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", fields.email):
            raise InvalidInput(f"email {fields.email[:60]!r} is not an email address")
    maximum = settings.bounds.max_amount
    low = 0 if fields.kind == "extension" else 1
    if not low <= fields.amount_micro <= maximum:
        raise InvalidInput(
            f"amount {to_decimal_string(fields.amount_micro)} is out of range; give "
            f"{'0' if low == 0 else 'more than 0'} to {to_decimal_string(maximum)}"
        )
    _check_period(settings, fields.starts_ms, fields.ends_ms, now_ms)
    for gpu_type, hours in fields.gpu_hours.items():
        if gpu_type not in settings.prices.gpu:
            known = ", ".join(sorted(settings.prices.gpu)) or "none"
            raise InvalidInput(f"GPU type {gpu_type[:40]!r} is not offered; GPU types: {known}")
        if isinstance(hours, bool) or not isinstance(hours, int) or not 0 <= hours <= MAX_GPU_HOURS:
            raise InvalidInput(
                f"GPU-hours of {gpu_type} {hours!r} are out of range; give a whole number "
                f"from 0 to {MAX_GPU_HOURS}"
            )
    if len(fields.team) > MAX_TEAM:
        raise InvalidInput(f"team lists {len(fields.team)} people; give at most {MAX_TEAM}")
    for username in fields.team:
        projects.check_username(username)
    quarters = -(-_months(fields.starts_ms, fields.ends_ms) // 3)
    if fields.plan:
        if len(fields.plan) > quarters:
            raise InvalidInput(
                f"plan has {len(fields.plan)} quarters but the period has {quarters}; give one "
                "amount per quarter from the start"
            )
        if any(amount < 0 or amount > maximum for amount in fields.plan):
            raise InvalidInput(
                f"a quarter's planned amount is out of range; give 0 to {to_decimal_string(maximum)}"
            )
        if sum(fields.plan) != fields.amount_micro:
            raise InvalidInput(
                f"the plan adds up to {to_decimal_string(sum(fields.plan))}, not the amount "
                f"{to_decimal_string(fields.amount_micro)}; make the quarters add up to it"
            )
    if fields.kind == "new":
        projects.check_slug(fields.slug)
        if session.scalars(select(Project.id).where(Project.slug == fields.slug)).first():
            raise Conflict(
                f"a project {fields.slug} exists already; propose another slug, or apply for a "
                "top-up of that project if you manage it"
            )


def _check_period(settings: Settings, starts_ms: int, ends_ms: int, now_ms: int) -> None:
    if ends_ms <= starts_ms:
        raise InvalidInput(
            f"the period ends ({iso(ends_ms)}) before it starts ({iso(starts_ms)}); give an "
            "end after the start"
        )
    if ends_ms <= now_ms:
        raise InvalidInput(f"the period ends at {iso(ends_ms)}, which is past; give a later end")
    months = _months(starts_ms, ends_ms)
    longest = settings.scheme.max_period_months
    if months > longest:
        raise InvalidInput(
            f"the period spans {months} months; the scheme grants at most {longest} at once"
        )


def _require_manager(session: Session, slug: str, username: str, is_admin: bool) -> Project:
    project = projects.managed_project(session, slug, username)
    if project is None and is_admin:
        project = projects.get_project(session, slug)
    if project is None:
        raise Forbidden(
            f"{username} does not manage project {slug}; its managers apply for top-ups and "
            "extensions"
        )
    return project


def _event(
    session: Session, application: Application, actor: str, kind: str, body: str, at: int
) -> None:
    session.add(
        ApplicationEvent(application_id=application.id, at_ms=at, actor=actor, kind=kind, body=body)
    )


def _apply_fields(application: Application, fields: Fields) -> None:
    application.kind = fields.kind
    application.slug = fields.slug
    application.title = fields.title.strip()
    application.organisation = fields.organisation.strip()
    application.abstract = fields.abstract
    application.amount_micro = fields.amount_micro
    application.gpu_hours = dict(fields.gpu_hours)
    application.starts_ms = fields.starts_ms
    application.ends_ms = fields.ends_ms
    application.team = sorted(set(fields.team))
    application.plan = list(fields.plan)
    application.email = fields.email


def create(
    session: Session,
    settings: Settings,
    applicant: str,
    fields: Fields,
    now_ms: int,
    *,
    is_admin: bool = False,
    actor: str | None = None,
) -> Application:
    """A draft application by ``applicant`` (checked whole; a top-up or extension only by a
    manager of its project). ``actor``: who entered it, where not the applicant (an admin
    entering a PI's application from a file); the history and the audit name them."""
    projects.check_username(applicant)
    check_fields(session, settings, fields, now_ms)
    project = None
    if fields.kind != "new":
        project = _require_manager(session, fields.slug, applicant, is_admin)
    application = Application(
        applicant=applicant,
        state=DRAFT,
        project_id=project.id if project else None,
        created_ms=now_ms,
        updated_ms=now_ms,
        reason="",
    )
    _apply_fields(application, fields)
    session.add(application)
    session.flush()
    entered_by = actor or applicant
    _event(
        session,
        application,
        entered_by,
        "created",
        "" if entered_by == applicant else f"Entered by {entered_by} for {applicant}.",
        now_ms,
    )
    audit.record(
        session,
        entered_by,
        "application.create",
        f"application:{application.id}",
        None,
        describe(application),
    )
    return application


def get(
    session: Session, application_id: int, viewer: str, is_admin: bool, *, lock: bool = False
) -> Application:
    """The application, for its applicant or an admin; others get the same 404 as a missing
    one, so applications do not leak."""
    query = select(Application).where(Application.id == application_id)
    if lock:
        query = query.with_for_update()
    application = session.scalars(query).first()
    if application is None or not (is_admin or application.applicant == viewer):
        raise NotFound(f"no application {application_id} of yours; list yours to find its number")
    return application


def _require_state(application: Application, *states: str, doing: str) -> None:
    if application.state not in states:
        when = application.decided_ms or application.submitted_ms or application.updated_ms
        raise Conflict(
            f"application {application.id} is {application.state} (since {iso(when)}), so it "
            f"cannot be {doing}"
        )


def update(
    session: Session,
    settings: Settings,
    application_id: int,
    actor: str,
    fields: Fields,
    now_ms: int,
) -> Application:
    """Replace a draft's fields (its applicant only)."""
    application = get(session, application_id, actor, False, lock=True)
    _require_state(application, DRAFT, doing="edited; a submitted application is read-only")
    if fields.kind != application.kind:
        raise InvalidInput(f"kind cannot change from {application.kind}; start a new application")
    check_fields(session, settings, fields, now_ms)
    before = describe(application)
    _apply_fields(application, fields)
    application.updated_ms = now_ms
    _event(session, application, actor, "edited", "", now_ms)
    audit.record(
        session,
        actor,
        "application.edit",
        f"application:{application.id}",
        before,
        describe(application),
    )
    return application


def _transition(
    session: Session,
    application: Application,
    actor: str,
    kind: str,
    state: str,
    body: str,
    at: int,
) -> Application:
    before = describe(application)
    application.state = state
    application.updated_ms = at
    _event(session, application, actor, kind, body, at)
    audit.record(
        session,
        actor,
        f"application.{kind}",
        f"application:{application.id}",
        before,
        describe(application),
    )
    return application


def submit(
    session: Session, settings: Settings, application_id: int, actor: str, now_ms: int
) -> Application:
    """Send a draft for review: checked again (the period may have passed), then read-only."""
    application = get(session, application_id, actor, False, lock=True)
    _require_state(application, DRAFT, doing="submitted again")
    check_fields(session, settings, fields_of(application), now_ms)
    application.submitted_ms = now_ms
    return _transition(session, application, actor, "submitted", SUBMITTED, "", now_ms)


def withdraw(session: Session, application_id: int, actor: str, now_ms: int) -> Application:
    application = get(session, application_id, actor, False, lock=True)
    _require_state(application, DRAFT, SUBMITTED, doing="withdrawn")
    return _transition(session, application, actor, "withdrawn", WITHDRAWN, "", now_ms)


def comment(
    session: Session, application_id: int, actor: str, is_admin: bool, body: str, now_ms: int
) -> ApplicationEvent:
    """A comment on an application (admins, and its applicant), read by both."""
    check_text(body, "comment", max_length=MAX_COMMENT, multiline=True)
    if not body.strip():
        raise InvalidInput("comment is empty; write what the applicant should know or do")
    application = get(session, application_id, actor, is_admin)
    event = ApplicationEvent(
        application_id=application.id, at_ms=now_ms, actor=actor, kind="commented", body=body
    )
    session.add(event)
    session.flush()
    return event


def reject(
    session: Session, application_id: int, actor: str, reason: str, now_ms: int
) -> Application:
    check_text(reason, "reason", max_length=MAX_COMMENT, multiline=True)
    if not reason.strip():
        raise InvalidInput("a rejection needs a reason, which the applicant reads")
    application = get(session, application_id, actor, True, lock=True)
    _require_state(application, SUBMITTED, doing="rejected")
    application.decided_ms = now_ms
    application.decided_by = actor
    application.reason = reason
    return _transition(session, application, actor, "rejected", REJECTED, reason, now_ms)


def approve(
    session: Session,
    settings: Settings,
    application_id: int,
    actor: str,
    decision: Decision,
    now_ms: int,
) -> Application:
    """Approve a submitted application: project (new), members, rate, quotas, allocation and
    plan, in the caller's transaction; the application's row is locked first, so a second
    approval of it waits and is then refused."""
    application = get(session, application_id, actor, True, lock=True)
    _require_state(application, SUBMITTED, doing="approved")
    check_text(decision.note, "note", max_length=MAX_COMMENT, multiline=True)
    cap = settings.scheme.max_subsidy_rate
    if not 0 <= decision.rate_bp <= cap:
        raise InvalidInput(
            f"subsidy rate {bp_to_fraction_string(decision.rate_bp)} is out of range; the "
            f"scheme pays 0 to {bp_to_fraction_string(cap)} of the list price"
        )
    amount = application.amount_micro if decision.amount_micro is None else decision.amount_micro
    start = application.starts_ms if decision.valid_from_ms is None else decision.valid_from_ms
    end = application.ends_ms if decision.valid_until_ms is None else decision.valid_until_ms
    _check_period(settings, start, end, now_ms)
    slug = decision.slug or application.slug
    if application.kind == "new":
        organisation = organisation_slug(application.organisation)
        if organisation is not None:  # named as applied for, not by its slug
            projects.ensure_organisation(session, organisation, application.organisation, now_ms)
        project = projects.create_project(
            session,
            settings,
            actor,
            slug=slug,
            name=application.title,
            at_ms=now_ms,
            organisation=organisation,
            subsidy_bp=decision.rate_bp,
        )
        projects.set_member(
            session, actor, slug, application.applicant, at_ms=now_ms, role="manager"
        )
        for username in application.team:
            if username != application.applicant:
                projects.set_member(session, actor, slug, username, at_ms=now_ms)
    else:
        existing = session.get(Project, application.project_id)
        if existing is None:  # pragma: no cover - the key is a foreign key
            raise NotFound(f"the project of application {application.id} is gone")
        project = existing
        if project.subsidy_bp != decision.rate_bp:
            projects.update_project(session, actor, project.slug, subsidy_bp=decision.rate_bp)
    if decision.quota:
        projects.set_quota(session, settings, actor, project.slug, decision.quota)
    allocation = None
    if amount > 0:
        allocation = projects.add_allocation(
            session,
            settings,
            actor,
            project.slug,
            amount_micro=amount,
            at_ms=now_ms,
            valid_from_ms=start,
            valid_until_ms=end,
            note=f"application {application.id} ({application.kind.replace('_', '-')})",
        )
        planned = (
            burn_plan.quarterly(list(application.plan), start, end)
            if application.plan and amount == application.amount_micro
            else None
        )
        if planned is not None:
            burn_plan.store(session, allocation.id, planned)
    application.project_id = project.id
    application.rate_bp = decision.rate_bp
    application.approved_micro = amount
    application.allocation_id = allocation.id if allocation else None
    application.decided_ms = now_ms
    application.decided_by = actor
    application.reason = decision.note
    body = (
        f"Approved: {format_money(amount, settings.currency)} of subsidy paying "
        f"{decision.rate_bp / 100:g}% of the list price, from {day_of(start)} to "
        f"{day_of(end)}, as project {project.slug}."
        + (f" {decision.note}" if decision.note else "")
    )
    return _transition(session, application, actor, "approved", APPROVED, body, now_ms)


def organisation_slug(name: str) -> str | None:
    """An organisation's name as a slug ("Univ. of Hong Kong" → "univ-of-hong-kong"), or
    ``None`` when nothing usable is left (the project then has no organisation)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64].strip("-")
    return slug if slug and PROJECT_SLUG.matches(slug) else None


def fields_of(application: Application) -> Fields:
    return Fields(
        kind=application.kind,
        slug=application.slug,
        title=application.title,
        amount_micro=application.amount_micro,
        starts_ms=application.starts_ms,
        ends_ms=application.ends_ms,
        organisation=application.organisation,
        abstract=application.abstract,
        gpu_hours=dict(application.gpu_hours),
        team=list(application.team),
        plan=list(application.plan),
        email=application.email,
    )


def listing(
    session: Session, *, state: str | None = None, applicant: str | None = None
) -> list[tuple[Application, str | None]]:
    """Applications with their project's slug, oldest first, by state or applicant."""
    if state is not None and state not in STATES:
        raise InvalidInput(f"state {state[:40]!r} is not one of {', '.join(STATES)}")
    query = select(Application, Project.slug).outerjoin(
        Project, Project.id == Application.project_id
    )
    if state is not None:
        query = query.where(Application.state == state)
    if applicant is not None:
        query = query.where(Application.applicant == applicant)
    return [(row, slug) for row, slug in session.execute(query.order_by(Application.id))]


def project_slug(session: Session, application: Application) -> str | None:
    """The slug of the project it tops up, extends or created."""
    if application.project_id is None:
        return None
    return session.scalar(select(Project.slug).where(Project.id == application.project_id))


def events(session: Session, application_id: int) -> list[ApplicationEvent]:
    return list(
        session.scalars(
            select(ApplicationEvent)
            .where(ApplicationEvent.application_id == application_id)
            .order_by(ApplicationEvent.id)
        )
    )


def describe(application: Application) -> dict[str, Any]:
    """The application as the audit trail and the API show it."""
    return {
        "id": application.id,
        "kind": application.kind,
        "state": application.state,
        "applicant": application.applicant,
        "slug": application.slug,
        "title": application.title,
        "organisation": application.organisation,
        "amount": to_decimal_string(application.amount_micro),
        "gpu_hours": dict(application.gpu_hours),
        "starts": iso(application.starts_ms),
        "ends": iso(application.ends_ms),
        "team": list(application.team),
        "plan": [to_decimal_string(amount) for amount in application.plan],
        "rate": None if application.rate_bp is None else bp_to_fraction_string(application.rate_bp),
        "approved_amount": None
        if application.approved_micro is None
        else to_decimal_string(application.approved_micro),
    }
