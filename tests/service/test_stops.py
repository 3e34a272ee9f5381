"""Why a server stopped, as its owner and the hub read it from the service."""

from __future__ import annotations

from collections.abc import AsyncIterator

from subsidyhub.ledger import server_stops
from subsidyhub.service.enforcer import Enforcer
from subsidyhub.service.hubclient import HubClient, HubServer
from subsidyhub.testing.hub import TestHub

from .helpers import T0, Service, seed


def test_an_admins_stop_with_a_note_is_explained_to_its_owner(service: Service) -> None:
    seed(service)
    admitted = service.admit("alice", "gpu-1", "alpha")
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
    service.admit("carol", "cpu-small", "beta", "x")
    service.clock.advance(60_000)
    service.ok(
        "POST",
        "api/v1/servers/stop",
        who="hub",
        json={"user": "carol", "server_name": "x", "reason": "stopped"},
    )
    [stop] = service.ok("GET", "api/v1/users/carol/stops", who="hub")["stops"]
    assert stop["own"] and stop["reason"] == "stopped" and stop["server_name"] == "x"


class _ListsAlicesServer(HubClient):
    """The real hub client, except that the hub's list of servers holds alice's: the service
    tests' hub runs no servers (its users have no accounts on this machine to run them as)."""

    async def active_servers(self) -> AsyncIterator[HubServer]:
        yield HubServer("alice", "", T0, None, True, "cpu-small", "alpha")


async def test_an_admin_stop_between_plan_and_reconciliation_keeps_its_grace(
    service: Service, jupyterhub: TestHub
) -> None:
    """``subsidyhub server stop`` writes the ledger directly, and the enforcer learns of it from
    its plan, then gives the user ``admin_stop_grace_seconds``. A stop committed after a round
    planned but before it reconciled left a running server without an open session that was
    in no grace yet: reconciliation stopped it at once as unadmitted (seen in the e2e test of
    every stop, under load). Reconciliation now reads the admin stops after the sessions."""
    seed(service)
    admitted = service.admit("alice", "cpu-small", "alpha")
    hub = _ListsAlicesServer(jupyterhub.api_url, service.hub_token)
    metrics = service.app.state.subsidy.metrics
    enforcer = Enforcer(service.settings, service.db, hub, metrics, service.clock)
    try:
        await enforcer.round()  # planned and reconciled: alice's session is open
        service.clock.advance(5_000)
        with service.db.write() as session:
            server_stops.stop_by_admin(
                session,
                admitted["session_id"],
                actor="cli:tester",
                now_ms=service.clock(),
                note="node maintenance",
            )
        await enforcer.reconcile()  # before the next round's plan sees the stop
    finally:
        await hub.aclose()
    assert ("alice", "") not in enforcer.state.pending_hub_stops
    grace_ms = int(service.settings.metering.admin_stop_grace_seconds * 1000)
    assert enforcer.state.graced_stops[("alice", "")] == (
        admitted["session_id"],
        service.clock() + grace_ms,
        "admin",
    )
