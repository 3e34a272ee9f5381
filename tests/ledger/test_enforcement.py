"""The enforcement plan: who must stop now, and when the next stop falls due."""

from subsidyhub.ledger import admission, projects
from subsidyhub.ledger.enforcement import REASON_CLOSED, REASON_EXHAUSTED, REASON_MAX_SESSION, plan
from subsidyhub.ledger.metering import charge_until
from subsidyhub.ledger.server_stops import stop_by_admin

from .helpers import HOUR, T0, make_project


def admit(db, settings, user, profile, server="", at=T0):
    with db.write() as session:
        return admission.admit(
            session,
            settings,
            username=user,
            project_slug="demo",
            profile_slug=profile,
            server_name=server,
            now_ms=at,
        )


def test_project_stops_at_the_predicted_exhaustion_instant(ledger_db, settings):
    # 20.00 of subsidy at 32.48/h (gpu-1 at 70%) lasts 20 / 32.48 h = 2216.75 s.
    make_project(ledger_db, settings, amount="20")
    admitted = admit(ledger_db, settings, "alice", "gpu-1")
    expected = T0 + 20_000_000 * HOUR // 32_480_000
    with ledger_db.read() as session:
        before = plan(session, T0 + 60_000)
    assert before.due == [] and before.next_due_ms == expected
    charge_until(ledger_db, T0 + 30 * 60_000)  # charging does not move the instant
    with ledger_db.read() as session:
        assert plan(session, T0 + 30 * 60_000).next_due_ms == expected
        after = plan(session, expected)
    assert [(o.session_id, o.reason, o.due_ms) for o in after.due] == [
        (admitted.session_id, REASON_EXHAUSTED, expected)
    ]


def test_a_second_server_brings_the_instant_forward(ledger_db, settings):
    make_project(ledger_db, settings, amount="20")
    admit(ledger_db, settings, "alice", "gpu-1")
    with ledger_db.read() as session:
        alone = plan(session, T0).next_due_ms
    admit(ledger_db, settings, "alice", "cpu-small", server="small", at=T0 + 60_000)
    with ledger_db.read() as session:
        together = plan(session, T0 + 60_000).next_due_ms
    assert together < alone


def test_max_session_hours_and_closed_projects(ledger_db, settings):
    make_project(ledger_db, settings, amount="1000")
    with ledger_db.write() as session:
        projects.set_quota(session, settings, "test", "demo", dict(max_session_hours="2"))
    admitted = admit(ledger_db, settings, "alice", "cpu-small")
    with ledger_db.read() as session:
        assert plan(session, T0).next_due_ms == T0 + 2 * HOUR
        assert [o.reason for o in plan(session, T0 + 2 * HOUR).due] == [REASON_MAX_SESSION]
    with ledger_db.write() as session:
        projects.update_project(session, "test", "demo", status="closed")
    with ledger_db.read() as session:
        assert [(o.session_id, o.reason) for o in plan(session, T0 + HOUR).due] == [
            (admitted.session_id, REASON_CLOSED)
        ]


def test_nothing_running_means_no_deadline(ledger_db, settings):
    make_project(ledger_db, settings)
    with ledger_db.read() as session:
        result = plan(session, T0)
    assert result.due == [] and result.next_due_ms is None


def test_an_admins_ledger_stop_is_carried_to_the_hub_until_the_hub_reports_it(ledger_db, settings):
    make_project(ledger_db, settings, amount="1000")
    first = admit(ledger_db, settings, "alice", "cpu-small", server="a")
    other = admit(ledger_db, settings, "alice", "cpu-small", server="b")
    with ledger_db.write() as session:
        stop_by_admin(session, first.session_id, actor="cli:root", now_ms=T0 + HOUR, note="x")
        admission.stop(session, other.session_id, now_ms=T0 + HOUR, reason="user")
    with ledger_db.read() as session:
        carried = plan(session, T0 + HOUR).closed_running
        # An hour and more later the reconciliation has long settled it.
        stale = plan(session, T0 + 2 * HOUR + 1).closed_running
    # Only the admin's stop: the user's own went through the hub already.
    assert [(o.session_id, o.username, o.server_name, o.reason) for o in carried] == [
        (first.session_id, "alice", "a", "admin")
    ]
    assert stale == []
    with ledger_db.write() as session:
        admission.record_stop(
            session,
            first.session_id,
            stopped_ms=T0 + HOUR + 500,
            now_ms=T0 + HOUR + 600,
            reason="stopped",
            actor="hub",
        )
    with ledger_db.read() as session:
        assert plan(session, T0 + HOUR + 1000).closed_running == []


def test_a_later_start_of_the_same_server_is_not_stopped_for_an_earlier_admin_stop(
    ledger_db, settings
):
    make_project(ledger_db, settings, amount="1000")
    first = admit(ledger_db, settings, "alice", "cpu-small", server="a")
    with ledger_db.write() as session:
        stop_by_admin(session, first.session_id, actor="cli:root", now_ms=T0 + HOUR)
    admit(ledger_db, settings, "alice", "cpu-small", server="a", at=T0 + HOUR + 1000)
    with ledger_db.read() as session:
        assert plan(session, T0 + HOUR + 2000).closed_running == []
