"""What GET me shows of a project: thresholds crossed and the stop forecast."""

from subsidyhub.ledger import admission, projects
from subsidyhub.ledger.accounts import load_account
from subsidyhub.ledger.metering import charge_until
from subsidyhub.ledger.summary import project_summary

from .helpers import HOUR, T0, make_project


def summary_at(db, settings, at):
    with db.read() as session:
        project = projects.get_project(session, "demo")
        member = projects.get_member(session, project, "alice")
        return project_summary(
            session,
            settings,
            project,
            load_account(session, project, at),
            member=member,
            username="alice",
        )


def codes(summary):
    return [w["code"] for w in summary["warnings"]]


def test_warnings_follow_the_balance_down_to_a_stop_forecast(ledger_db, settings):
    # 40.00 at 32.48/h (gpu-1 at 70%): 20% left after ~59 min, stop after ~73.9 min.
    make_project(ledger_db, settings, amount="40")
    with ledger_db.write() as session:
        admission.admit(
            session,
            settings,
            username="alice",
            project_slug="demo",
            profile_slug="gpu-1",
            server_name="",
            now_ms=T0,
        )
    assert codes(summary_at(ledger_db, settings, T0 + 60_000)) == []
    charge_until(ledger_db, T0 + 60 * 60_000)
    at_60 = summary_at(ledger_db, settings, T0 + 60 * 60_000)
    assert codes(at_60) == ["below_20_percent", "stop_soon"]
    assert at_60["warnings"][0]["message"] == (
        "Project Demo has less than 20% of its allocation left (HK$7.52 of HK$40.00)."
    )
    assert (
        "Save your work: servers in project Demo stop in 14 minutes"
        in at_60["warnings"][1]["message"]
    )
    at_72 = summary_at(ledger_db, settings, T0 + 72 * 60_000)
    assert codes(at_72)[0] == "below_5_percent" and at_72["warnings"][0]["level"] == "critical"
    assert (
        at_72["time_left_seconds"]
        == (T0 + 40_000_000 * HOUR // 32_480_000 - (T0 + 72 * 60_000)) // 1000
    )
    at_80 = summary_at(ledger_db, settings, T0 + 80 * 60_000)
    assert codes(at_80)[0] == "exhausted"
    assert "its servers are being stopped" in at_80["warnings"][0]["message"]


def test_each_warning_has_a_stable_id_and_a_severity(ledger_db, settings):
    """A client shows a warning once per id: the id must not change while the condition holds,
    and must name the project, since one user sees many projects' warnings at once."""
    make_project(ledger_db, settings, amount="40")
    with ledger_db.write() as session:
        running = admission.admit(
            session,
            settings,
            username="alice",
            project_slug="demo",
            profile_slug="gpu-1",
            server_name="",
            now_ms=T0,
        )
    charge_until(ledger_db, T0 + 60 * 60_000)
    at_60 = summary_at(ledger_db, settings, T0 + 60 * 60_000)
    at_61 = summary_at(ledger_db, settings, T0 + 61 * 60_000)
    shown = [(w["id"], w["severity"]) for w in at_60["warnings"]]
    assert shown == [("demo:below_20_percent", "info"), ("demo:stop_soon", "critical")]
    assert [w["id"] for w in at_61["warnings"]] == [w for w, _ in shown]
    charge_until(ledger_db, T0 + 72 * 60_000)
    at_72 = summary_at(ledger_db, settings, T0 + 72 * 60_000)
    assert (at_72["warnings"][0]["id"], at_72["warnings"][0]["severity"]) == (
        "demo:below_5_percent",
        "warning",
    )
    charge_until(ledger_db, T0 + 80 * 60_000)
    with ledger_db.write() as session:
        admission.stop(
            session, running.session_id, now_ms=T0 + 80 * 60_000, reason="subsidy_exhausted"
        )
    idle = summary_at(ledger_db, settings, T0 + 81 * 60_000)
    assert [(w["id"], w["severity"]) for w in idle["warnings"]] == [("demo:exhausted", "critical")]
    # Nothing runs: nothing is being stopped, which is what the message must not claim.
    assert idle["warnings"][0]["message"] == (
        "Project Demo has no subsidy left; no server can start in it. "
        "Ask your project manager to top up."
    )
