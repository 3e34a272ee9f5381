"""Teaching labs: courses, each student's allowance, and enrolment from a roster.

A course is a project of kind ``course``. Its limits (GPU-hours per week, longest session,
allowed profiles, GPUs per member: :mod:`subsidyhub.limits`) are each student's allowance, and
its lecturers are members with role ``manager``. Students see their allowance and their use of
it, not the course's balance (:func:`~subsidyhub.ledger.policy.is_student`).

Enrolment is three steps, so that a lecturer always sees what would change before it does:

1. :func:`parse_roster` / :func:`roster_from_records` check every row and raise
   :class:`RosterInvalid` with *all* the problems (line, value, what to do), before anything
   is read from or written to the ledger;
2. :func:`enrol` computes the difference with the course's current members;
3. with ``apply=True`` the same call writes it in the caller's one write transaction, one
   audit entry per change, so a roster is applied whole or not at all.

Roster sync only removes memberships it created (``source == "roster"``): lecturers and
members added by hand or by SSO stay, and are reported as kept.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from subsidyhub import limits, shapes
from subsidyhub.errors import InvalidInput
from subsidyhub.ledger import audit, projects
from subsidyhub.ledger.admission import gpu_ms_in_week, limits_in_force
from subsidyhub.ledger.models import Member, Project, SpawnSession
from subsidyhub.settings import Settings
from subsidyhub.text import check_text
from subsidyhub.timeutil import WEEK_MS, format_hours

COURSE = "course"
ROSTER = "roster"
COLUMNS = ("username", "name", "email")
MAX_NAME = 200
MAX_EMAIL = 320
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ERRORS_IN_MESSAGE = 3
KEPT = {"manual": "added by hand", "sso": "added by SSO"}
WHERE = re.compile(r"^(?:line|row) (\d+):")


class RosterInvalid(InvalidInput):
    """A roster with problems; ``errors`` lists every one, ``message`` the first few."""

    status = 422

    def __init__(self, errors: list[str]) -> None:
        shown = "; ".join(errors[:ERRORS_IN_MESSAGE])
        more = len(errors) - ERRORS_IN_MESSAGE
        plural = "s" if len(errors) != 1 else ""
        super().__init__(
            f"The roster has {len(errors)} error{plural}, so nothing was changed: {shown}"
            + (f" (and {more} more)" if more > 0 else "")
            + ". Fix the roster and run again."
        )
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Student:
    """One roster row, checked; ``where`` is "line 4" (CSV) or "row 3" (JSON)."""

    where: str
    username: str
    name: str | None = None
    email: str | None = None


def normalise_username(username: str) -> str:
    """As JupyterHub's default ``Authenticator.normalize_username`` does: lower case."""
    return username.strip().lower()


def _check_row(
    where: str, values: Mapping[str, str], first_seen: dict[str, str], problems: list[str]
) -> Student | None:
    """The row as a student, or ``None`` with its problems added to ``problems``."""
    errors = []
    username = normalise_username(values.get("username", ""))
    if not username:
        errors.append(f"{where}: username is empty; give each student's JupyterHub user name")
    elif username in first_seen:
        errors.append(
            f"{where}: username {username} is listed again (first on {first_seen[username]}); "
            "list each student once"
        )
    else:
        first_seen[username] = where
        try:
            projects.check_username(username)
        except InvalidInput as error:
            errors.append(f"{where}: {error.message}")
    for column in ("name", "email"):
        try:
            check_text(values.get(column, ""), column, max_length=MAX_EMAIL)
        except InvalidInput as error:
            errors.append(f"{where}: {error.message}")
    name = values.get("name", "").strip() or None
    if name is not None and len(name) > MAX_NAME:
        errors.append(f"{where}: name {name[:40]!r}… is longer than {MAX_NAME} characters")
    email = values.get("email", "").strip() or None
    if email is not None and (len(email) > MAX_EMAIL or not EMAIL.match(email)):
        errors.append(
            f"{where}: email {email[:60]!r} is not an address; give name@domain or leave it empty"
        )
    if errors:
        problems.extend(errors)
        return None
    return Student(where, username, name, email)


def _line_of(error: str) -> int:
    found = WHERE.match(error)
    return int(found.group(1)) if found else 0


def _check_rows(rows: Iterable[tuple[str, Mapping[str, str]]], errors: list[str]) -> list[Student]:
    first_seen: dict[str, str] = {}
    checked = [_check_row(where, values, first_seen, errors) for where, values in rows]
    students = [student for student in checked if student is not None]
    if errors:
        raise RosterInvalid(sorted(errors, key=_line_of))
    return students


def _check_columns(columns: Iterable[str], errors: list[str], where: str) -> None:
    unknown = [c for c in columns if c not in COLUMNS]
    for column in unknown:
        errors.append(
            f"{where}: unknown column {column!r}; columns are {', '.join(COLUMNS)} "
            "(only username is required)"
        )


def parse_roster(text: str) -> list[Student]:
    """The students of a roster CSV: a header row (``username``, optional ``name``, ``email``).

    A byte-order mark, blank lines and spaces around values are ignored; user names are
    lower-cased as JupyterHub does. Every problem is collected and raised together.
    """
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")), strict=True)
    errors: list[str] = []
    header: list[str] | None = None
    rows: list[tuple[str, dict[str, str]]] = []
    try:
        for cells in reader:
            where = f"line {reader.line_num}"
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header = [cell.strip().lower() for cell in cells]
                _check_columns(header, errors, where)
                repeated = sorted({c for c in header if header.count(c) > 1})
                if repeated:
                    errors.append(f"{where}: column {', '.join(repeated)} is given twice")
                if "username" not in header:
                    errors.append(
                        f"{where}: the header {','.join(header)!r} has no username column; "
                        "the first line must name the columns, e.g. username,name,email"
                    )
                    raise RosterInvalid(errors)
                continue
            if len(cells) > len(header):
                errors.append(
                    f"{where}: {len(cells)} values but the header names {len(header)} "
                    "columns; quote values that contain commas"
                )
                continue
            rows.append((where, dict(zip(header, cells, strict=False))))
    except csv.Error as error:
        errors.append(f"line {reader.line_num}: {error}; check the quoting")
    if header is None and not errors:
        errors.append(
            "the roster is empty; the first line must name the columns, e.g. username,name,email"
        )
    return _check_rows(rows, errors)


def roster_from_records(records: list[Mapping[str, Any]]) -> list[Student]:
    """The students of a roster given as JSON objects, checked as :func:`parse_roster` does."""
    errors: list[str] = []
    rows: list[tuple[str, dict[str, str]]] = []
    for index, record in enumerate(records, start=1):
        where = f"row {index}"
        _check_columns(record, errors, where)
        values = {}
        for column in COLUMNS:
            value = record.get(column)
            if value is not None and not isinstance(value, str):
                errors.append(f"{where}: {column} {value!r} is not text; give a string")
                value = None
            values[column] = value or ""
        rows.append((where, values))
    return _check_rows(rows, errors)


def hours_left(in_force: Mapping[str, Any], gpu_ms_week: int, gpu_count: int) -> str | None:
    """How long a profile with ``gpu_count`` GPUs runs on what is left of the week's GPU-hours
    (rounded down: never more than there is); ``None`` without a weekly limit."""
    week_ms = in_force.get("gpu_hours_per_week")
    if gpu_count <= 0 or week_ms is None:
        return None
    return format_hours(max(0, week_ms - gpu_ms_week) // gpu_count, 2, rounding=ROUND_DOWN)


def require_course(project: Project) -> None:
    if project.kind != COURSE:
        raise InvalidInput(
            f"Project {project.slug} is a {project.kind} project, not a course; rosters enrol "
            "students only into courses. Create one with `subsidyhub admin course create`, or "
            "add members with `subsidyhub admin member add`."
        )


def create_course(
    session: Session,
    settings: Settings,
    actor: str,
    *,
    slug: str,
    name: str,
    lecturers: list[str],
    at_ms: int,
    allowance: Mapping[str, Any],
    subsidy_bp: int | None = None,
    organisation: str | None = None,
) -> Project:
    """A ``course`` project with its lecturers as managers and each student's allowance set
    (``allowance``: member-level limits by name, as given, for the course as a whole)."""
    names = [normalise_username(lecturer) for lecturer in lecturers]
    if not names:
        raise InvalidInput("a course needs a lecturer; name at least one lecturer")
    for lecturer in names:
        projects.check_username(lecturer)
    project = projects.create_project(
        session,
        settings,
        actor,
        slug=slug,
        name=name,
        at_ms=at_ms,
        organisation=organisation,
        subsidy_bp=subsidy_bp,
        kind=COURSE,
    )
    if allowance:
        projects.set_quota(session, settings, actor, slug, allowance)
    for lecturer in dict.fromkeys(names):
        projects.set_member(session, actor, slug, lecturer, at_ms=at_ms, role="manager")
    return project


@dataclass(frozen=True, slots=True)
class Change:
    """One membership the roster adds, removes or updates, with its state before and after."""

    username: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass
class Enrolment:
    """The difference between a roster and a course; ``applied`` once it is written."""

    project: str
    added: list[Change] = field(default_factory=list)
    removed: list[Change] = field(default_factory=list)
    updated: list[Change] = field(default_factory=list)
    kept: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0
    applied: bool = False

    def summary(self) -> str:
        counts = (
            f"{len(self.added)} added, {len(self.removed)} removed, {len(self.updated)} "
            f"updated, {len(self.kept)} kept (not in roster), {self.unchanged} unchanged"
        )
        if self.applied:
            return f"Applied to course {self.project}: {counts}."
        return (
            f"Dry run for course {self.project}: {counts}. Nothing was changed; "
            "apply the roster to make these changes."
        )

    def describe(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "applied": self.applied,
            "added": [c.after for c in self.added],
            "removed": [c.before for c in self.removed],
            "updated": [
                {"username": c.username, "before": c.before, "after": c.after} for c in self.updated
            ],
            "kept": self.kept,
            "unchanged": self.unchanged,
            "summary": self.summary(),
        }


def _plan(project: Project, members: list[Member], roster: list[Student]) -> Enrolment:
    plan = Enrolment(project.slug)
    current = {m.username: m for m in members}
    listed = {s.username for s in roster}
    for student in roster:
        member = current.get(student.username)
        if member is None:
            after = {"username": student.username, "role": "member", "source": ROSTER}
            plan.added.append(
                Change(
                    student.username, None, after | {"name": student.name, "email": student.email}
                )
            )
            continue
        before = shapes.describe_member(member)
        after = dict(before)
        # A roster without a name or email for someone leaves what the ledger has.
        if student.name is not None:
            after["name"] = student.name
        if student.email is not None:
            after["email"] = student.email
        if after != before:
            plan.updated.append(Change(student.username, before, after))
        else:
            plan.unchanged += 1
    for member in members:
        if member.username in listed:
            continue
        if member.source == ROSTER and member.role == "member":
            plan.removed.append(Change(member.username, shapes.describe_member(member), None))
        else:
            plan.kept.append(
                {
                    "username": member.username,
                    "role": member.role,
                    "source": member.source,
                    "reason": "lecturer"
                    if member.role == "manager"
                    else KEPT.get(member.source, member.source),
                }
            )
    return plan


def enrol(
    session: Session,
    actor: str,
    slug: str,
    roster: list[Student],
    *,
    at_ms: int,
    apply: bool = False,
) -> Enrolment:
    """The roster's difference with the course; with ``apply``, written in ``session``.

    Apply runs in the caller's write transaction (the course row locked on PostgreSQL), so
    the difference shown is the one written, and a failure part-way leaves nothing behind.
    """
    project = projects.get_project(session, slug, lock=apply)
    require_course(project)
    members = projects.members_of(session, project)
    plan = _plan(project, members, roster)
    if not apply:
        return plan
    target = f"project:{slug}/members/"
    by_name = {m.username: m for m in members}
    for change in plan.added:
        assert change.after is not None
        member = Member(
            project_id=project.id,
            username=change.username,
            role="member",
            source=ROSTER,
            display_name=change.after["name"],
            email=change.after["email"],
            created_ms=at_ms,
        )
        session.add(member)
        session.flush()
        audit.record(
            session,
            actor,
            "member.add",
            target + change.username,
            None,
            shapes.describe_member(member),
        )
    for change in plan.updated:
        assert change.after is not None
        member = by_name[change.username]
        member.display_name = change.after["name"]
        member.email = change.after["email"]
        audit.record(
            session, actor, "member.update", target + change.username, change.before, change.after
        )
    for change in plan.removed:
        session.delete(by_name[change.username])
        audit.record(session, actor, "member.remove", target + change.username, change.before, None)
    session.flush()
    plan.applied = True
    return plan


def students(session: Session, project: Project, now_ms: int) -> list[dict[str, Any]]:
    """Each member of a course with the limits in force for them and their use of them."""
    require_course(project)
    return member_use(session, project, now_ms)


def member_use(session: Session, project: Project, now_ms: int) -> list[dict[str, Any]]:
    """Each member of any project with the limits in force for them and their use this week.

    A course's roster (:func:`students`) and a research project's members as its managers see
    them on the usage page are the same figures.
    """
    rows = session.execute(
        select(
            SpawnSession.username,
            SpawnSession.gpu_count,
            SpawnSession.started_ms,
            SpawnSession.stopped_ms,
        ).where(
            SpawnSession.project_id == project.id,
            or_(SpawnSession.stopped_ms.is_(None), SpawnSession.stopped_ms > now_ms - WEEK_MS),
        )
    )
    sessions_of: dict[str, list[Any]] = {}
    for row in rows:
        sessions_of.setdefault(row.username, []).append(row)
    found = []
    for member in projects.members_of(session, project):
        own = sessions_of.get(member.username, [])
        found.append(
            shapes.describe_member(member)
            | {
                "quota_in_force": limits.show_all(limits_in_force(project, member)),
                "usage": limits.show_usage(
                    {
                        "member_gpus": sum(r.gpu_count for r in own if r.stopped_ms is None),
                        "member_gpu_ms_week": gpu_ms_in_week(own, now_ms),
                    }
                ),
                "running_servers": sum(1 for row in own if row.stopped_ms is None),
            }
        )
    return found
