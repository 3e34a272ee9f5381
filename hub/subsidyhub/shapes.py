"""Every JSON shape the service answers with, declared once as pydantic models.

Why one module: the same project, member or session appears in ``GET me``, the admin API and
the CLI's ``--json``; shapes written in several places drift (JupyterHub keeps its
``user_model`` and ``server_model`` in one file for the same reason). These models are the
routes' ``response_model``s, so the OpenAPI documents every answer; the TypeScript types of the
JupyterLab extension and of the admin page are generated from that OpenAPI
(``extensions/jupyterlab-subsidy/src/api.d.ts``, ``npm run api``), and a test fails when the
committed ``openapi.json`` no longer matches the service. Answers are checked against them in
every test that calls the API: a field a model does not declare is an error (``extra:
forbid``), not silently dropped.

Conventions: amounts are decimal strings in the currency's units (``"412.30"``); rates are
per hour; shares are fractions (``"0.7"``); times are ISO 8601 UTC (``"2026-11-30T08:00:00Z"``);
hours are decimal strings. Limits are keyed by the names of :mod:`subsidyhub.limits`.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from subsidyhub import limits
from subsidyhub.ledger import time_left as time_limits
from subsidyhub.ledger.capacity import gpu_label
from subsidyhub.ledger.pricing import (
    PriceList,
    accrued,
    list_rate_per_hour,
    resources_of,
    subsidy_rate_per_hour,
)
from subsidyhub.money import bp_to_fraction_string, format_money, to_decimal_string
from subsidyhub.timeutil import day_of, format_hours, iso

if TYPE_CHECKING:
    from subsidyhub.ledger.accounts import Account
    from subsidyhub.ledger.admission import Admission as AdmissionResult
    from subsidyhub.ledger.admission import Stopped as StopResult
    from subsidyhub.ledger.burn_plan import Position as BurnPosition
    from subsidyhub.ledger.burn_plan import Scheme as SchemeFigures
    from subsidyhub.ledger.capacity import Slot, TypeState
    from subsidyhub.ledger.idle import Plot as IdlePlot
    from subsidyhub.ledger.models import (
        Allocation as AllocationRow,
    )
    from subsidyhub.ledger.models import Application as ApplicationRow
    from subsidyhub.ledger.models import ApplicationEvent as ApplicationEventRow
    from subsidyhub.ledger.models import (
        AuditEntry as AuditEntryRow,
    )
    from subsidyhub.ledger.models import (
        Member as MemberRow,
    )
    from subsidyhub.ledger.models import (
        PriceVersion as PriceVersionRow,
    )
    from subsidyhub.ledger.models import (
        Project as ProjectRow,
    )
    from subsidyhub.ledger.models import (
        QueueEntry as QueueEntryRow,
    )
    from subsidyhub.ledger.models import (
        Reservation as ReservationRow,
    )
    from subsidyhub.ledger.models import (
        SpawnSession,
    )
    from subsidyhub.ledger.policy import Decision
    from subsidyhub.ledger.queue import Place as QueuePlaceResult
    from subsidyhub.ledger.queue import TypeView
    from subsidyhub.ledger.sso import SyncResult
    from subsidyhub.settings import Profile, Settings

Amount = str
Hours = str
TimeLeftReason = time_limits.Binding
Moment = str
WarningSeverity = Literal["info", "warning", "critical"]
# A limit's value or use: a count, hours as a decimal string, names, or null for none.
LimitValue = int | str | list[str] | None


class Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Error(Shape):
    """Every refusal and failure: the status again, and a message saying what to do."""

    status: int
    message: str
    reason: str | None = Field(None, description="A stable code, where the client acts on it.")
    errors: list[str] | None = Field(None, description="Every problem, where there are several.")


class Warning(Shape):
    """A condition of a project that holds now (state, not an event): it is listed for as long
    as it holds, so a client shows each ``id`` once and again only after it cleared."""

    id: str = Field(
        description='Stable while the condition holds: "{project}:{code}", e.g. "demo:exhausted".'
    )
    code: str = Field(
        description="exhausted, below_N_percent, stop_soon, gpu_offer (a GPU held for one "
        "of the caller's servers: their turn in the queue), or idle_gpu (one of the caller's "
        "servers stops at `at` because its GPUs do no work)."
    )
    severity: WarningSeverity = Field(
        description="info (a threshold crossed), warning (the last threshold before the money "
        "runs out) or critical (servers stop: exhausted, stop_soon)."
    )
    level: str = Field(description="warning or critical (older clients; see severity).")
    message: str
    threshold: str | None = None
    at: Moment | None = None
    server_name: str | None = Field(None, description="idle_gpu: the server it is about.")
    can_keep: bool | None = Field(
        None, description="idle_gpu: whether its owner may still keep it (POST me/idle/keep)."
    )


class LimitDeclaration(Shape):
    """One quota or limit as :mod:`subsidyhub.limits` declares it."""

    name: str
    kind: str = Field(description="count, hours or names.")
    label: str
    help: str
    unit: str
    minimum: int
    maximum: int
    positive: bool
    member_level: bool
    measure: str | None = Field(description="What its use is measured against.")
    unset: str = Field(description='What an unset value means, e.g. "no limit".')


class Limits(Shape):
    limits: list[LimitDeclaration]


class ProjectSummary(Shape):
    """A project as a person sees it; a course's student (``student``) gets no money fields."""

    slug: str
    name: str
    kind: str
    status: str
    role: str | None = Field(description="The caller's role; null for an admin's view.")
    student: bool
    currency: str
    subsidy_rate: str
    quota: dict[str, LimitValue] = Field(description="The limits in force, by limit name.")
    usage: dict[str, int | str] | None = Field(
        None, description="The member's use of each measured limit, by limit name."
    )
    warnings: list[Warning]
    allocated: Amount | None = None
    balance: Amount | None = None
    overdraft: Amount | None = Field(
        None,
        description="Subsidy charged beyond every allocation: servers that ran past the "
        "balance before they could be stopped. The next allocation pays it first.",
    )
    available: Amount | None = None
    held: Amount | None = None
    burn_rate_per_hour: Amount | None = None
    list_rate_per_hour: Amount | None = None
    time_left_seconds: int | None = Field(
        None,
        description="Seconds until the project's subsidy runs out at its current burn rate; in "
        "GET me, until the first stop of the caller's own servers in the project, if sooner "
        "(their stop time from the session cap, their weekly GPU-hours). Null: nothing burns.",
    )
    time_left_reason: TimeLeftReason | None = Field(
        None, description="What binds time_left_seconds."
    )
    exhaustion_at: Moment | None = None
    balance_display: str | None = None
    running_servers: int | None = None
    gpus_in_use: int | None = None


class Costs(Shape):
    list: Amount
    subsidy: Amount
    copay: Amount


class GpuUsage(Shape):
    """How a GPU server's GPUs have been used (:mod:`subsidyhub.ledger.idle`)."""

    idle_since: Moment | None = Field(
        description="Since when every GPU of it has been idle; null: busy, or not read yet."
    )
    idle_hours: str = Field(description="Its idle GPU time so far, in wall-clock hours.")
    sampled_at: Moment | None = Field(description="Its latest utilisation sample.")
    kept_at: Moment | None = Field(
        description="When its owner chose Keep it despite idle GPUs (once per server)."
    )
    stops_at: Moment | None = Field(
        None,
        description="When it stops if its GPUs stay idle (shown to its owner); null: not idle, "
        "or its project's servers are never stopped for idle GPUs.",
    )


class GpuSamplePoint(Shape):
    at: Moment
    utilisation_pct: int = Field(description="The busiest of its GPUs, 0-100.")
    memory_mib: int = Field(description="GPU memory in use, summed over its GPUs.")
    idle: bool = Field(description="Below the threshold: counted as idle time.")


class GpuUsagePlot(Shape):
    """A running GPU server's recent utilisation (the lab panel's plot) and idle state."""

    user: str
    server_name: str
    session_id: int
    gpu_type: str | None
    gpu_count: int
    threshold_percent: int = Field(description="Below this, every GPU of it counts as idle.")
    sample_seconds: float
    usage: GpuUsage
    samples: list[GpuSamplePoint]
    can_keep: bool = Field(description="Whether its owner may still press Keep it.")


class IdleKept(Shape):
    session_id: int
    server_name: str
    kept_at: Moment
    stops_at: Moment | None = Field(
        description="When it stops if its GPUs stay idle from now; null: never."
    )


class Session(Shape):
    """A running (or stopped) server's session with what it has cost so far."""

    id: int
    user: str
    server_name: str
    project: str
    profile: str
    gpu_type: str | None
    gpu_count: int
    started: Moment
    list_rate_per_hour: Amount
    subsidy_rate_per_hour: Amount
    cost: Costs
    charged_until: Moment
    max_stop_at: Moment | None
    max_stop_reason: str | None = Field(
        None,
        description="Which limit set max_stop_at at admission: max_session_hours (the session "
        "cap) or weekly_gpu_hours (the member's weekly GPU-hours left then).",
    )
    gpu_usage: GpuUsage | None = Field(None, description="GPU servers: how their GPUs are used.")


class CurrencyDisplay(Shape):
    """How pages show the currency's amounts (docs/decisions/display.md)."""

    code: str
    symbol: str = Field(description='Written before the amount, e.g. "HK$".')
    minor_units: int = Field(description="Decimals shown; amounts round half to even to them.")


class RecentStop(Shape):
    """One of the caller's server stops of the last week (:mod:`subsidyhub.ledger.stops`)."""

    session_id: int
    project: str
    project_name: str
    server_name: str
    stopped: Moment
    reason: str = Field(
        description="subsidy_exhausted, weekly_gpu_hours, max_session_hours, project_closed, "
        "reservation, admin, idle, idle_gpu (its GPUs idle too long), superseded, user, stopped "
        "(reported by the hub) or reconciled."
    )
    note: str | None = Field(description="The admin's note, for an admin's stop.")
    message: str = Field(description="What happened and what to do, for the server's owner.")
    current: bool = Field(description="No server of the caller's was started since this stop.")
    own: bool = Field(description="The owner asked for this stop (nothing to explain).")
    hub_stop_at: Moment | None = Field(
        None,
        description="An admin's stop: when the hub stops the server (charges ended at "
        "`stopped`); its user has until then to save their work.",
    )


class Me(Shape):
    user: str
    admin: bool
    at: Moment
    currency: str
    currency_display: CurrencyDisplay
    limits: list[LimitDeclaration]
    projects: list[ProjectSummary]
    sessions: list[Session]
    stops: list[RecentStop] = Field(
        description="The caller's server stops of the last 7 days, newest first (at most 5)."
    )


class RecentStops(Shape):
    user: str
    stops: list[RecentStop]


class Offer(Shape):
    """One profile as the spawn form offers it within one project."""

    slug: str
    display_name: str
    description: str
    gpu_type: str | None
    gpu_count: int
    list_rate_per_hour: Amount
    subsidy_rate_per_hour: Amount
    copay_rate_per_hour: Amount
    hold: Amount
    hours_left: Hours | None = Field(
        description="Hours the project's available subsidy buys at this profile's rate (a "
        "course's student: their weekly GPU-hours); time_left_seconds is the least of all limits."
    )
    time_left_seconds: int | None = Field(
        None,
        description="How long a server of this profile started now may run: the least of what "
        "the available subsidy buys, the weekly GPU-hours left and the session cap. Null: none.",
    )
    time_left_reason: TimeLeftReason | None = Field(
        None, description="Which limit binds time_left_seconds."
    )
    allowed: bool
    reason: str | None = Field(
        None, description="Why not allowed; gpus_busy: every GPU of the type is taken (queue)."
    )
    message: str | None = None
    reserved_for: str | None = Field(
        None,
        description="The project whose reservation needs these GPUs when time_left_seconds "
        "ends (time_left_reason reservation).",
    )
    reserved_from: Moment | None = Field(
        None, description="When that reservation starts: the server must be free by then."
    )


class ProjectOffers(Shape):
    slug: str
    name: str
    role: str
    status: str
    student: bool
    subsidy_rate: str
    available: Amount | None
    quota: dict[str, LimitValue]
    usage: dict[str, int | str]
    left: dict[str, int | str]
    profiles: list[Offer]


class Offers(Shape):
    user: str
    currency: str
    price_version: int
    projects: list[ProjectOffers]
    gpu_types: list[GpuTypeCapacity] = Field(
        default_factory=list, description="Each GPU type now: free, queue, next free."
    )
    queue: list[QueuePlace] = Field(
        default_factory=list, description="The user's places in GPU queues."
    )


class DaySpending(Costs):
    date: str


class ProjectSpending(Shape):
    slug: str
    currency: str
    days: list[DaySpending]


class Spending(Shape):
    user: str
    days: int
    projects: list[ProjectSpending]


class Project(Shape):
    """A project's settings, as audit entries record them."""

    slug: str
    name: str
    kind: str
    status: str
    subsidy_rate: str
    quota: dict[str, LimitValue]


class Projects(Shape):
    projects: list[ProjectSummary]


class Allocation(Shape):
    id: int
    amount: Amount
    drawn: Amount
    valid_from: Moment
    valid_until: Moment | None
    note: str
    created_by: str
    created: Moment


class Allocations(Shape):
    project: str
    allocations: list[Allocation]


class Member(Shape):
    username: str
    role: str
    quota: dict[str, LimitValue] = Field(
        description="The member's own limits; null: the project's applies."
    )
    source: str = Field(description="manual, roster or sso.")
    name: str | None
    email: str | None


class Members(Shape):
    project: str
    members: list[Member]


class MemberUse(Member):
    """A member with the limits in force for them and their use of them this week."""

    quota_in_force: dict[str, LimitValue] = Field(
        description="The limits that apply to the member: their own, else the project's."
    )
    usage: dict[str, int | str] = Field(description="Their use of each measured limit.")
    running_servers: int


class MembersUse(Shape):
    project: str
    members: list[MemberUse]


class ProjectQuota(Shape):
    project: str
    quota: dict[str, LimitValue]


class PriceVersion(Shape):
    version: int
    effective_from: Moment
    cpu_core: Amount
    memory_gib: Amount
    gpu: dict[str, Amount]
    source: str
    note: str


class Prices(Shape):
    currency: str
    current: PriceVersion
    versions: list[PriceVersion]


class Admission(Shape):
    session_id: int
    user: str
    server_name: str
    project: str
    profile: str
    hold: Amount
    list_rate_per_hour: Amount
    subsidy_rate_per_hour: Amount
    started: Moment
    max_stop_at: Moment | None
    price_version: int


class AdmissionVerdict(Shape):
    """A dry run's answer when the policy would admit (a refusal is the usual 403)."""

    allowed: bool
    project: str
    profile: str


class Stopped(Shape):
    session_id: int
    user: str
    server_name: str
    project: str
    stopped: Moment
    reason: str
    already_stopped: bool
    totals: Costs


class AdminStopped(Stopped):
    hub: str = Field(
        description="stopping; scheduled (after the grace, at hub_stop_at); or retrying while "
        "the hub does not answer."
    )
    hub_stop_at: Moment | None = Field(
        None, description="When the hub is asked to stop the server (scheduled only)."
    )


class Sessions(Shape):
    sessions: list[Session]


class AuditEntry(Shape):
    id: int
    at: Moment
    actor: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditEntries(Shape):
    entries: list[AuditEntry]


class StatementProject(Shape):
    slug: str
    name: str
    organisation: str | None
    subsidy_rate: str


class StatementTotals(Costs):
    hours: Hours
    gpu_hours: Hours
    cpu_hours: Hours
    idle_gpu_hours: Hours = Field(
        description="GPU-hours while every GPU of the servers did no work (idle hours × GPUs), "
        "by UTC day within the month."
    )
    idle_list: Amount = Field(
        description="Of list: the GPUs' part of the sessions' rates over their idle time. Part "
        "of the charges, not in addition to them."
    )
    idle_subsidy: Amount = Field(description="Of subsidy: what the scheme paid for idle GPUs.")
    idle_copay: Amount = Field(description="Of co-pay: idle_list minus idle_subsidy.")


class StatementLine(StatementTotals):
    project: str
    username: str
    profile: str
    gpu_type: str | None
    sessions: int


class Statement(Shape):
    month: str
    currency: str
    projects: list[StatementProject]
    lines: list[StatementLine]
    totals: StatementTotals


class UtilisationRow(Shape):
    """One GPU type (``cpu-only`` for sessions without GPUs; ``TOTAL``) in one month."""

    gpu_type: str
    gpus: int | None = Field(description="Capacity; null where unknown or for cpu-only.")
    capacity_source: str | None
    capacity_gpu_hours: Hours | None
    used_gpu_hours: Hours = Field(description="GPU-hours charged to sessions in the month.")
    utilisation_percent: str | None = Field(description="Used over capacity, in percent.")
    reserved_gpu_hours: Hours
    reserved_unused_gpu_hours: Hours
    sessions: int
    list: Amount
    subsidy: Amount
    idle_gpu_hours: Hours = Field(
        description="Of the used GPU-hours, those while every GPU of a server did no work."
    )
    idle_percent: str | None = Field(
        description="Idle GPU-hours over used GPU-hours, in percent; null with no use."
    )
    idle_list: Amount = Field(
        description="The GPUs' part of the list price over their idle time: part of list."
    )
    idle_subsidy: Amount = Field(description="Of subsidy: what the scheme paid for idle GPUs.")


class UtilisationProject(Shape):
    """One project's GPU use in the month (all types) and its idle GPUs."""

    project: str
    used_gpu_hours: Hours
    idle_gpu_hours: Hours
    idle_percent: str | None
    idle_list: Amount
    idle_subsidy: Amount


class Utilisation(Shape):
    """The month's GPU utilisation per GPU type and per project, as the funder asks for it."""

    month: str
    currency: str
    hours_in_month: Hours
    rows: list[UtilisationRow]
    totals: UtilisationRow
    projects: list[UtilisationProject] = Field(
        description="Projects that used GPUs or left them idle in the month, by slug."
    )
    unknown_capacity: list[str] = Field(description="GPU types whose capacity is unknown.")
    scheme: SchemeTotals | None = Field(
        None, description="The scheme's grants now: approved, allocated, spent, projected."
    )


class MembershipChange(Shape):
    project: str
    change: str
    role: str | None
    previous_role: str | None


class SsoSync(Shape):
    user: str
    changes: list[MembershipChange]
    kept: list[str]
    unknown_projects: list[str]


class RosterUpdate(Shape):
    username: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class Enrolment(Shape):
    project: str
    applied: bool
    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    updated: list[RosterUpdate]
    kept: list[dict[str, Any]]
    unchanged: int
    summary: str


class ReservationWindow(Shape):
    reservation_id: int
    project: str = Field(description="The project's display name.")
    gpus: int
    starts: Moment
    ends: Moment


class GpuTypeCapacity(Shape):
    """One GPU type now, as the spawn page and ``subsidyhub capacity show`` read it."""

    gpu_type: str
    label: str = Field(description='As people read it: "H800".')
    gpus: int | None = Field(description="Capacity; null when the centre has not declared it.")
    source: str = Field(description="gpu_capacity, local.gpus, docker.gpus or unknown.")
    in_use: int = Field(description="GPUs held by running servers and open offers.")
    gpus_idle: int = Field(
        description="Of those in use, GPUs of running servers whose GPUs all do no work now "
        "(below the idle threshold at their latest sample)."
    )
    reserved_now: int = Field(description="GPUs reserved for projects at this instant.")
    free_now: int | None = Field(description="GPUs anyone may take now (not reserved).")
    waiting: int = Field(description="Servers waiting in the queue.")
    next_free: Moment | None = Field(
        description="When a GPU is expected to be free for anyone (the usual length of "
        "sessions; a guess, never a promise); now when one is."
    )
    next_free_latest: Moment | None = Field(
        description="When one is free at the latest, from running sessions' known ends; null "
        "where servers without a known end hold them."
    )
    windows: list[ReservationWindow] = Field(description="Reservation windows of the next 7 days.")


class Capacity(Shape):
    gpu_types: list[GpuTypeCapacity]


class CalendarSlot(Shape):
    at: Moment
    reserved: int
    running: int = Field(description="GPUs of servers still running then, to their known ends.")
    free: int


class CapacityCalendar(Shape):
    gpu_type: str
    label: str
    gpus: int | None
    slots: list[CalendarSlot] = Field(description="One per hour, from the current hour.")


class CapacityCalendars(Shape):
    calendars: list[CapacityCalendar]


class QueuePlace(Shape):
    id: int
    user: str
    server_name: str
    project: str
    profile: str
    gpu_type: str
    gpus: int
    state: Literal["waiting", "offered", "admitted", "left", "expired"]
    joined: Moment
    position: int | None = Field(
        None, description="1 = next; 0 while holding an offer; null once ended."
    )
    gpus_ahead: int | None = None
    estimated_start: Moment | None = Field(
        None, description="When the GPUs are expected free for this place (a guess)."
    )
    latest_start: Moment | None = Field(
        None, description="At the latest, from running sessions' known ends; null if unknown."
    )
    offer_expires: Moment | None = Field(
        None, description="An offer is held for this place until then: start the server."
    )
    ended: Moment | None = None


class Queue(Shape):
    places: list[QueuePlace]


class Reservation(Shape):
    id: int
    project: str
    gpu_type: str
    gpus: int
    starts: Moment = Field(description="The first window's start.")
    ends: Moment = Field(description="The first window's end.")
    weeks: int = Field(description="How many weekly windows (1: once).")
    note: str
    created_by: str
    cancelled: Moment | None


class Reservations(Shape):
    reservations: list[Reservation]


class Health(Shape):
    status: str
    database: str | None = None


# What any API route may answer besides its own 2xx, for the OpenAPI.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Error, "description": "Bad input: the message names the value and the limit."},
    401: {"model": Error, "description": "No valid token."},
    403: {"model": Error, "description": "The token may not do this."},
    404: {"model": Error, "description": "No such project, member, session or user."},
    409: {"model": Error, "description": "Conflicts with the ledger's state."},
    503: {"model": Error, "description": "JupyterHub or the database does not answer."},
}


# -- building the shapes from the ledger's objects -------------------------------------------
# Plain dicts (what the routes return and FastAPI checks against the models above, what the CLI
# prints with --json and what audit entries record), built here and nowhere else.


def describe_reservation(row: ReservationRow, project_slug: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "project": project_slug,
        "gpu_type": row.gpu_type,
        "gpus": row.gpu_count,
        "starts": iso(row.starts_ms),
        "ends": iso(row.ends_ms),
        "weeks": row.weeks,
        "note": row.note,
        "created_by": row.created_by,
        "cancelled": iso(row.cancelled_ms),
    }


def describe_entry(entry: QueueEntryRow, project_slug: str) -> dict[str, Any]:
    """A queue entry without its place (an ended one, or the answer to joining or leaving)."""
    return {
        "id": entry.id,
        "user": entry.username,
        "server_name": entry.server_name,
        "project": project_slug,
        "profile": entry.profile_slug,
        "gpu_type": entry.gpu_type,
        "gpus": entry.gpu_count,
        "state": entry.state,
        "joined": iso(entry.joined_ms),
        "offer_expires": iso(entry.offer_expires_ms) if entry.state == "offered" else None,
        "ended": iso(entry.ended_ms),
    }


def describe_place(place: QueuePlaceResult) -> dict[str, Any]:
    return describe_entry(place.entry, place.project) | {
        "position": place.position,
        "gpus_ahead": place.gpus_ahead,
        "estimated_start": iso(place.estimate_ms),
        "latest_start": iso(place.latest_ms),
    }


def describe_calendar(state: TypeState, slots: list[Slot]) -> dict[str, Any]:
    return {
        "gpu_type": state.gpu_type,
        "label": gpu_label(state.gpu_type),
        "gpus": state.capacity,
        "slots": [
            {"at": iso(s.at_ms), "reserved": s.reserved, "running": s.running, "free": s.free}
            for s in slots
        ],
    }


def describe_type_view(view: TypeView) -> dict[str, Any]:
    state = view.state
    return {
        "gpu_type": state.gpu_type,
        "label": gpu_label(state.gpu_type),
        "gpus": state.capacity,
        "source": state.source,
        "in_use": state.in_use,
        "gpus_idle": state.gpus_idle,
        "reserved_now": view.reserved_now,
        "free_now": view.free_now,
        "waiting": view.waiting,
        "next_free": iso(view.next_free_ms),
        "next_free_latest": iso(view.next_free_latest_ms),
        "windows": [
            {
                "reservation_id": w.reservation_id,
                "project": w.project_name,
                "gpus": w.gpu_count,
                "starts": iso(w.starts_ms),
                "ends": iso(w.ends_ms),
            }
            for w in view.windows
        ],
    }


def describe_project(project: ProjectRow) -> dict[str, Any]:
    return {
        "slug": project.slug,
        "name": project.name,
        "kind": project.kind,
        "status": project.status,
        "subsidy_rate": bp_to_fraction_string(project.subsidy_bp),
        "quota": describe_quota(project),
    }


def describe_quota(project: ProjectRow) -> dict[str, Any]:
    """Every limit of the project by name (``None``: no limit)."""
    return limits.show_all(project.limits)


def describe_member(member: MemberRow) -> dict[str, Any]:
    return {
        "username": member.username,
        "role": member.role,
        # The member's own values of member-level limits (None: the project's applies).
        "quota": limits.show_all(member.limits, limits.MEMBER_LIMITS),
        # How the membership came about (manual, roster, sso) and the contact a roster gave.
        "source": member.source,
        "name": member.display_name,
        "email": member.email,
    }


def describe_allocation(allocation: AllocationRow) -> dict[str, Any]:
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


STUDENT_WARNINGS = ("exhausted", "stop_soon")


def warnings_for(settings: Settings, project: Any, account: Account) -> list[dict[str, Any]]:
    """The most severe balance threshold crossed, and a stop forecast when it is near.

    Each is a condition that holds now, with an ``id`` that stays the same while it holds:
    clients remember the ids they showed and show a warning again only once it has cleared
    and come back (:class:`Warning`).
    """
    found: list[dict[str, Any]] = []
    currency = settings.currency
    if account.allocated > 0:
        crossed = [
            f
            for f in sorted(settings.metering.warn_fractions)
            if account.balance < account.allocated * f
        ]
        if account.balance <= 0:
            found.append(
                {
                    "code": "exhausted",
                    "severity": "critical",
                    "level": "critical",
                    "message": f"Project {project.name} has no subsidy left; "
                    + (
                        "its servers are being stopped. "
                        if account.sessions
                        else "no server can start in it. "
                    )
                    + "Ask your project manager to top up.",
                }
            )
        elif crossed:
            fraction = crossed[0]
            percent = int(fraction * 100)
            last = fraction == min(settings.metering.warn_fractions)
            found.append(
                {
                    "code": f"below_{percent}_percent",
                    "severity": "warning" if last else "info",
                    "level": "critical" if last else "warning",
                    "threshold": f"{fraction}",
                    "message": f"Project {project.name} has less than {percent}% of its allocation left "
                    f"({format_money(account.balance, currency)} of {format_money(account.allocated, currency)}).",
                }
            )
    horizon_ms = int(settings.metering.warn_minutes_before_stop * 60_000)
    left = account.time_left_ms
    if left is not None and account.balance > 0 and left <= horizon_ms:
        minutes = max(1, round(left / 60_000))
        found.append(
            {
                "code": "stop_soon",
                "severity": "critical",
                "level": "critical",
                "at": iso(account.exhaustion_ms),
                "message": f"Save your work: servers in project {project.name} stop in {minutes} minutes "
                f"(at {iso(account.exhaustion_ms)}) because the project's subsidy runs out.",
            }
        )
    return [{"id": f"{project.slug}:{w['code']}"} | w for w in found]


def summarise_project(
    settings: Settings,
    project: Any,
    account: Account,
    *,
    member: Any = None,
    username: str | None = None,
    gpu_ms_week: int = 0,
    allowance_only: bool = False,
) -> dict[str, Any]:
    """A project as a person sees it (:class:`ProjectSummary`), from facts already read.

    :func:`subsidyhub.ledger.summary.project_summary` reads them for one project;
    ``GET me`` reads them for all the caller's projects at once.

    ``project`` and ``member`` are ORM rows or plain rows with the same columns;
    ``gpu_ms_week`` is the member's GPU use in the last 7 days (see :func:`gpu_ms_in_week`),
    shown only with ``username``. ``allowance_only`` (a course's student) leaves out the
    project's money, which is the lecturer's business: the student sees their limits (their
    allowance) and their use of them.
    """
    in_force = limits.effective(project.limits, member.limits if member is not None else None)
    head: dict[str, Any] = {
        "slug": project.slug,
        "name": project.name,
        "kind": project.kind,
        "status": project.status,
        "role": member.role if member else None,
        # A course's student: no money fields below, their limits and their use of them.
        "student": allowance_only,
        "currency": settings.currency,
        "subsidy_rate": bp_to_fraction_string(project.subsidy_bp),
        # The limits in force for this member, and (with ``username``) their use of them.
        "quota": limits.show_all(in_force),
    }
    if username is not None:
        head["usage"] = limits.show_usage(
            {
                "project_gpus": account.gpus_in_use,
                "member_gpus": sum(s.gpu_count for s in account.sessions if s.username == username),
                "member_gpu_ms_week": gpu_ms_week,
            }
        )
    if allowance_only:
        # Stops concern the student too; how much money is left does not.
        return head | {
            "warnings": [
                w for w in warnings_for(settings, project, account) if w["code"] in STUDENT_WARNINGS
            ],
        }
    left = time_limits.TimeLeft(account.time_left_ms, "balance")
    if username is not None:
        # The caller's own servers may stop before the money runs out (GET me, the status bar).
        left = time_limits.for_member(
            balance_ms=account.time_left_ms,
            in_force=in_force,
            gpu_ms_week=gpu_ms_week,
            running=(
                (s.gpu_count, s.started_ms, s.max_stop_ms)
                for s in account.sessions
                if s.username == username
            ),
            now_ms=account.at_ms,
        )
    return head | {
        "allocated": to_decimal_string(account.allocated),
        "balance": to_decimal_string(account.balance),
        "overdraft": to_decimal_string(max(0, -account.balance)),
        "available": to_decimal_string(account.available),
        "held": to_decimal_string(account.holds),
        "burn_rate_per_hour": to_decimal_string(account.burn_rate_per_hour),
        "list_rate_per_hour": to_decimal_string(account.list_rate_per_hour),
        "time_left_seconds": left.seconds,
        "time_left_reason": left.binding,
        "exhaustion_at": iso(account.exhaustion_ms),
        "balance_display": format_money(account.balance, settings.currency),
        "running_servers": len(account.sessions),
        "gpus_in_use": account.gpus_in_use,
        "warnings": warnings_for(settings, project, account),
    }


def describe_gpu_usage(row: SpawnSession, stops_at_ms: int | None = None) -> dict[str, Any]:
    return {
        "idle_since": iso(row.idle_since_ms),
        "idle_hours": format_hours(row.idle_gpu_ms, 2),
        "sampled_at": iso(row.gpu_sampled_ms),
        "kept_at": iso(row.idle_kept_ms),
        "stops_at": iso(stops_at_ms),
    }


def describe_gpu_plot(plot: IdlePlot, settings: Settings) -> dict[str, Any]:
    row = plot.session
    threshold = settings.idle_gpu.threshold_percent
    return {
        "user": row.username,
        "server_name": row.server_name,
        "session_id": row.id,
        "gpu_type": row.gpu_type,
        "gpu_count": row.gpu_count,
        "threshold_percent": threshold,
        "sample_seconds": settings.idle_gpu.sample_seconds,
        "usage": describe_gpu_usage(row, plot.stops_at_ms),
        "samples": [
            {
                "at": iso(sample.at_ms),
                "utilisation_pct": sample.utilisation_pct,
                "memory_mib": sample.memory_mib,
                "idle": sample.utilisation_pct < threshold,
            }
            for sample in plot.samples
        ],
        "can_keep": row.idle_kept_ms is None,
    }


def describe_session(
    row: SpawnSession, project_slug: str, now_ms: int, idle_stop_ms: int | None = None
) -> dict[str, Any]:
    """A running session with what it has cost so far (charged plus accrued since)."""
    end = row.stopped_ms if row.stopped_ms is not None else max(now_ms, row.started_ms)
    cost = accrued(row.list_rate_micro, row.subsidy_bp, end - row.started_ms)
    return {
        "id": row.id,
        "user": row.username,
        "server_name": row.server_name,
        "project": project_slug,
        "profile": row.profile_slug,
        "gpu_type": row.gpu_type,
        "gpu_count": row.gpu_count,
        "started": iso(row.started_ms),
        "list_rate_per_hour": to_decimal_string(row.list_rate_micro),
        "subsidy_rate_per_hour": to_decimal_string(
            subsidy_rate_per_hour(row.list_rate_micro, row.subsidy_bp)
        ),
        "cost": {
            "list": to_decimal_string(cost.list),
            "subsidy": to_decimal_string(cost.subsidy),
            "copay": to_decimal_string(cost.copay),
        },
        "charged_until": iso(row.charged_until_ms),
        "max_stop_at": iso(row.max_stop_ms),
        "max_stop_reason": row.max_stop_reason if row.max_stop_ms is not None else None,
        "gpu_usage": describe_gpu_usage(row, idle_stop_ms) if row.gpu_count else None,
    }


def describe_admission(admission: AdmissionResult) -> dict[str, Any]:
    return {
        "session_id": admission.session_id,
        "user": admission.username,
        "server_name": admission.server_name,
        "project": admission.project,
        "profile": admission.profile,
        "hold": to_decimal_string(admission.hold),
        "list_rate_per_hour": to_decimal_string(admission.list_rate),
        "subsidy_rate_per_hour": to_decimal_string(
            subsidy_rate_per_hour(admission.list_rate, admission.subsidy_bp)
        ),
        "started": iso(admission.started_ms),
        "max_stop_at": iso(admission.max_stop_ms),
        "price_version": admission.price_version,
    }


def describe_verdict(admission: AdmissionResult) -> dict[str, Any]:
    return {"allowed": True, "project": admission.project, "profile": admission.profile}


def describe_stopped(stopped: StopResult) -> dict[str, Any]:
    return {
        "session_id": stopped.session_id,
        "user": stopped.username,
        "server_name": stopped.server_name,
        "project": stopped.project,
        "stopped": iso(stopped.stopped_ms),
        "reason": stopped.reason,
        "already_stopped": stopped.already,
        "totals": {
            "list": to_decimal_string(stopped.list_micro),
            "subsidy": to_decimal_string(stopped.subsidy_micro),
            "copay": to_decimal_string(stopped.list_micro - stopped.subsidy_micro),
        },
    }


def describe_audit_entry(entry: AuditEntryRow) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": iso(entry.at_ms),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "before": entry.before,
        "after": entry.after,
    }


def hours_affordable(available: int, subsidy_per_hour: int) -> str | None:
    """How long the project's available subsidy runs this rate; ``None`` when it costs none."""
    if subsidy_per_hour <= 0:
        return None
    hours = Decimal(max(0, available)) / Decimal(subsidy_per_hour)
    return f"{hours.quantize(Decimal('0.01'), rounding=ROUND_DOWN)}"


def describe_offer(
    profile: Profile,
    prices: PriceList,
    subsidy_bp: int,
    account: Account,
    decision: Decision,
    hold: int,
) -> dict[str, Any]:
    """One profile as the spawn form offers it within one project."""
    rate = list_rate_per_hour(prices, resources_of(profile))
    subsidy = subsidy_rate_per_hour(rate, subsidy_bp)
    offer: dict[str, Any] = {
        "slug": profile.slug,
        "display_name": profile.display_name,
        "description": profile.description,
        "gpu_type": profile.gpu_type,
        "gpu_count": profile.gpu_count,
        "list_rate_per_hour": to_decimal_string(rate),
        "subsidy_rate_per_hour": to_decimal_string(subsidy),
        "copay_rate_per_hour": to_decimal_string(rate - subsidy),
        "hold": to_decimal_string(hold),
        "hours_left": hours_affordable(account.available, subsidy),
        "allowed": decision.allowed,
    }
    if not decision.allowed:
        offer["reason"] = decision.reason
        offer["message"] = decision.message
    return offer


def describe_price_version(version: PriceVersionRow) -> dict[str, Any]:
    return {
        "version": version.id,
        "effective_from": iso(version.effective_from_ms),
        "cpu_core": to_decimal_string(version.cpu_core_micro),
        "memory_gib": to_decimal_string(version.memory_gib_micro),
        "gpu": {k: to_decimal_string(int(v)) for k, v in sorted(version.gpu_micro.items())},
        "source": version.source,
        "note": version.note,
    }


def describe_sync(result: SyncResult) -> dict[str, Any]:
    return {
        "user": result.username,
        "changes": [
            {
                "project": change.project,
                "change": change.change,
                "role": change.role,
                "previous_role": change.previous_role,
            }
            for change in result.changes
        ],
        "kept": list(result.kept),
        "unknown_projects": list(result.unknown_projects),
    }


# -- applications and burn plans (issue 18) ------------------------------------------------


class ApplicationEvent(Shape):
    at: Moment
    actor: str
    kind: str = Field(
        description="created, edited, submitted, commented, approved, rejected or withdrawn."
    )
    body: str = Field(description="A comment, a rejection's reason, or the approval's terms.")


class Application(Shape):
    """An application for a grant and what became of it (``docs/applications.md``)."""

    id: int
    kind: str = Field(description="new, top_up or extension.")
    state: str = Field(description="draft, submitted, approved, rejected or withdrawn.")
    applicant: str
    email: str | None
    project: str | None = Field(description="The project it tops up, extends or created.")
    slug: str
    title: str
    organisation: str
    abstract: str
    amount: Amount
    gpu_hours: dict[str, int]
    starts: Moment
    ends: Moment
    team: list[str]
    plan: list[Amount] = Field(description="Amount per quarter from the start; empty: even.")
    created: Moment
    updated: Moment
    submitted: Moment | None
    decided: Moment | None
    decided_by: str | None
    reason: str = Field(description="A rejection's reason, or the admin's note on approval.")
    subsidy_rate: str | None = Field(description="The approved subsidy share, e.g. 0.75.")
    approved_amount: Amount | None
    allocation_id: int | None
    events: list[ApplicationEvent] | None = Field(
        None, description="Its history, oldest first (one application's answer only)."
    )


class Applications(Shape):
    applications: list[Application]


def describe_application(
    row: ApplicationRow,
    project_slug: str | None,
    events: list[ApplicationEventRow] | None = None,
) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": row.id,
        "kind": row.kind,
        "state": row.state,
        "applicant": row.applicant,
        "email": row.email,
        "project": project_slug,
        "slug": row.slug,
        "title": row.title,
        "organisation": row.organisation,
        "abstract": row.abstract,
        "amount": to_decimal_string(row.amount_micro),
        "gpu_hours": dict(row.gpu_hours),
        "starts": iso(row.starts_ms),
        "ends": iso(row.ends_ms),
        "team": list(row.team),
        "plan": [to_decimal_string(amount) for amount in row.plan],
        "created": iso(row.created_ms),
        "updated": iso(row.updated_ms),
        "submitted": iso(row.submitted_ms),
        "decided": iso(row.decided_ms),
        "decided_by": row.decided_by,
        "reason": row.reason,
        "subsidy_rate": None if row.rate_bp is None else bp_to_fraction_string(row.rate_bp),
        "approved_amount": None
        if row.approved_micro is None
        else to_decimal_string(row.approved_micro),
        "allocation_id": row.allocation_id,
    }
    if events is not None:
        shown["events"] = [
            {"at": iso(e.at_ms), "actor": e.actor, "kind": e.kind, "body": e.body} for e in events
        ]
    return shown


class PlanMonthFigures(Shape):
    month: str = Field(description="YYYY-MM (UTC).")
    planned: Amount
    spent: Amount = Field(description="Subsidy the project's charges drew in the month.")


class BurnPosition(Shape):
    """A project's subsidy spent against its grants' plan (``ledger.burn_plan``)."""

    project: str
    name: str
    granted: Amount = Field(description="Its grants (allocations with an end), together.")
    planned_to_date: Amount
    spent_to_date: Amount
    status: Literal["on_plan", "over_plan", "under_plan"] = Field(
        description="over_plan: more than scheme.plan_margin_percent over the plan to date "
        "(it will run out early); under_plan: as much under (subsidy at risk of going unused)."
    )
    deviation_percent: str | None = Field(
        description="Spent over (+) or under (-) the plan to date, in percent of it."
    )
    projected: Amount = Field(description="Spent by the end at the last 30 days' pace.")
    projected_unused: Amount
    runs_out_at: Moment | None = Field(description="At that pace, if before the end.")
    ends: Moment
    message: str = Field(description="What the position means, for a manager or an admin.")
    months: list[PlanMonthFigures]


class BurnPositions(Shape):
    positions: list[BurnPosition]


class SchemeTotals(Shape):
    """The scheme as a whole: approved, allocated, spent, remaining, projected."""

    approved: Amount = Field(description="Amounts of approved applications.")
    allocated: Amount = Field(description="Grants in force or ended (allocations with an end).")
    spent: Amount = Field(description="Subsidy their projects' charges drew since they started.")
    remaining: Amount
    projected: Amount = Field(description="Spent by each grant's end at the last 30 days' pace.")
    projected_unused: Amount


class SchemeView(SchemeTotals):
    """The scheme's figures, and its projects ranked by under-use."""

    over_plan: int = Field(description="Projects more than the margin over plan.")
    under_plan: int = Field(description="Projects more than the margin under plan.")
    ranking: list[BurnPosition] = Field(
        description="Projects by projected unused subsidy, most first (under-use first)."
    )


def describe_position(position: BurnPosition, currency: str, now_ms: int) -> dict[str, Any]:
    return {
        "project": position.slug,
        "name": position.name,
        "granted": to_decimal_string(position.granted_micro),
        "planned_to_date": to_decimal_string(position.planned_to_date_micro),
        "spent_to_date": to_decimal_string(position.spent_to_date_micro),
        "status": position.status,
        "deviation_percent": None
        if position.deviation_bp is None
        else f"{position.deviation_bp / 100:.2f}",
        "projected": to_decimal_string(position.projected_micro),
        "projected_unused": to_decimal_string(position.unused_micro),
        "runs_out_at": iso(position.runs_out_ms),
        "ends": iso(position.ends_ms),
        "message": position_message(position, currency, now_ms),
        "months": [
            {
                "month": m.month,
                "planned": to_decimal_string(m.planned_micro),
                "spent": to_decimal_string(m.spent_micro),
            }
            for m in position.months
        ],
    }


def position_message(position: BurnPosition, currency: str, now_ms: int) -> str:
    """One sentence for a manager or an admin: where the grant stands against its plan."""
    spent = format_money(position.spent_to_date_micro, currency)
    planned = format_money(position.planned_to_date_micro, currency)
    if position.status == "over_plan":
        end = day_of(position.ends_ms)
        if position.runs_out_ms is not None and position.runs_out_ms <= now_ms:
            when = f"is spent already, before its end on {end}"
        elif position.runs_out_ms is not None:
            when = f"runs out on {day_of(position.runs_out_ms)}, before its end on {end}"
        else:
            when = "may run out before its end"
        return (
            f"{spent} spent against {planned} planned by now: at this pace the grant {when}. "
            "Slow down, or apply for a top-up."
        )
    if position.status == "under_plan":
        unused = format_money(position.unused_micro, currency)
        return (
            f"{spent} spent against {planned} planned by now: at this pace {unused} of the "
            f"grant will be left unused at its end on {day_of(position.ends_ms)}."
        )
    return f"{spent} spent against {planned} planned by now: on plan."


def describe_scheme(view: SchemeFigures, currency: str, now_ms: int) -> dict[str, Any]:
    ranking = view.ranking()
    return view.totals() | {
        "over_plan": sum(p.status == "over_plan" for p in ranking),
        "under_plan": sum(p.status == "under_plan" for p in ranking),
        "ranking": [describe_position(p, currency, now_ms) for p in ranking],
    }
