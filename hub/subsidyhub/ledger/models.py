"""The ledger's tables (SQLAlchemy 2, typed).

Conventions that the rest of the code relies on:

* Money is ``BigInteger`` micro-units (``*_micro``); rates are per hour; shares are basis points.
* Times are ``BigInteger`` milliseconds since the Unix epoch (``*_ms``): identical on SQLite and
  PostgreSQL, no time-zone ambiguity, and the telescoping charge arithmetic is integer.
* Append-only: ``allocations``, ``charges``, ``price_versions`` and ``audit`` rows are never
  updated or deleted; corrections are new rows (negative allocations, ``reversal`` charges).
  Two columns are derived caches kept in the same transaction as the entries they summarise,
  so balances need no scan of history: ``allocations.drawn_micro`` and ``projects.overdraft_micro``
  (subsidy drawn), and the ``sessions.charged_*`` totals. ``ledger.accounts.verify`` checks them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# 64-bit everywhere; on SQLite plain INTEGER so that primary keys alias the rowid.
Int64 = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        int: Int64,
        dict[str, Any]: JSON,
        list[str]: JSON,
        list[int]: JSON,
    }


class Organisation(Base):
    __tablename__ = "organisations"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_ms: Mapped[int]


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    kind: Mapped[str] = mapped_column(String(16), default="research")
    status: Mapped[str] = mapped_column(String(16), default="active")
    subsidy_bp: Mapped[int] = mapped_column(Integer)
    # Quotas and limits by the names of subsidyhub.limits, in stored units; absent = none.
    limits: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    overdraft_micro: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    created_ms: Mapped[int]


class Allocation(Base):
    __tablename__ = "allocations"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    amount_micro: Mapped[int]
    valid_from_ms: Mapped[int]
    valid_until_ms: Mapped[int | None]
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_ms: Mapped[int]
    drawn_micro: Mapped[int] = mapped_column(default=0, server_default=text("0"))


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("project_id", "username"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    username: Mapped[str] = mapped_column(String(255), index=True)
    role: Mapped[str] = mapped_column(String(16), default="member")
    # The member's own values of member-level limits, overriding the project's.
    limits: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    created_ms: Mapped[int]
    # How the membership came about: "manual", "roster" or "sso". Roster and SSO sync only
    # ever remove memberships of their own source, so neither undoes the other or an admin.
    source: Mapped[str] = mapped_column(String(16), default="manual", server_default="manual")
    display_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))


class PriceVersion(Base):
    __tablename__ = "price_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    effective_from_ms: Mapped[int] = mapped_column(index=True)
    cpu_core_micro: Mapped[int]
    memory_gib_micro: Mapped[int]
    gpu_micro: Mapped[dict[str, Any]]
    source: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text, default="")
    created_ms: Mapped[int]


class SpawnSession(Base):
    """One admitted server: resources and rates are fixed here at admission."""

    __tablename__ = "sessions"
    __table_args__ = (
        Index(
            "uq_sessions_running_server",
            "username",
            "server_name",
            unique=True,
            sqlite_where=text("stopped_ms IS NULL"),
            postgresql_where=text("stopped_ms IS NULL"),
        ),
        Index(
            "ix_sessions_running",
            "project_id",
            sqlite_where=text("stopped_ms IS NULL"),
            postgresql_where=text("stopped_ms IS NULL"),
        ),
        Index("ix_sessions_member_recent", "project_id", "username", "started_ms"),
        # On PostgreSQL the table has fillfactor 50 (migration 0001): every tick rewrites each
        # running session's charged totals, and free room in each page lets PostgreSQL update
        # in place (HOT). Not a table option here: ``postgresql_with`` is SQLAlchemy 2.1 only,
        # and z2jh's hub image, which runs this code, pins 2.0.
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    username: Mapped[str] = mapped_column(String(255))
    server_name: Mapped[str] = mapped_column(String(255), default="")
    profile_slug: Mapped[str] = mapped_column(String(64))
    cpu_millicores: Mapped[int] = mapped_column(Integer)
    memory_mib: Mapped[int] = mapped_column(Integer)
    gpu_type: Mapped[str | None] = mapped_column(String(64))
    gpu_count: Mapped[int] = mapped_column(Integer, default=0)
    price_version_id: Mapped[int] = mapped_column(ForeignKey("price_versions.id"))
    list_rate_micro: Mapped[int]
    subsidy_bp: Mapped[int] = mapped_column(Integer)
    started_ms: Mapped[int]
    stopped_ms: Mapped[int | None] = mapped_column(index=True)
    max_stop_ms: Mapped[int | None]
    # The limit that set ``max_stop_ms``: max_session_hours or weekly_gpu_hours.
    max_stop_reason: Mapped[str | None] = mapped_column(String(64))
    stop_reason: Mapped[str | None] = mapped_column(String(64))
    # What an admin wrote when stopping the server, told to its owner (migration 0005).
    stop_note: Mapped[str | None] = mapped_column(String(500))
    charged_until_ms: Mapped[int]
    charged_list_micro: Mapped[int] = mapped_column(default=0)
    charged_subsidy_micro: Mapped[int] = mapped_column(default=0)
    # The last instant reconciliation saw the hub run the server: where a stop the hub never
    # reported is placed, since "now" may be long after the server really stopped.
    seen_ms: Mapped[int | None]
    # The stop instant the hub reported, once it did; a reported stop is final.
    reported_stop_ms: Mapped[int | None]
    # Where its GPUs are read (migration 0007): host GPU ids (local, Docker) or its pod.
    gpu_devices: Mapped[list[str] | None]
    pod_name: Mapped[str | None] = mapped_column(String(253))
    # Idle GPU time so far (wall time of the server while every GPU of it was idle).
    idle_gpu_ms: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    # Since when every GPU has been idle (None: busy or not sampled); reset by "Keep it".
    idle_since_ms: Mapped[int | None]
    # When the owner chose to keep it despite idle GPUs (at most once per server).
    idle_kept_ms: Mapped[int | None]
    gpu_sampled_ms: Mapped[int | None]


class GpuSample(Base):
    """One reading of a running server's GPUs: the lab's plot and the evidence for its idle
    time. ``idle_ms`` is what this reading added to ``sessions.idle_gpu_ms``. Telemetry, not
    money: rows older than ``idle_gpu.window_minutes`` are deleted."""

    __tablename__ = "gpu_samples"
    __table_args__ = (Index("ix_gpu_samples_session", "session_id", "at_ms"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    at_ms: Mapped[int]
    utilisation_pct: Mapped[int] = mapped_column(Integer)
    memory_mib: Mapped[int] = mapped_column(Integer)
    idle_ms: Mapped[int]


class IdleGpuDay(Base):
    """A session's idle GPU time within one UTC day (``day_ms``: its midnight): what statements
    and reports sum over a month or period. Wall time; GPU-hours multiply by the session's
    ``gpu_count``. The days of a session add up to its ``idle_gpu_ms``."""

    __tablename__ = "idle_gpu_days"
    __table_args__ = (Index("ix_idle_gpu_days_day", "day_ms"),)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), primary_key=True)
    day_ms: Mapped[int] = mapped_column(primary_key=True)
    idle_ms: Mapped[int]


class Hold(Base):
    """Funds set aside at admission for the minimum billable period; charges consume it."""

    __tablename__ = "holds"
    __table_args__ = (
        Index(
            "ix_holds_open",
            "project_id",
            sqlite_where=text("released_ms IS NULL"),
            postgresql_where=text("released_ms IS NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    amount_micro: Mapped[int]
    created_ms: Mapped[int]
    released_ms: Mapped[int | None]


class Charge(Base):
    """One append-only charge line for one session's interval; unique per interval end."""

    __tablename__ = "charges"
    __table_args__ = (
        UniqueConstraint("session_id", "interval_end_ms", "kind", name="uq_charges_interval"),
        Index("ix_charges_project_end", "project_id", "interval_end_ms"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    kind: Mapped[str] = mapped_column(String(16), default="usage")
    interval_start_ms: Mapped[int]
    interval_end_ms: Mapped[int]
    list_micro: Mapped[int]
    subsidy_micro: Mapped[int]
    copay_micro: Mapped[int]
    created_ms: Mapped[int]


class AuditEntry(Base):
    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    at_ms: Mapped[int] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255), index=True)
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]


class Reservation(Base):
    """GPUs of one type kept for one project over a window, once or weekly (issue 16).

    Not money: sessions in a reservation are charged as usual. A cancelled reservation keeps
    its row (``cancelled_ms``) so the audit and the utilisation report can still read it.
    """

    __tablename__ = "reservations"
    __table_args__ = (Index("ix_reservations_type", "gpu_type", "cancelled_ms"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    gpu_type: Mapped[str] = mapped_column(String(64))
    gpu_count: Mapped[int] = mapped_column(Integer)
    # The first occurrence; a weekly reservation repeats it ``weeks`` times in all.
    starts_ms: Mapped[int]
    ends_ms: Mapped[int]
    weeks: Mapped[int] = mapped_column(Integer, default=1)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[str] = mapped_column(String(255))
    created_ms: Mapped[int]
    cancelled_ms: Mapped[int | None]
    cancelled_by: Mapped[str | None] = mapped_column(String(255))


class QueueEntry(Base):
    """One wait for a GPU server: joined, then offered, then admitted, left or expired.

    ``state`` moves forward only; an entry that ended keeps its row, so the wait-time metric
    and "nobody skipped" can be checked afterwards.
    """

    __tablename__ = "queue_entries"
    __table_args__ = (
        Index(
            "uq_queue_entries_waiting_server",
            "username",
            "server_name",
            unique=True,
            sqlite_where=text("ended_ms IS NULL"),
            postgresql_where=text("ended_ms IS NULL"),
        ),
        Index("ix_queue_entries_type", "gpu_type", "ended_ms"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(255))
    server_name: Mapped[str] = mapped_column(String(255), default="")
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    profile_slug: Mapped[str] = mapped_column(String(64))
    gpu_type: Mapped[str] = mapped_column(String(64))
    gpu_count: Mapped[int] = mapped_column(Integer)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    joined_ms: Mapped[int]
    # waiting → offered → admitted; or left / expired from either.
    state: Mapped[str] = mapped_column(String(16), default="waiting")
    offered_ms: Mapped[int | None]
    offer_expires_ms: Mapped[int | None]
    ended_ms: Mapped[int | None]
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id"))


class ObservedCapacity(Base):
    """GPUs of a type the cluster's nodes offered at the last read (``kubernetes.
    capacity_from_nodes``): one row per type, replaced at each read. Kept in the ledger so every
    replica and the CLI count the same capacity as the leader that read it."""

    __tablename__ = "observed_capacity"
    gpu_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    gpus: Mapped[int] = mapped_column(Integer)
    nodes: Mapped[int] = mapped_column(Integer)
    observed_ms: Mapped[int]


class Application(Base):
    """An application for a grant (issue 18): a new project, a top-up or an extension.

    ``state`` moves draft → submitted → approved or rejected (or withdrawn by the applicant);
    only a draft changes. The requested figures stay as applied for; the decision's own
    figures (rate, amount, window) are kept beside them, and the allocation it made is linked.
    """

    __tablename__ = "applications"
    __table_args__ = (
        Index("ix_applications_state", "state", "submitted_ms"),
        Index("ix_applications_applicant", "applicant"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="draft")
    applicant: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    # The project it tops up or extends; for a new project, the one its approval created.
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    slug: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    organisation: Mapped[str] = mapped_column(String(200), default="")
    abstract: Mapped[str] = mapped_column(Text, default="")
    amount_micro: Mapped[int]
    # GPU-hours requested per GPU type (whole hours).
    gpu_hours: Mapped[dict[str, Any]] = mapped_column(default=dict)
    starts_ms: Mapped[int]
    ends_ms: Mapped[int]
    team: Mapped[list[str]] = mapped_column(default=list)
    # The applicant's plan: amount (micro-units) per quarter from the start; empty: even.
    plan: Mapped[list[int]] = mapped_column(default=list)
    created_ms: Mapped[int]
    updated_ms: Mapped[int]
    submitted_ms: Mapped[int | None]
    decided_ms: Mapped[int | None]
    decided_by: Mapped[str | None] = mapped_column(String(255))
    # Why it was rejected, or the admin's note on the approval (told to the applicant).
    reason: Mapped[str] = mapped_column(Text, default="")
    rate_bp: Mapped[int | None] = mapped_column(Integer)
    approved_micro: Mapped[int | None]
    allocation_id: Mapped[int | None] = mapped_column(ForeignKey("allocations.id"))


class ApplicationEvent(Base):
    """What happened to an application, for its applicant and the admins: comments and every
    change of state, in order. Append-only."""

    __tablename__ = "application_events"
    __table_args__ = (Index("ix_application_events_application", "application_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"))
    at_ms: Mapped[int]
    actor: Mapped[str] = mapped_column(String(255))
    # created, edited, submitted, commented, approved, rejected, withdrawn
    kind: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text, default="")


class PlanMonth(Base):
    """A grant's (an allocation's) planned subsidy spending in one UTC month. A grant without
    rows is planned evenly over its window. Replaced whole when an admin sets a new plan."""

    __tablename__ = "grant_plans"
    allocation_id: Mapped[int] = mapped_column(ForeignKey("allocations.id"), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    amount_micro: Mapped[int]
