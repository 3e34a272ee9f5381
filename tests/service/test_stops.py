"""Why a server stopped, as its owner and the hub read it from the service."""

from __future__ import annotations

from .helpers import Service, seed


def test_an_admins_stop_with_a_note_is_explained_to_its_owner(service: Service) -> None:
    seed(service)
    admitted = service.ok(
        "POST",
        "api/v1/admissions",
        who="hub",
        status=201,
        json={"user": "alice", "profile": "gpu-1", "server_name": "", "project": "alpha"},
    )
    service.clock.advance(3_600_000)
    service.ok(
        "POST",
        f"api/v1/sessions/{admitted['session_id']}/stop-server",
        who="centre-admin",
        json={"note": "node maintenance until 18:00"},
    )
    expected = (
        "Your server was stopped at 01:00 UTC: an administrator stopped it. The admin wrote: "
        '"node maintenance until 18:00". Ask the centre\'s admins if unsure why.'
    )
    [mine] = service.ok("GET", "api/v1/me", who="alice")["stops"]
    assert (mine["reason"], mine["note"], mine["message"]) == (
        "admin",
        "node maintenance until 18:00",
        expected,
    )
    assert mine["current"] and not mine["own"] and mine["project_name"] == "Alpha"
    # The hub asks on alice's behalf before it renders her home page; nobody else may.
    assert service.ok("GET", "api/v1/users/alice/stops", who="hub")["stops"] == [mine]
    assert service.call("GET", "api/v1/users/alice/stops", who="carol").status_code == 403
    assert service.ok("GET", "api/v1/users/carol/stops", who="carol") == {
        "user": "carol",
        "stops": [],
    }


def test_a_stop_the_hub_reports_is_the_owners_own(service: Service) -> None:
    seed(service)
    service.ok(
        "POST",
        "api/v1/admissions",
        who="hub",
        status=201,
        json={"user": "carol", "profile": "cpu-small", "server_name": "x", "project": "beta"},
    )
    service.clock.advance(60_000)
    service.ok(
        "POST",
        "api/v1/servers/stop",
        who="hub",
        json={"user": "carol", "server_name": "x", "reason": "stopped"},
    )
    [stop] = service.ok("GET", "api/v1/users/carol/stops", who="hub")["stops"]
    assert stop["own"] and stop["reason"] == "stopped" and stop["server_name"] == "x"
