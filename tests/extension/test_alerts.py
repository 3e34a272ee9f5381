"""The lab's rules for announcing warnings and stops (``src/alerts.ts``), run under node.

``alerts.ts`` and the ``format.ts`` it uses are compiled with the project's TypeScript into a
temporary folder as ES modules and called with hand-made ``GET me`` answers: which warnings
raise an alarm (only where the user has a running server), that each condition is announced
once until it clears, and the words of the stop countdown and of the notice after a stop.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .frontend import RunTs, compile_front_end, needs_node, shown_clock

pytestmark = needs_node


@pytest.fixture(scope="module")
def run_alerts(tmp_path_factory: pytest.TempPathFactory) -> RunTs:
    """``run_alerts([name, *args], ...)``: the results of calling alerts.ts's functions."""
    run = compile_front_end(tmp_path_factory.mktemp("alerts"), "alerts")
    return lambda *calls: run(*([f"alerts.{name}", *args] for name, *args in calls))


NOW = datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def warning(project: str, code: str, severity: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"{project}:{code}",
        "code": code,
        "severity": severity,
        "level": "warning" if severity == "info" else "critical",
        "message": f"{project} {code}",
    } | extra


def me(warnings: dict[str, list[dict[str, Any]]], **session: Any) -> dict[str, Any]:
    """alice, on her server "" in project demo (Demo Lab); "other" runs in gpu; none in tiny."""
    names = {"demo": "Demo Lab", "gpu": "GPU Pool", "tiny": "Tiny"}
    own = {
        "user": "alice",
        "server_name": "",
        "project": "demo",
        "started": iso(NOW - timedelta(hours=1)),
        "max_stop_at": None,
    } | session
    other = own | {"server_name": "other", "project": "gpu", "max_stop_at": None}
    return {
        "user": "alice",
        "at": iso(NOW),
        "projects": [
            {"slug": slug, "name": name, "quota": {"max_session_hours": "2"}}
            | {"warnings": warnings.get(slug, [])}
            for slug, name in names.items()
        ],
        "sessions": [own, other],
        "server": {"user": "alice", "name": "", "project": "demo", "profile": "cpu"},
    }


def test_alarms_only_where_a_server_runs_once_per_condition(run_alerts):
    holding = me(
        {
            "demo": [warning("demo", "below_20_percent", "info")],
            "gpu": [
                warning("gpu", "below_5_percent", "warning"),
                warning("gpu", "stop_soon", "critical", at=iso(NOW + timedelta(minutes=9))),
            ],
            "tiny": [warning("tiny", "exhausted", "critical")],
        }
    )
    running, first = run_alerts(["projectsRunning", holding], ["planAlerts", holding, {}])
    assert running == ["demo", "gpu"]
    # One toast per project, its worst warning first; tiny (nothing of alice's runs) is
    # left to the panel and not remembered, so it alarms if a server of hers runs there.
    assert [(a["project"], a["severity"], a["autoClose"]) for a in first["alerts"]] == [
        ("demo", "info", 8000),
        ("gpu", "critical", False),
    ]
    assert first["alerts"][1]["ids"] == ["gpu:below_5_percent", "gpu:stop_soon"]
    assert first["alerts"][1]["message"].startswith("Save your work: servers in project GPU Pool")
    assert sorted(first["seen"]) == [
        "alice/demo:below_20_percent",
        "alice/gpu:below_5_percent",
        "alice/gpu:stop_soon",
    ]

    cleared = me({"gpu": [warning("gpu", "below_5_percent", "warning")]})
    again, after_clearing, back = run_alerts(
        ["planAlerts", holding, first["seen"]],
        ["planAlerts", cleared, first["seen"]],
        ["planAlerts", holding, {"bob/demo:exhausted": "x"}],
    )
    assert again["alerts"] == [] and again["seen"] == first["seen"]  # a reload: nothing new
    assert after_clearing["alerts"] == []
    assert sorted(after_clearing["seen"]) == ["alice/gpu:below_5_percent"]
    assert [a["project"] for a in back["alerts"]] == ["demo", "gpu"]  # it came back: news
    assert back["seen"]["bob/demo:exhausted"] == "x"  # another user's, on a shared browser


def test_a_gpu_offer_is_announced_wherever_the_lab_runs(run_alerts):
    """Tiny runs nothing of alice's, but her turn in a queue there is about her, not a server."""
    offered = me({"tiny": [warning("tiny", "gpu_offer", "warning", message="Your turn")]})
    [plan] = run_alerts(["planAlerts", offered, {}])
    assert [(a["project"], a["ids"]) for a in plan["alerts"]] == [("tiny", ["tiny:gpu_offer"])]
    assert "Your turn" in plan["alerts"][0]["message"]
    [again] = run_alerts(["planAlerts", offered, plan["seen"]])
    assert again["alerts"] == []


def test_this_servers_stop_is_counted_down_not_alarmed(run_alerts):
    at = NOW + timedelta(minutes=4, seconds=10)
    forecast = me({"demo": [warning("demo", "stop_soon", "critical", at=iso(at))]})
    now_ms = int(NOW.timestamp() * 1000)
    plan, text, later, overdue = run_alerts(
        ["planAlerts", forecast, {}],
        ["stopCountdown", forecast, now_ms],
        ["stopCountdown", forecast, now_ms + 70_000],
        ["stopCountdown", forecast, now_ms + 300_000],
    )
    assert plan["alerts"] == [] and "alice/demo:stop_soon" in plan["seen"]
    assert text == (
        f"Save your work: this server stops in 4 m 10 s ({shown_clock(at)}) "
        "because project Demo Lab's subsidy runs out."
    )
    assert later.startswith("Save your work: this server stops in 3 m 0 s")
    assert overdue == (
        "Save your work: this server is being stopped because project Demo Lab's subsidy runs "
        "out. Ask your project manager to top it up."
    )


def test_a_stop_past_midnight_names_its_day_and_hour_00(run_alerts: RunTs) -> None:
    """A stop at 00:01 tomorrow says which day, and 00:01, not the 24:01 of V8's h24 cycle
    that ``hour12: false`` alone selects."""
    end = (NOW + timedelta(days=1)).replace(hour=0, minute=1, second=0)
    capped = me(
        {},
        started=iso(end - timedelta(hours=2)),
        max_stop_at=iso(end),
        max_stop_reason="max_session_hours",
    )
    [near] = run_alerts(["stopCountdown", capped, int(end.timestamp() * 1000) - 1_200_000])
    assert near == (
        f"Save your work: this server stops in 20 m 0 s ({end:%a}, {end:%b} {end.day}, 00:01) "
        "because it reaches the longest session project Demo Lab allows (2 h)."
    )


def test_a_session_cap_is_counted_down_from_half_an_hour(run_alerts):
    end = NOW + timedelta(minutes=20)
    capped = me(
        {},
        started=iso(end - timedelta(hours=2)),
        max_stop_at=iso(end),
        max_stop_reason="max_session_hours",
    )
    far = me({}, started=iso(NOW), max_stop_at=iso(NOW + timedelta(hours=2)))
    now_ms = int(NOW.timestamp() * 1000)
    near, distant, formatted = run_alerts(
        ["stopCountdown", capped, now_ms],
        ["stopCountdown", far, now_ms],
        ["countdown", 3_725_000],
    )
    assert near == (
        f"Save your work: this server stops in 20 m 0 s ({shown_clock(end)}) because it reaches the "
        "longest session project Demo Lab allows (2 h)."
    )
    assert distant is None
    assert formatted == "1 h 02 m 05 s"


def test_after_the_stop_the_last_answer_says_why(run_alerts):
    at = NOW - timedelta(minutes=1)
    forecast = me({"demo": [warning("demo", "stop_soon", "critical", at=iso(at))]})
    later = me(
        {"demo": [warning("demo", "stop_soon", "critical", at=iso(NOW + timedelta(minutes=10)))]}
    )
    weekly = me(
        {},
        started=iso(NOW - timedelta(hours=1)),
        max_stop_at=iso(at),
        max_stop_reason="weekly_gpu_hours",
    )
    now_ms = int(NOW.timestamp() * 1000)
    stopped, not_yet, used_up, nothing = run_alerts(
        ["stoppedNotice", forecast, now_ms],
        ["stoppedNotice", later, now_ms],
        ["stoppedNotice", weekly, now_ms],
        ["stoppedNotice", me({}), now_ms],
    )
    assert stopped == (
        f"Your server was stopped at {shown_clock(at)}: project Demo Lab's subsidy ran out. "
        "Ask your project manager to top it up."
    )
    # A server that stops answering before any stop was due: nothing is claimed.
    assert not_yet is None and nothing is None
    assert used_up.startswith(
        f"Your server was stopped at {shown_clock(at)}: your weekly GPU-hours in project Demo Lab ran out."
    )


def admin_stop(ago: timedelta, **facts: Any) -> dict[str, Any]:
    """An admin's stop of alice's server "" in demo, ``ago`` before now, as GET me lists it."""
    return {
        "session_id": 7,
        "project": "demo",
        "project_name": "Demo Lab",
        "server_name": "",
        "stopped": iso(NOW - ago),
        "reason": "admin",
        "note": "maintenance at noon",
        "message": "Your server was stopped at 12:00 UTC: an administrator stopped it. The admin "
        'wrote: "maintenance at noon". Ask the centre\'s admins if unsure why.',
        "current": True,
        "own": False,
        # metering.admin_stop_grace_seconds (20) after the stop, as the service says.
        "hub_stop_at": iso(NOW - ago + timedelta(seconds=20)),
    } | facts


def test_an_admins_stop_of_this_server_is_counted_down_with_the_note(run_alerts):
    """During the grace the ledger has closed the session (it is gone from ``sessions``) while
    the server still runs: the stop is announced critically, with the admin's words."""
    now_ms = int(NOW.timestamp() * 1000)
    running = me({}) | {"stops": [admin_stop(timedelta(seconds=5))]}
    running["sessions"] = running["sessions"][1:]  # closed in the ledger
    late = running | {"stops": [admin_stop(timedelta(seconds=40))]}
    other_server = running | {"stops": [admin_stop(timedelta(seconds=5), server_name="other")]}
    restarted = running | {"stops": [admin_stop(timedelta(seconds=5), current=False)]}
    idle = running | {"stops": [admin_stop(timedelta(seconds=5), reason="idle")]}
    someone_else = running | {"server": running["server"] | {"user": "bob"}}
    now, overdue, *none = run_alerts(
        ["adminStopNotice", running, now_ms],
        ["adminStopNotice", late, now_ms],
        ["adminStopNotice", other_server, now_ms],
        ["adminStopNotice", restarted, now_ms],
        ["adminStopNotice", idle, now_ms],
        ["adminStopNotice", someone_else, now_ms],
    )
    # What to do and when first: a toast shows only the first 140 characters.
    assert now == (
        "Save your work now: this server stops in 15 s because an administrator stopped it. "
        'The admin wrote: "maintenance at noon"'
    )
    assert overdue.startswith("Save your work now: this server is being stopped because")
    # Another server of hers, a stop she has started a server after, another reason, or a
    # lab that is not alice's (an admin viewing it): no alarm here.
    assert none == [None, None, None, None]


def test_after_the_stop_the_hubs_sentence_comes_first(run_alerts):
    at = NOW - timedelta(minutes=1)
    forecast = me({"demo": [warning("demo", "stop_soon", "critical", at=iso(at))]})
    now_ms = int(NOW.timestamp() * 1000)
    hub, predicted, blank, unknown = run_alerts(
        [
            "afterStopNotice",
            "  Your server was stopped at 12:00 UTC:\n  an administrator",
            forecast,
            now_ms,
        ],
        ["afterStopNotice", None, forecast, now_ms],
        ["afterStopNotice", "  ", forecast, now_ms],
        ["afterStopNotice", None, me({}), now_ms],
    )
    assert hub == "Your server was stopped at 12:00 UTC: an administrator"
    assert predicted == blank and predicted.startswith(
        f"Your server was stopped at {shown_clock(at)}: project Demo Lab's subsidy ran out."
    )
    assert unknown is None  # neither the hub nor the last answer knows: nothing claimed
