"""Hub-facing admissions and stops, and what users then see in ``me`` and their profiles.

Prices in the test config: gpu-1 (1× H800, 8 cores, 64 GiB) lists at 36 + 4 + 6.4 = 46.40/h;
at the default 70 % subsidy that is 32.48/h subsidy, so its 15-minute hold is 8.12.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from subsidyhub.ledger.accounts import verify
from subsidyhub.ledger.admission import STOP_SKEW_MS
from subsidyhub.ledger.metering import charge_until
from subsidyhub.ledger.models import Charge, Hold, Project, SpawnSession
from subsidyhub.money import MICRO
from subsidyhub.testing.hub import TestHub
from subsidyhub.timeutil import iso

from .helpers import HOUR, Service, enforce_once, metric_samples, seed

pytestmark = pytest.mark.hub

GPU = {"user": "alice", "profile": "gpu-1", "server_name": "", "project": "alpha"}


def sessions_and_holds(service: Service) -> tuple[int, int]:
    with service.db.read() as session:
        return (
            session.scalar(select(func.count()).select_from(SpawnSession)) or 0,
            session.scalar(select(func.count()).select_from(Hold)) or 0,
        )


def test_admit_then_stop_with_final_totals(service: Service) -> None:
    seed(service)
    admitted = service.ok("POST", "api/v1/admissions", who="hub", status=201, json=GPU)
    assert admitted["project"] == "alpha"
    assert admitted["profile"] == "gpu-1"
    assert admitted["user"] == "alice"
    assert admitted["hold"] == "8.12"
    assert admitted["list_rate_per_hour"] == "46.40"
    assert admitted["subsidy_rate_per_hour"] == "32.48"
    assert admitted["started"] == "2026-12-01T00:00:00Z"
    assert admitted["max_stop_at"] is None

    service.clock.advance(2 * HOUR)
    me = service.ok("GET", "api/v1/me", who="alice")
    [running] = me["sessions"]
    assert running["id"] == admitted["session_id"]
    assert running["project"] == "alpha"
    assert running["cost"] == {"list": "92.80", "subsidy": "64.96", "copay": "27.84"}
    [alpha] = me["projects"]
    assert alpha["running_servers"] == 1
    assert alpha["burn_rate_per_hour"] == "32.48"
    assert alpha["balance"] == "435.04"  # 500 less two hours of subsidy not yet charged
    assert alpha["usage"]["gpu_hours_per_week"] == "2.00"

    sessions = service.ok("GET", "api/v1/sessions", who="centre-admin")["sessions"]
    assert [s["id"] for s in sessions] == [admitted["session_id"]]

    path = f"api/v1/sessions/{admitted['session_id']}/stop"
    stopped = service.ok("POST", path, who="hub", json={"reason": "user"})
    assert stopped["already_stopped"] is False
    assert stopped["stopped"] == "2026-12-01T02:00:00Z"
    assert stopped["totals"] == {"list": "92.80", "subsidy": "64.96", "copay": "27.84"}

    service.clock.advance(HOUR)
    again = service.ok("POST", path, who="hub", json={"reason": "idle"})
    assert again["already_stopped"] is True
    assert again["totals"] == stopped["totals"]
    assert again["stopped"] == stopped["stopped"]
    assert again["reason"] == "user"

    me = service.ok("GET", "api/v1/me", who="alice")
    assert me["sessions"] == []
    assert me["projects"][0]["balance"] == "435.04"
    with service.db.read() as session:
        charged = session.scalar(select(func.sum(Charge.subsidy_micro)))
    assert charged == 64_960_000


def test_stop_by_server_is_idempotent_and_unknown_servers_are_404(service: Service) -> None:
    seed(service)
    admitted = service.ok(
        "POST",
        "api/v1/admissions",
        who="hub",
        status=201,
        json={"user": "alice", "profile": "cpu-small", "server_name": "lab"},
    )
    service.clock.advance(HOUR)
    body = {"user": "alice", "server_name": "lab", "reason": "user"}
    first = service.ok("POST", "api/v1/servers/stop", who="hub", json=body)
    second = service.ok("POST", "api/v1/servers/stop", who="hub", json=body)
    assert first["session_id"] == second["session_id"] == admitted["session_id"]
    assert (first["already_stopped"], second["already_stopped"]) == (False, True)
    assert first["totals"] == second["totals"]

    response = service.call(
        "POST", "api/v1/servers/stop", who="hub", json={"user": "alice", "server_name": "other"}
    )
    assert response.status_code == 404
    assert "alice's server 'other'" in response.json()["message"]
    response = service.call("POST", "api/v1/sessions/999999/stop", who="hub", json={})
    assert response.status_code == 404
    assert response.json() == {
        "status": 404,
        "message": "No such session: 999999",
        "reason": "not_found",
    }


def test_a_second_admission_supersedes_the_stale_session(service: Service) -> None:
    seed(service)
    first = service.ok("POST", "api/v1/admissions", who="hub", status=201, json=GPU)
    service.clock.advance(HOUR)
    second = service.ok("POST", "api/v1/admissions", who="hub", status=201, json=GPU)
    assert second["session_id"] != first["session_id"]
    # The first session missed its stop: it is closed and charged up to the new admission.
    again = service.ok("POST", f"api/v1/sessions/{first['session_id']}/stop", who="hub", json={})
    assert again["already_stopped"] is True
    assert again["reason"] == "superseded"
    assert again["stopped"] == "2026-12-01T01:00:00Z"
    assert again["totals"]["subsidy"] == "32.48"
    sessions = service.ok("GET", "api/v1/sessions", who="centre-admin")["sessions"]
    assert [s["id"] for s in sessions] == [second["session_id"]]
    assert sessions_and_holds(service) == (2, 2)


def test_refusal_names_the_balance_and_writes_nothing(service: Service) -> None:
    seed(service)
    # beta holds 100.00; gpu-2 (2× A100) needs 12.04 for 15 minutes, so spend most of it first.
    service.ok(
        "POST",
        "api/v1/projects/beta/allocations",
        who="centre-admin",
        status=201,
        json={"amount": "-95.00", "correction": True, "note": "over-granted"},
    )
    before = sessions_and_holds(service)
    response = service.call(
        "POST", "api/v1/admissions", who="hub", json={"user": "carol", "profile": "gpu-2"}
    )
    assert response.status_code == 403
    body = response.json()
    assert body["status"] == 403
    assert body["reason"] == "insufficient_balance"
    assert "Project Beta has HK$5.00 of subsidy left" in body["message"]
    assert "PyTorch · 2× A100 needs HK$12.04" in body["message"]
    assert "pick CPU · 2 cores · 4 GiB" in body["message"]  # the cheaper profile that fits
    assert sessions_and_holds(service) == before

    offers = service.ok("GET", "api/v1/users/carol/profiles", who="carol")
    [beta] = offers["projects"]
    by_slug = {offer["slug"]: offer for offer in beta["profiles"]}
    assert by_slug["gpu-2"]["allowed"] is False
    assert by_slug["gpu-2"]["reason"] == "insufficient_balance"
    assert by_slug["gpu-2"]["message"] == body["message"]
    assert by_slug["cpu-small"]["allowed"] is True
    assert "reason" not in by_slug["cpu-small"]


def test_refusals_for_strangers_and_unknown_projects(service: Service) -> None:
    seed(service)
    response = service.call("POST", "api/v1/admissions", who="hub", json={**GPU, "user": "carol"})
    assert response.status_code == 403
    assert response.json()["reason"] == "not_member"
    response = service.call("POST", "api/v1/admissions", who="hub", json={**GPU, "project": "nope"})
    assert response.status_code == 404
    # Only alice's own projects are named, never beta.
    assert response.json()["message"] == "No such project: nope. alice's projects: alpha."
    response = service.call("POST", "api/v1/admissions", who="hub", json={**GPU, "profile": "tpu"})
    assert response.status_code == 400
    assert "No such profile: tpu. Options include: cpu-small, gpu-1, gpu-2" in response.text
    assert sessions_and_holds(service) == (0, 0)


def test_profiles_price_each_option(service: Service) -> None:
    seed(service)
    offers = service.ok("GET", "api/v1/users/alice/profiles", who="hub")
    assert offers["currency"] == "HKD"
    [alpha] = offers["projects"]
    assert alpha["slug"] == "alpha"
    assert alpha["available"] == "500.00"
    gpu = next(offer for offer in alpha["profiles"] if offer["slug"] == "gpu-1")
    assert gpu == {
        "slug": "gpu-1",
        "display_name": "PyTorch · 1× H800",
        "description": "",
        "gpu_type": "h800",
        "gpu_count": 1,
        "list_rate_per_hour": "46.40",
        "subsidy_rate_per_hour": "32.48",
        "copay_rate_per_hour": "13.92",
        "hold": "8.12",
        "hours_left": "15.39",  # 500 / 32.48
        # No caps in alpha: the balance binds, 15.394 h (cut to the second).
        "time_left_seconds": 500 * 3600 * 100 // 3248,
        "time_left_reason": "balance",
        "allowed": True,
    }
    assert service.ok("GET", "api/v1/users/alice/profiles", who="admin")["projects"] == [alpha]


def test_metrics_count_admissions_refusals_and_stops(service: Service) -> None:
    seed(service)
    admitted = service.ok("POST", "api/v1/admissions", who="hub", status=201, json=GPU)
    service.call("POST", "api/v1/admissions", who="hub", json={**GPU, "profile": "tpu"})
    service.call("POST", "api/v1/admissions", who="hub", json={**GPU, "user": "carol"})
    service.ok("POST", f"api/v1/sessions/{admitted['session_id']}/stop", who="hub", json={})
    service.ok("POST", f"api/v1/sessions/{admitted['session_id']}/stop", who="hub", json={})
    found = metric_samples(service.ok_text("metrics", who="centre-admin"))
    admissions = "subsidyhub_admissions_total"
    assert found[admissions, (("reason", "admitted"), ("result", "admitted"))] == 1
    assert found[admissions, (("reason", "invalid"), ("result", "invalid"))] == 1
    assert found[admissions, (("reason", "not_member"), ("result", "refused"))] == 1
    assert found["subsidyhub_stops_total", (("reason", "user"),)] == 1  # repeats not counted
    assert found["subsidyhub_project_balance", (("project", "alpha"),)] == 500
    assert found["subsidyhub_project_running_servers", (("project", "alpha"),)] == 0
    latency = "subsidyhub_request_duration_seconds_count"
    route = ("route", "/admissions")
    assert found[latency, (("method", "POST"), route, ("status", "201"))] == 1
    assert found[latency, (("method", "POST"), route, ("status", "400"))] == 1


def charged_ledger(service: Service, slug: str) -> tuple[float, float]:
    """(list, subsidy) summed from the project's charge lines, in currency units."""
    with service.db.read() as session:
        row = session.execute(
            select(func.sum(Charge.list_micro), func.sum(Charge.subsidy_micro))
            .join(Project, Project.id == Charge.project_id)
            .where(Project.slug == slug)
        ).one()
    return int(row[0] or 0) / MICRO, int(row[1] or 0) / MICRO


async def test_metrics_of_charges_ticks_and_enforcement(
    service: Service, jupyterhub: TestHub
) -> None:
    seed(service)
    service.ok("POST", "api/v1/admissions", who="hub", status=201, json=GPU)
    # The hub admits the same server again: the ledger closes the first session.
    service.ok("POST", "api/v1/admissions", who="hub", status=201, json=GPU)
    carol = {**GPU, "user": "carol", "project": "beta"}
    service.ok("POST", "api/v1/admissions", who="hub", status=201, json=carol)
    # Four hours later beta's 100.00 (at 32.48/h) ran out, and no server runs in the hub.
    service.clock.advance(4 * HOUR)
    await enforce_once(service, jupyterhub.api_url)

    found = metric_samples(service.ok_text("metrics", who="centre-admin"))
    stops = "subsidyhub_stops_total"
    assert found[stops, (("reason", "superseded"),)] == 1
    assert found[stops, (("reason", "subsidy_exhausted"),)] == 1  # carol, by the tick's plan
    assert found[stops, (("reason", "reconciled"),)] == 1  # alice: the hub has no server
    assert found["subsidyhub_reconcile_drift", (("kind", "sessions_closed"),)] == 1
    assert found["subsidyhub_reconcile_drift", (("kind", "servers_unadmitted"),)] == 0
    assert found["subsidyhub_metering_tick_seconds_count", ()] == 1
    assert found["subsidyhub_metering_sessions_charged_total", ()] == 2
    last_tick = found["subsidyhub_metering_last_tick_timestamp_seconds", ()]
    assert last_tick == service.clock.now_ms / 1000
    assert found["subsidyhub_enforcement_lateness_seconds_count", ()] == 1
    for slug in ("alpha", "beta"):
        listed, subsidy = charged_ledger(service, slug)
        labels = (("project", slug),)
        assert found["subsidyhub_project_charged_list_total", labels] == pytest.approx(listed)
        assert found["subsidyhub_project_charged_subsidy_total", labels] == pytest.approx(subsidy)
    # The tick charged alice 4 h of gpu-1 (46.40/h), but the hub never showed her server
    # running: reconciliation closed it at its start and reversed the charge.
    assert charged_ledger(service, "alpha") == (0, 0)
    with service.db.read() as session:
        kinds = session.scalars(select(Charge.kind).order_by(Charge.id)).all()
    assert sorted(kinds) == ["reversal", "usage", "usage"]
    assert charged_ledger(service, "beta")[1] > 0  # carol's stop was enforced, not estimated
    assert found["subsidyhub_project_running_servers", (("project", "beta"),)] == 0


def test_an_admission_past_the_hubs_deadline_is_refused_and_writes_nothing(
    service: Service,
) -> None:
    seed(service)
    now = service.clock.now_ms
    late = {**GPU, "deadline": iso(now - 1, exact=True)}
    response = service.call("POST", "api/v1/admissions", who="hub", json=late)
    assert response.status_code == 503, response.text
    assert (
        "The hub stopped waiting for this admission at 2026-11-30T23:59:59.999Z"
        in (response.json()["message"])
    )
    assert sessions_and_holds(service) == (0, 0)

    on_time = {**GPU, "deadline": iso(now + 10_000, exact=True)}
    service.ok("POST", "api/v1/admissions", who="hub", status=201, json=on_time)
    assert sessions_and_holds(service) == (1, 1)
    found = metric_samples(service.ok_text("metrics", who="centre-admin"))
    assert (
        found["subsidyhub_admissions_total", (("reason", "deadline_passed"), ("result", "expired"))]
        == 1
    )


def test_a_dry_run_answers_as_the_admission_would_and_writes_nothing(service: Service) -> None:
    seed(service)
    running = service.ok("POST", "api/v1/admissions", who="hub", status=201, json=GPU)
    before = sessions_and_holds(service)

    verdict = service.ok("POST", "api/v1/admissions/dry-run", who="hub", json=GPU)
    assert verdict == {"allowed": True, "project": "alpha", "profile": "gpu-1"}
    service.ok(
        "PUT", "api/v1/projects/alpha/quota", who="centre-admin", json={"project_max_gpus": 1}
    )
    other = {**GPU, "server_name": "second"}
    dry = service.call("POST", "api/v1/admissions/dry-run", who="hub", json=other)
    real = service.call("POST", "api/v1/admissions", who="hub", json=other)
    assert dry.status_code == real.status_code == 403
    assert dry.json() == real.json()
    assert dry.json()["reason"] == "project_gpu_cap"

    # Nothing changed: the running session was not superseded by the dry run of its server.
    assert sessions_and_holds(service) == before
    sessions = service.ok("GET", "api/v1/sessions", who="centre-admin")["sessions"]
    assert [s["id"] for s in sessions] == [running["session_id"]]
    stranger = service.call("POST", "api/v1/admissions/dry-run", who="alice", json=GPU)
    assert (stranger.status_code, stranger.json()["reason"]) == (403, "forbidden")


def test_a_stop_records_the_time_the_hub_saw_even_after_a_tick(service: Service) -> None:
    seed(service)
    admitted = service.ok("POST", "api/v1/admissions", who="hub", status=201, json=GPU)
    service.clock.advance(HOUR)
    charge_until(service.db, service.clock.now_ms)  # the tick ran before the notice came
    body = {"user": "alice", "server_name": "", "reason": "stopped"}

    early = service.call(
        "POST", "api/v1/servers/stop", who="hub", json=body | {"stopped_at": "2026-11-30T23:59:00Z"}
    )
    assert early.status_code == 400
    assert "is before alice's session started" in early.json()["message"]
    ahead = iso(service.clock.now_ms + STOP_SKEW_MS + 1000, exact=True)
    future = service.call(
        "POST", "api/v1/servers/stop", who="hub", json=body | {"stopped_at": ahead}
    )
    assert future.status_code == 400
    assert "in the future" in future.json()["message"]

    half = iso(service.clock.now_ms - HOUR // 2, exact=True)
    stopped = service.ok("POST", "api/v1/servers/stop", who="hub", json=body | {"stopped_at": half})
    assert stopped["session_id"] == admitted["session_id"]
    assert stopped["stopped"] == "2026-12-01T00:30:00Z"
    assert stopped["totals"] == {"list": "23.20", "subsidy": "16.24", "copay": "6.96"}
    again = service.ok("POST", "api/v1/servers/stop", who="hub", json=body | {"stopped_at": half})
    assert again["already_stopped"] is True and again["totals"] == stopped["totals"]
    with service.db.read() as session:
        charged = session.scalar(select(func.sum(Charge.subsidy_micro)))
        assert verify(session) == []
    assert charged == 16_240_000
