"""``subsidyhub admin course …`` on SQLite and PostgreSQL: dry run by default, --apply writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from subsidyhub.ledger import projects
from subsidyhub.ledger.db import Database

from .conftest import ACTOR, Cli, snapshot


@pytest.fixture
def course(cli: Cli) -> None:
    created = cli.ok(
        "admin", "course", "create", "comp1", "--name", "Comp 1", "--lecturer", "drwong",
        "--gpu-hours-per-week", "4", "--max-session-hours", "2", "--profiles", "cpu-small,gpu-1",
    )  # fmt: skip
    assert "Created course comp1 (Comp 1), lecturers drwong" in created.stdout
    assert "GPU-hours per member in a rolling week: 4 hours" in created.stdout


def write(tmp_path: Path, text: str, name: str = "roster.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def members(ledger: Database) -> dict[str, str]:
    with ledger.read() as session:
        project = projects.get_project(session, "comp1")
        return {m.username: f"{m.role}/{m.source}" for m in projects.members_of(session, project)}


def test_enrol_is_a_dry_run_until_apply(cli: Cli, course: None, ledger: Database, tmp_path):
    roster = write(tmp_path, "username,name,email\nalice,Alice Chan,alice@hku.hk\nbob,,\n")
    before = snapshot(ledger)
    dry = cli.ok("admin", "course", "enrol", "comp1", str(roster))
    assert snapshot(ledger) == before
    lines = dry.stdout.splitlines()
    assert any("added" in line and "alice" in line and "Alice Chan" in line for line in lines)
    assert any("kept" in line and "drwong" in line and "lecturer" in line for line in lines)
    assert lines[-1].startswith("Dry run for course comp1: 2 added, 0 removed, 0 updated")
    assert "Nothing was changed" in lines[-1] and lines[-1].endswith("Run again with --apply.")

    applied = cli.ok("admin", "course", "enrol", "comp1", str(roster), "--apply")
    assert applied.stdout.splitlines()[-1] == (
        "Applied to course comp1: 2 added, 0 removed, 0 updated, 1 kept (not in roster), "
        "0 unchanged."
    )
    assert members(ledger) == {
        "alice": "member/roster",
        "bob": "member/roster",
        "drwong": "manager/manual",
    }
    log = cli.json("admin", "audit", "--target", "project:comp1")
    added = [e for e in log if e["action"] == "member.add" and e["after"].get("source") == "roster"]
    assert {e["target"] for e in added} == {
        "project:comp1/members/alice",
        "project:comp1/members/bob",
    }
    assert {e["actor"] for e in added} == {f"cli:{ACTOR}"}

    second = write(tmp_path, "username\nbob\ncarol\n", "week2.csv")
    diff = cli.json("admin", "course", "enrol", "comp1", str(second))
    assert [a["username"] for a in diff["added"]] == ["carol"]
    assert [r["username"] for r in diff["removed"]] == ["alice"]
    assert diff["applied"] is False and diff["unchanged"] == 1


def test_a_bad_roster_names_every_line_and_writes_nothing(
    cli: Cli, course: None, ledger: Database, tmp_path
):
    roster = write(tmp_path, "username,email\nalice,a@x.org\nbob,not-an-email\nalice,\n")
    before = snapshot(ledger)
    result = cli("admin", "course", "enrol", "comp1", str(roster), "--apply")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: line 3: email 'not-an-email' is not an address; give name@domain or leave it empty",
        "error: line 4: username alice is listed again (first on line 2); list each student once",
        f"error: {roster} has 2 problem(s) above; nothing was changed",
    ]
    assert snapshot(ledger) == before


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "error: cannot read the roster"),
        ("latin1", "is not UTF-8 text (byte 11); save it as 'CSV UTF-8'"),
        ("research", "error: Project lab is a research project, not a course"),
    ],
)
def test_other_enrol_errors_are_one_line(cli: Cli, course: None, tmp_path, setup, message):
    slug, path = "comp1", tmp_path / "missing.csv"
    if setup == "latin1":
        path.write_bytes("username\nzoë\n".encode("latin-1"))
    if setup == "research":
        cli.ok("admin", "project", "create", "lab", "--name", "Lab")
        slug, path = "lab", write(tmp_path, "username\nalice\n")
    result = cli("admin", "course", "enrol", slug, str(path))
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1
    assert message in result.stderr


def test_a_120_student_roster_and_show(cli: Cli, course: None, ledger: Database, tmp_path):
    rows = "".join(f"S{i:03d},Student {i},s{i:03d}@uni.edu\n" for i in range(120))
    roster = write(tmp_path, "username,name,email\n" + rows)
    result = cli.ok("admin", "course", "enrol", "comp1", str(roster), "--apply")
    assert "Applied to course comp1: 120 added" in result.stdout
    assert sum(1 for v in members(ledger).values() if v == "member/roster") == 120
    shown = cli.json("admin", "course", "show", "comp1")
    student = next(s for s in shown if s["username"] == "s007")
    assert student["name"] == "Student 7" and student["email"] == "s007@uni.edu"
    assert student["quota_in_force"]["gpu_hours_per_week"] == "4"
    assert student["usage"]["gpu_hours_per_week"] == "0.00"
    table = cli.ok("admin", "course", "show", "comp1").stdout
    assert "Students: 120; lecturers: 1." in table
