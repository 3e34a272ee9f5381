"""Why a server stopped: the reason each stop records, and the sentence its owner reads."""

import pytest

from subsidyhub.ledger import admission, projects
from subsidyhub.ledger.enforcement import plan
from subsidyhub.ledger.me import read_page
from subsidyhub.ledger.server_stops import stop_by_admin
from subsidyhub.ledger.stops import StopFacts, stop_sentence

from .helpers import HOUR, T0, make_project

AT_1432 = T0 + 14 * HOUR + 32 * 60_000  # 2026-12-01 14:32 UTC


def facts(reason, **overrides):
    base = dict(
        reason=reason,
        stopped_ms=AT_1432,
        project_name="Demo",
        server_name="",
        student=False,
        managers=("bob",),
        note=None,
    )
    return StopFacts(**(base | overrides))


@pytest.mark.parametrize(
    ("stop", "sentence"),
    [
        (
            facts("subsidy_exhausted"),
            "Your server was stopped at 14:32 UTC: project Demo's subsidy ran out. "
            "Ask your project manager (bob) to top it up.",
        ),
        (
            facts("subsidy_exhausted", student=True, managers=("ann",), project_name="ML 101"),
            "Your server was stopped at 14:32 UTC: course ML 101 has used up its allowance. "
            "Ask your lecturer (ann) to top it up.",
        ),
        (
            facts("weekly_gpu_hours", server_name="gpu"),
            "Your server gpu was stopped at 14:32 UTC: you used up your GPU-hours for the last "
            "7 days in project Demo. Hours free up as the week rolls on; a CPU profile still "
            "starts, or ask your project manager (bob).",
        ),
        (
            facts("max_session_hours", student=True),
            "Your server was stopped at 14:32 UTC: it reached the longest session course Demo "
            "allows. Start it again to carry on; save your work regularly.",
        ),
        (
            facts("admin", note="maintenance at 15:00"),
            "Your server was stopped at 14:32 UTC: an administrator stopped it. The admin "
            'wrote: "maintenance at 15:00". Ask the centre\'s admins if unsure why.',
        ),
        (
            facts("idle"),
            "Your server was stopped at 14:32 UTC: it was idle for too long. Start it again "
            "when you need it.",
        ),
        (facts("user", managers=()), "Your server was stopped at 14:32 UTC: you stopped it."),
        (
            facts("project_closed", managers=()),
            "Your server was stopped at 14:32 UTC: project Demo was closed. Ask your project "
            "manager which project to use now.",
        ),
    ],
)
def test_each_reason_reads_as_what_happened_and_what_to_do(stop, sentence):
    assert stop_sentence(stop, AT_1432 + 60_000) == sentence


def test_a_stop_before_today_carries_its_date():
    assert stop_sentence(facts("idle"), AT_1432 + 24 * HOUR).startswith(
        "Your server was stopped at 2026-12-01 14:32 UTC: "
    )


@pytest.mark.parametrize("reason", ["subsidy_exhausted", "weekly_gpu_hours", "max_session_hours"])
def test_a_student_is_never_told_about_money(reason):
    sentence = stop_sentence(facts(reason, student=True), AT_1432)
    for word in ("subsidy", "invoice", "co-pay", "money", "project manager"):
        assert word not in sentence


def admit(db, settings, profile, *, server="", at=T0):
    with db.write() as session:
        return admission.admit(
            session,
            settings,
            username="alice",
            project_slug="demo",
            profile_slug=profile,
            server_name=server,
            now_ms=at,
        )


def test_the_weekly_gpu_hours_deadline_stops_with_its_own_reason(ledger_db, settings):
    make_project(ledger_db, settings, amount="1000")
    with ledger_db.write() as session:
        projects.set_quota(
            session, settings, "test", "demo", dict(gpu_hours_per_week="1", max_session_hours="8")
        )
    gpu = admit(ledger_db, settings, "gpu-1")
    cpu = admit(ledger_db, settings, "cpu-small", server="cpu")
    with ledger_db.read() as session:
        at_hour = {o.session_id: o.reason for o in plan(session, T0 + HOUR).due}
        at_cap = {o.session_id: o.reason for o in plan(session, T0 + 8 * HOUR).due}
    assert at_hour == {gpu.session_id: "weekly_gpu_hours"}
    assert at_cap[cpu.session_id] == "max_session_hours"


def test_me_lists_recent_stops_with_the_admins_note_and_the_manager(ledger_db, settings):
    make_project(ledger_db, settings, amount="1000", members=("alice", "bob"))
    with ledger_db.write() as session:
        projects.set_member(session, "test", "demo", "bob", at_ms=T0, role="manager")
    first = admit(ledger_db, settings, "cpu-small")
    with ledger_db.write() as session:
        stop_by_admin(
            session, first.session_id, actor="root", now_ms=AT_1432, note="disk maintenance"
        )
    with ledger_db.read_engine.begin() as connection:
        page = read_page(connection, settings, "alice", False, AT_1432 + 60_000)
    [stop] = page["stops"]
    assert stop | {"message": None} == {
        "session_id": first.session_id,
        "project": "demo",
        "project_name": "Demo",
        "server_name": "",
        "stopped": "2026-12-01T14:32:00Z",
        "reason": "admin",
        "note": "disk maintenance",
        "message": None,
        "current": True,
        "own": False,
        # The default 20 s of metering.admin_stop_grace_seconds after the stop.
        "hub_stop_at": "2026-12-01T14:32:20Z",
    }
    assert stop["message"] == (
        "Your server was stopped at 14:32 UTC: an administrator stopped it. The admin wrote: "
        '"disk maintenance". Ask the centre\'s admins if unsure why.'
    )
    # Started again: the stop is history, no longer news; a week on, it is gone.
    second = admit(ledger_db, settings, "cpu-small", at=AT_1432 + 2 * 60_000)
    with ledger_db.write() as session:
        admission.stop(
            session, second.session_id, now_ms=AT_1432 + HOUR, reason="subsidy_exhausted"
        )
    with ledger_db.read_engine.begin() as connection:
        later = read_page(connection, settings, "alice", False, AT_1432 + HOUR)["stops"]
        gone = read_page(connection, settings, "alice", False, AT_1432 + 8 * 24 * HOUR)["stops"]
    assert [(s["reason"], s["current"]) for s in later] == [
        ("subsidy_exhausted", True),
        ("admin", False),
    ]
    assert "Ask your project manager (bob) to top it up." in later[0]["message"]
    assert gone == []
