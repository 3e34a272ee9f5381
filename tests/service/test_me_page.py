"""``GET me``'s two-query read says exactly what the general readers say.

The reference is the page as the ledger's general functions build it (``projects_of``,
``load_accounts``, ``project_summary``, ``shapes.running_sessions``), on a ledger with what
the fast read must get right: several projects with allocations that expire, an exhausted
project, a member's own caps, GPU sessions stopped inside and outside the last week, another
member's sessions, and a session still running in a project the caller has since left.
"""

from __future__ import annotations

import json
from typing import Any

from subsidyhub import limits, shapes
from subsidyhub.ledger import admission, projects
from subsidyhub.ledger.accounts import load_accounts
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.me import read_page
from subsidyhub.ledger.metering import charge_until
from subsidyhub.ledger.stops import recent_stops
from subsidyhub.ledger.summary import project_summary
from subsidyhub.money import parse_amount
from subsidyhub.service.me_page import encode, render_me
from subsidyhub.settings import Settings
from subsidyhub.timeutil import iso

HOUR = 3_600_000
DAY = 24 * HOUR
T0 = 1_796_083_200_000


def reference_page(
    db: Database, settings: Settings, username: str, is_admin: bool, now: int
) -> dict[str, Any]:
    with db.read() as session:
        memberships = projects.projects_of(session, username)
        accounts = load_accounts(session, [project for project, _ in memberships], now)
        summaries = [
            project_summary(
                session, settings, project, accounts[project.id], member=member, username=username
            )
            for project, member in memberships
        ]
        running = admission.list_running(session, username=username)
        sessions = [shapes.describe_session(row, slug, now) for row, slug in running]
        member_of = [project.id for project, _ in memberships]
        stops = recent_stops(session.connection(), username, member_of, now)
    return {
        "user": username,
        "admin": is_admin,
        "at": iso(now),
        "currency": settings.currency,
        "currency_display": {"code": "HKD", "symbol": "HK$", "minor_units": 2},
        "limits": [limits.describe(limit) for limit in limits.LIMITS],
        "projects": summaries,
        "sessions": sessions,
        "stops": stops,
    }


def fast_page(
    db: Database, settings: Settings, username: str, is_admin: bool, now: int
) -> dict[str, Any]:
    with db.read() as session:
        return read_page(session.connection(), settings, username, is_admin, now)


def admit(
    db: Database, settings: Settings, user: str, project: str, profile: str, server: str, at: int
) -> int:
    with db.write() as session:
        return admission.admit(
            session,
            settings,
            username=user,
            project_slug=project,
            profile_slug=profile,
            server_name=server,
            now_ms=at,
        ).session_id


def stop(db: Database, session_id: int, at: int) -> None:
    with db.write() as session:
        admission.stop(session, session_id, now_ms=at, reason="user")


def busy_ledger(db: Database, settings: Settings) -> int:
    """The ledger described above; returns the instant to read it at."""
    start = T0 - 20 * DAY
    with db.write() as session:
        for slug in ("alpha", "beta", "gamma", "zeta"):
            projects.create_project(
                session, settings, "test", slug=slug, name=slug.title(), at_ms=start
            )
        for slug, amount, until in (
            ("alpha", "900", None),
            ("alpha", "300", T0 + 2 * DAY),  # drawn first: it lapses first
            ("alpha", "50", T0 - DAY),  # lapsed: no longer counts
            ("beta", "22", None),
            ("gamma", "5000", None),
        ):
            projects.add_allocation(
                session,
                settings,
                "test",
                slug,
                amount_micro=parse_amount(amount),
                at_ms=start,
                valid_until_ms=until,
            )
        projects.set_member(session, "test", "alpha", "alice", at_ms=start)
        projects.set_member(
            session,
            "test",
            "alpha",
            "alice",
            at_ms=start,
            quota={"member_max_gpus": 3, "gpu_hours_per_week": "40", "max_session_hours": "12.5"},
        )
        projects.set_member(session, "test", "alpha", "bob", at_ms=start, role="manager")
        projects.set_member(session, "test", "beta", "alice", at_ms=start, role="manager")
        projects.set_member(session, "test", "gamma", "alice", at_ms=start)
        projects.set_member(session, "test", "zeta", "alice", at_ms=start)  # no allocation
        projects.set_quota(
            session,
            settings,
            "test",
            "alpha",
            dict(project_max_gpus=4, profiles=["gpu-2", "gpu-1"], gpu_types=["h800"]),
        )
    # GPU sessions stopped 10 days ago (outside the week), straddling the window, and inside.
    old = admit(db, settings, "alice", "alpha", "gpu-1", "old", T0 - 11 * DAY)
    stop(db, old, T0 - 10 * DAY)
    edge = admit(db, settings, "alice", "alpha", "gpu-1", "edge", T0 - 7 * DAY - 2 * HOUR)
    stop(db, edge, T0 - 7 * DAY + 3 * HOUR)
    recent = admit(db, settings, "alice", "alpha", "gpu-1", "recent", T0 - 2 * DAY)
    stop(db, recent, T0 - 2 * DAY + 5 * HOUR)
    # Running now: alice on a GPU in alpha and a CPU in beta and gamma; bob in alpha.
    admit(db, settings, "alice", "alpha", "gpu-1", "", T0 - 3 * HOUR)
    admit(db, settings, "bob", "alpha", "gpu-1", "train", T0 - 2 * HOUR)
    admit(db, settings, "alice", "beta", "cpu-small", "beta-lab", T0 - 20 * HOUR)
    admit(db, settings, "alice", "gamma", "gpu-1", "gamma-gpu", T0 - 30 * HOUR)
    charge_until(db, T0 - HOUR)
    with db.write() as session:
        # alice leaves gamma; her server there still runs (and still shows in her sessions)
        projects.remove_member(session, "test", "gamma", "alice")
    return T0 + 17 * 60_000 + 123


def test_the_fast_read_matches_the_general_readers(ledger_db: Database, settings: Settings) -> None:
    now = busy_ledger(ledger_db, settings)
    for username, is_admin in (("alice", False), ("bob", True), ("nobody", False)):
        for at in (now, now + 5 * HOUR, now + 3 * DAY):
            expected = reference_page(ledger_db, settings, username, is_admin, at)
            got = fast_page(ledger_db, settings, username, is_admin, at)
            assert got == expected, (username, at)
            assert encode(got) == encode(expected)
    page = reference_page(ledger_db, settings, "alice", False, now)
    # The ledger exercises what it should: warnings, member caps, week use and a left project.
    assert [p["slug"] for p in page["projects"]] == ["alpha", "beta", "zeta"]
    alpha, beta, _zeta = page["projects"]
    assert alpha["quota"]["member_max_gpus"] == 3
    assert alpha["usage"]["gpu_hours_per_week"] not in ("0.00", None)
    assert beta["warnings"]
    # Each warning is a condition with a stable id naming its project (the lab shows it once).
    assert all(w["id"] == f"beta:{w['code']}" for w in beta["warnings"])
    assert {w["severity"] for w in beta["warnings"]} <= {"info", "warning", "critical"}
    assert [s["project"] for s in page["sessions"]] == ["alpha", "beta", "gamma"]


def test_the_body_is_the_json_a_dict_answer_was(ledger_db: Database, settings: Settings) -> None:
    now = busy_ledger(ledger_db, settings)
    body = render_me(ledger_db, settings, "alice", False, now)
    expected = reference_page(ledger_db, settings, "alice", False, now)
    assert json.loads(body) == expected
    # What Starlette's JSONResponse renders for the dict FastAPI returned before.
    assert (
        body
        == json.dumps(
            expected, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
        ).encode()
    )
