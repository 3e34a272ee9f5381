"""A running server is charged: ``GET me`` through the proxy shows the session and a live balance.

Real components: the ``subsidyhub up`` stack (JupyterHub, npm configurable-http-proxy, the
subsidy service as a managed service with a one-second metering interval, ``LocalGPUSpawner``, a
real single-user server), on JupyterHub 6 and 5.5. Proves that a REST-spawned server becomes a
running session in the ledger with the profile's rates, and that the project's balance a user
reads through the proxy goes down while it runs (the balance is live: it subtracts what running
sessions have accrued, whether or not the metering loop has charged it yet).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ..conftest import ON_BOTH_MAJORS
from ..helpers import HubStack, HubUser, poll, service_get

pytestmark = [pytest.mark.hub, ON_BOTH_MAJORS]


def demo_project(me: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in me["projects"] if p["slug"] == "demo")


def test_running_server_shows_as_a_session_and_the_balance_goes_down(
    hub: HubStack, bob: HubUser
) -> None:
    token = bob.new_token()
    response = bob.start_server("cpu-small")
    assert response.status_code in (201, 202), response.text
    bob.wait_ready()

    first = service_get(hub, "me", token)
    assert first.status_code == 200, first.text
    me = first.json()
    assert me["user"] == "bob"
    [session] = me["sessions"]
    assert (session["user"], session["server_name"], session["project"]) == ("bob", "", "demo")
    assert (session["profile"], session["gpu_count"]) == ("cpu-small", 0)
    assert session["list_rate_per_hour"] == "1.40"
    assert session["subsidy_rate_per_hour"] == "0.98"
    project = demo_project(me)
    assert project["running_servers"] == 1
    assert project["burn_rate_per_hour"] == "0.98"
    assert project["time_left_seconds"] is not None and project["time_left_seconds"] > 0
    balance = Decimal(project["balance"])
    assert balance < Decimal(project["allocated"])

    def lower_balance() -> dict[str, Any] | None:
        later = service_get(hub, "me", token).json()
        return later if Decimal(demo_project(later)["balance"]) < balance else None

    later = poll(lower_balance, timeout=15, what="project demo's balance goes down")
    [running] = later["sessions"]
    assert running["id"] == session["id"]
    assert Decimal(running["cost"]["subsidy"]) > Decimal(session["cost"]["subsidy"])
    assert Decimal(running["cost"]["list"]) > Decimal(running["cost"]["subsidy"])
