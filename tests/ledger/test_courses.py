"""Courses and roster enrolment, on SQLite and PostgreSQL.

A roster is checked whole before anything is read or written; its difference with the
course is applied in one transaction with one audit entry per change, or not at all.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from subsidyhub import shapes
from subsidyhub.errors import Conflict, InvalidInput
from subsidyhub.ledger import admission, audit, courses, projects
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.models import AuditEntry, Member
from subsidyhub.settings import Settings

from .helpers import HOUR, T0, make_project

ALLOWANCE = dict(gpu_hours_per_week="4", max_session_hours="2", profiles=["cpu-small", "gpu-1"])


def make_course(db: Database, settings: Settings, slug: str = "comp1") -> None:
    with db.write() as session:
        courses.create_course(
            session,
            settings,
            "admin",
            slug=slug,
            name="Comp 1",
            lecturers=["DrWong"],
            at_ms=T0,
            allowance=ALLOWANCE,
        )
        projects.add_allocation(
            session, settings, "admin", slug, amount_micro=1_000_000_000, at_ms=T0
        )


def enrol(db: Database, text: str, *, apply: bool, slug: str = "comp1") -> courses.Enrolment:
    roster = courses.parse_roster(text)
    with db.write() if apply else db.read() as session:
        return courses.enrol(session, "drwong", slug, roster, at_ms=T0, apply=apply)


def members(
    db: Database, slug: str = "comp1"
) -> dict[str, tuple[str, str, str | None, str | None]]:
    with db.read() as session:
        project = projects.get_project(session, slug)
        return {
            m.username: (m.role, m.source, m.display_name, m.email)
            for m in projects.members_of(session, project)
        }


# -- parsing (pure) -----------------------------------------------------------------------


def test_a_messy_but_valid_roster_is_read() -> None:
    text = "\ufeff Username , Name,EMAIL\r\n\r\n  Alice , Alice Chan , alice@hku.hk \r\nbob,,\n\n"
    assert courses.parse_roster(text) == [
        courses.Student("line 3", "alice", "Alice Chan", "alice@hku.hk"),
        courses.Student("line 4", "bob", None, None),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name,email\nAlice,a@x.org\n", ["line 1: the header 'name,email' has no username column"]),
        ("", ["the roster is empty"]),
        ("username,phone\nalice,123\n", ["line 1: unknown column 'phone'"]),
        ("username,username\nalice,alice\n", ["line 1: column username is given twice"]),
        (
            "username\nalice\nbob\nALICE\n",
            ["line 4: username alice is listed again (first on line 2)"],
        ),
        ("username,name\n,Nobody\n", ["line 2: username is empty"]),
        ("username\nal ice\n", ["line 2: username 'al ice' is not valid"]),
        ("username,email\nalice,alice@\n", ["line 2: email 'alice@' is not an address"]),
        ("username,name\nalice,A,extra\n", ["line 2: 3 values but the header names 2 columns"]),
        ('username\n"alice\n', ["line 2: unexpected end of data"]),
    ],
)
def test_each_problem_names_the_line_and_the_value(text: str, expected: list[str]) -> None:
    with pytest.raises(courses.RosterInvalid) as raised:
        courses.parse_roster(text)
    assert len(raised.value.errors) == len(expected)
    for error, start in zip(raised.value.errors, expected, strict=True):
        assert error.startswith(start), error
    assert raised.value.status == 422


def test_all_problems_are_reported_at_once_in_line_order() -> None:
    text = "username,email\nalice,bad\nbob,b@x.org\nalice,\n,c@x.org\nd/e,\n"
    with pytest.raises(courses.RosterInvalid) as raised:
        courses.parse_roster(text)
    lines = [error.split(":")[0] for error in raised.value.errors]
    assert lines == ["line 2", "line 4", "line 5", "line 6"]
    message = raised.value.message
    assert message.startswith("The roster has 4 errors, so nothing was changed: line 2:")
    assert "(and 1 more)" in message


def test_json_rows_are_checked_like_csv_rows() -> None:
    rows = courses.roster_from_records([{"username": "Alice", "name": "A"}, {"username": "bob"}])
    assert [(s.where, s.username, s.name) for s in rows] == [
        ("row 1", "alice", "A"),
        ("row 2", "bob", None),
    ]
    with pytest.raises(courses.RosterInvalid) as raised:
        courses.roster_from_records([{"username": "alice", "team": "x"}, {"username": 7}])
    assert raised.value.errors == [
        "row 1: unknown column 'team'; columns are username, name, email (only username is required)",
        "row 2: username 7 is not text; give a string",
        "row 2: username is empty; give each student's JupyterHub user name",
    ]


# -- creating, diffing and applying -------------------------------------------------------


def test_a_course_has_its_lecturer_as_manager_and_each_students_allowance(ledger_db, settings):
    make_course(ledger_db, settings)
    with ledger_db.read() as session:
        project = projects.get_project(session, "comp1")
        assert project.kind == "course"
        quota = shapes.describe_quota(project)
        log = [e.action for e in audit.entries(session, target="project:comp1")]
    assert (quota["gpu_hours_per_week"], quota["max_session_hours"], quota["profiles"]) == (
        "4",
        "2",
        ["cpu-small", "gpu-1"],
    )
    assert members(ledger_db) == {"drwong": ("manager", "manual", None, None)}
    assert sorted(log) == sorted(["project.create", "quota.set", "member.add", "allocation.add"])


def test_a_course_needs_a_lecturer_and_a_free_slug(ledger_db, settings):
    make_course(ledger_db, settings)
    with pytest.raises(InvalidInput, match="a course needs a lecturer"), ledger_db.write() as s:
        courses.create_course(
            s, settings, "admin", slug="c2", name="C", lecturers=[], at_ms=T0,
            allowance=ALLOWANCE,
        )  # fmt: skip
    with pytest.raises(Conflict, match="already exists"), ledger_db.write() as s:
        courses.create_course(
            s, settings, "admin", slug="comp1", name="C", lecturers=["x"], at_ms=T0,
            allowance=ALLOWANCE,
        )  # fmt: skip


def test_dry_run_shows_the_difference_and_writes_nothing(ledger_db, settings):
    make_course(ledger_db, settings)
    with ledger_db.read() as session:
        before = len(audit.entries(session, limit=1000))
    plan = enrol(ledger_db, "username,name\nalice,Alice\nbob,Bob\n", apply=False)
    assert [c.username for c in plan.added] == ["alice", "bob"]
    assert plan.kept == [
        {"username": "drwong", "role": "manager", "source": "manual", "reason": "lecturer"}
    ]
    assert not plan.applied and plan.summary().startswith("Dry run for course comp1: 2 added")
    assert set(members(ledger_db)) == {"drwong"}
    with ledger_db.read() as session:
        assert len(audit.entries(session, limit=1000)) == before


def test_apply_adds_updates_and_removes_only_roster_students(ledger_db, settings):
    make_course(ledger_db, settings)
    enrol(ledger_db, "username,name,email\nalice,Alice,a@x.org\nbob,Bob,\ncarol,,\n", apply=True)
    with ledger_db.write() as session:
        projects.set_member(session, "admin", "comp1", "tutor", at_ms=T0)
    plan = enrol(
        ledger_db, "username,name,email\nalice,Alice Chan,\ncarol,,\ndave,,d@x.org\n", apply=True
    )
    assert plan.applied
    assert [c.username for c in plan.added] == ["dave"]
    assert [c.username for c in plan.removed] == ["bob"]
    assert [(c.username, c.before["name"], c.after["name"]) for c in plan.updated] == [
        ("alice", "Alice", "Alice Chan")
    ]
    assert plan.unchanged == 1
    assert sorted(k["username"] for k in plan.kept) == ["drwong", "tutor"]
    assert members(ledger_db) == {
        "alice": ("member", "roster", "Alice Chan", "a@x.org"),  # no email in roster: kept
        "carol": ("member", "roster", None, None),
        "dave": ("member", "roster", None, "d@x.org"),
        "drwong": ("manager", "manual", None, None),
        "tutor": ("member", "manual", None, None),
    }
    with ledger_db.read() as session:
        log = audit.entries(session, target="project:comp1/members")
    second = [(e.action, e.target.rsplit("/", 1)[1], e.actor) for e in log[:3]]
    assert sorted(second) == [
        ("member.add", "dave", "drwong"),
        ("member.remove", "bob", "drwong"),
        ("member.update", "alice", "drwong"),
    ]
    removed = next(e for e in log if e.action == "member.remove")
    assert removed.before["source"] == "roster" and removed.after is None


def test_applying_the_same_roster_again_changes_nothing(ledger_db, settings):
    make_course(ledger_db, settings)
    text = "username,name\nalice,Alice\nbob,Bob\n"
    enrol(ledger_db, text, apply=True)
    with ledger_db.read() as session:
        before = len(audit.entries(session, limit=1000))
    plan = enrol(ledger_db, text, apply=True)
    assert (plan.added, plan.removed, plan.updated, plan.unchanged) == ([], [], [], 2)
    with ledger_db.read() as session:
        assert len(audit.entries(session, limit=1000)) == before


def test_a_failure_part_way_leaves_nothing_behind(ledger_db, settings, monkeypatch):
    """The third audit write fails (a fault injected in the real ledger code, since no real
    failure can be timed to land mid-roster): the two students already added roll back."""
    make_course(ledger_db, settings)
    with ledger_db.read() as session:
        audit_rows = len(session.scalars(select(AuditEntry)).all())
    record = audit.record
    calls = []

    def failing(*args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        record(*args, **kwargs)

    monkeypatch.setattr(audit, "record", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        enrol(ledger_db, "username\nalice\nbob\ncarol\ndave\n", apply=True)
    assert len(calls) == 3
    assert set(members(ledger_db)) == {"drwong"}
    with ledger_db.read() as session:
        assert len(session.scalars(select(AuditEntry)).all()) == audit_rows


def test_rosters_enrol_only_into_courses(ledger_db, settings):
    make_project(ledger_db, settings, "lab")
    with pytest.raises(InvalidInput, match="Project lab is a research project, not a course"):
        enrol(ledger_db, "username\nalice\n", apply=True, slug="lab")
    with ledger_db.read() as session:
        assert session.scalars(select(Member.username)).all() == ["alice"]


def test_students_show_their_gpu_use_this_week(ledger_db, settings):
    make_course(ledger_db, settings)
    enrol(ledger_db, "username\nalice\nbob\n", apply=True)
    with ledger_db.write() as session:
        admitted = admission.admit(
            session,
            settings,
            username="alice",
            project_slug="comp1",
            profile_slug="gpu-1",
            server_name="",
            now_ms=T0,
        )
    with ledger_db.write() as session:
        admission.stop(session, admitted.session_id, now_ms=T0 + 90 * 60_000, reason="user")
    with ledger_db.read() as session:
        found = courses.students(session, projects.get_project(session, "comp1"), T0 + 2 * HOUR)
    used = {s["username"]: s["usage"]["gpu_hours_per_week"] for s in found}
    assert used == {"alice": "1.50", "bob": "0.00", "drwong": "0.00"}
    alice = next(s for s in found if s["username"] == "alice")
    assert alice["quota_in_force"]["gpu_hours_per_week"] == "4"
    assert alice["quota_in_force"]["max_session_hours"] == "2"
    in_force = {"gpu_hours_per_week": 4 * HOUR}
    assert courses.hours_left(in_force, 90 * 60_000, 1) == "2.50"
    assert courses.hours_left(in_force, 90 * 60_000, 2) == "1.25"
    assert courses.hours_left(in_force, 90 * 60_000, 0) is None
    assert courses.hours_left({}, 90 * 60_000, 1) is None


def test_a_120_student_roster_is_one_transaction(ledger_db, settings):
    make_course(ledger_db, settings)
    text = "username,name,email\n" + "".join(
        f"s{i:03d},Student {i},s{i:03d}@uni.edu\n" for i in range(120)
    )
    plan = enrol(ledger_db, text, apply=True)
    assert len(plan.added) == 120
    assert sum(1 for role, *_ in members(ledger_db).values() if role == "member") == 120
