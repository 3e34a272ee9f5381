"""Course rosters over HTTP and what a course's students see, against a real hub's tokens."""

from __future__ import annotations

import pytest

from subsidyhub.ledger import courses, projects
from subsidyhub.ledger.db import Database

from .helpers import HOUR, T0, Service

pytestmark = pytest.mark.hub

ROSTER = "api/v1/projects/comp1/roster"
MONEY = (
    "allocated",
    "balance",
    "available",
    "held",
    "burn_rate_per_hour",
    "time_left_seconds",
    "balance_display",
)


@pytest.fixture
def course(service: Service) -> Service:
    """Course comp1 (bob lectures; 4 GPU-hours a week, 2 h sessions) with 1000.00."""
    with service.db.write() as session:
        courses.create_course(
            session,
            service.settings,
            "admin",
            slug="comp1",
            name="Comp 1",
            lecturers=["bob"],
            at_ms=T0,
            allowance=dict(gpu_hours_per_week="4", max_session_hours="2"),
        )
        projects.add_allocation(
            session, service.settings, "admin", "comp1", amount_micro=1_000_000_000, at_ms=T0
        )
    return service


def roster_of(db: Database) -> dict[str, str]:
    with db.read() as session:
        project = projects.get_project(session, "comp1")
        return {m.username: m.source for m in projects.members_of(session, project)}


def test_lecturers_and_admins_enrol_students_and_others_may_not(course: Service) -> None:
    csv_body = {"content": b"username,name\nalice,Alice\n", "headers": {"Content-Type": "text/csv"}}
    for who in ("carol", "alice"):
        refused = course.call("POST", ROSTER + "?apply=true", who=who, **csv_body)
        assert refused.status_code == 403
        assert refused.json()["message"] == (
            f"{who} may not enrol students of project comp1: this needs a manager of comp1 or a "
            "service admin (a hub admin, or a holder of scope custom:subsidy:admin)."
        )
    dry = course.ok("POST", ROSTER, who="bob", **csv_body)
    assert dry["applied"] is False
    assert dry["added"] == [
        {"username": "alice", "role": "member", "source": "roster", "name": "Alice", "email": None}
    ]
    assert roster_of(course.db) == {"bob": "manual"}

    applied = course.ok("POST", ROSTER + "?apply=true", who="bob", **csv_body)
    assert applied["applied"] is True and applied["summary"].startswith("Applied to course comp1")
    assert roster_of(course.db) == {"alice": "roster", "bob": "manual"}

    rows = {"rows": [{"username": "alice"}, {"username": "Carol", "email": "carol@uni.edu"}]}
    by_admin = course.ok("POST", ROSTER + "?apply=true", who="centre-admin", json=rows)
    assert [a["username"] for a in by_admin["added"]] == ["carol"]
    assert roster_of(course.db) == {"alice": "roster", "bob": "manual", "carol": "roster"}


def test_a_bad_roster_is_a_422_listing_every_row_and_writes_nothing(course: Service) -> None:
    body = b"username,email\nalice,alice@\nbob\nalice\nx/y\n"
    response = course.call(
        "POST",
        ROSTER + "?apply=true",
        who="bob",
        content=body,
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 422
    answer = response.json()
    assert answer["status"] == 422
    assert answer["errors"] == [
        "line 2: email 'alice@' is not an address; give name@domain or leave it empty",
        "line 4: username alice is listed again (first on line 2); list each student once",
        "line 5: username 'x/y' is not valid; use 1-255 characters without spaces, slashes or control characters",
    ]
    assert answer["message"].startswith("The roster has 3 errors, so nothing was changed: line 2:")
    assert roster_of(course.db) == {"bob": "manual"}

    bad_json = course.call("POST", ROSTER, who="bob", json=[{"username": "alice"}])
    assert bad_json.status_code == 400
    assert 'a JSON roster is {"rows": [' in bad_json.json()["message"]


def test_a_research_project_takes_no_roster(service: Service) -> None:
    service.ok(
        "POST",
        "api/v1/projects",
        who="centre-admin",
        status=201,
        json={"slug": "lab", "name": "Lab"},
    )
    response = service.call(
        "POST",
        "api/v1/projects/lab/roster",
        who="centre-admin",
        content=b"username\nalice\n",
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith("Project lab is a research project, not a course")


def test_students_see_their_allowance_and_lecturers_the_balance(course: Service) -> None:
    course.ok(
        "POST",
        ROSTER + "?apply=true",
        who="bob",
        content=b"username\nalice\n",
        headers={"Content-Type": "text/csv"},
    )
    course.clock.now_ms = T0 + HOUR
    admitted = course.admit("alice", "gpu-1", "comp1")
    course.clock.now_ms = T0 + 2 * HOUR
    course.ok("POST", f"api/v1/sessions/{admitted['session_id']}/stop", who="hub", json={})

    student = course.ok("GET", "api/v1/me", who="alice")["projects"][0]
    assert student["slug"] == "comp1" and student["role"] == "member"
    assert not set(MONEY) & set(student)
    assert student["quota"] == {
        "project_max_gpus": None,
        "member_max_gpus": None,
        "gpu_hours_per_week": "4",
        "max_session_hours": "2",
        "profiles": None,
        "gpu_types": None,
        "reservable_gpus": None,
        "idle_gpu_hours": None,
    }
    assert student["usage"] == {
        "project_max_gpus": 0,
        "member_max_gpus": 0,
        "gpu_hours_per_week": "1.00",
    }
    assert course.ok("GET", "api/v1/me/spending", who="alice")["projects"] == []
    lecturer = course.ok("GET", "api/v1/me", who="bob")["projects"][0]
    assert set(MONEY) <= set(lecturer) and lecturer["quota"] == student["quota"]
    assert lecturer["balance"] != lecturer["allocated"]

    offers = course.ok("GET", "api/v1/users/alice/profiles", who="hub")["projects"][0]
    assert offers["student"] and offers["available"] is None
    assert offers["left"]["gpu_hours_per_week"] == "3.00"
    left = {p["slug"]: p["hours_left"] for p in offers["profiles"]}
    assert left == {"cpu-small": None, "gpu-1": "3.00", "gpu-2": "1.50"}
    lecturer_offers = course.ok("GET", "api/v1/users/bob/profiles", who="hub")["projects"][0]
    assert lecturer_offers["available"] is not None and not lecturer_offers["student"]
