"""The GPU queue and reservations over the API (issue 16), against the session's real hub.

One H800 in the centre (``gpu_capacity``): alice holds it, carol waits, the stop hands it to
carol through the enforcer's offer, and nobody else passes her meanwhile.
"""

from __future__ import annotations

import asyncio
import email
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import update

from subsidyhub.ledger.models import Member
from subsidyhub.netutil import free_port
from subsidyhub.settings import Settings, parse_settings
from subsidyhub.testing.hub import TestHub
from tests.conftest import TEST_CONFIG

from .helpers import HOUR, Service, enforce_once, metric_samples, seed

pytestmark = pytest.mark.hub

ALICE = {"user": "alice", "profile": "gpu-1", "server_name": "", "project": "alpha"}
CAROL = {"user": "carol", "profile": "gpu-1", "server_name": "", "project": "beta"}
BOB = {"user": "bob", "profile": "gpu-1", "server_name": "", "project": "alpha"}


class Inbox:
    """aiosmtpd's handler: keeps every message the real SMTP server receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=default))
        return "250 OK"


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def settings(inbox: tuple[Inbox, int]) -> Settings:
    smtp = {"host": "127.0.0.1", "port": inbox[1], "starttls": False, "from_address": "hub@centre"}
    return parse_settings(
        TEST_CONFIG | {"gpu_capacity": {"h800": 1}, "smtp": smtp, "centre_name": "HK AI Centre"},
        "test-config",
    )


def test_a_full_type_queues_and_the_stop_hands_the_gpu_to_the_head(
    service: Service, jupyterhub: TestHub, inbox: tuple[Inbox, int]
) -> None:
    seed(service)
    with service.db.write() as session:  # as a course roster records it
        session.execute(
            update(Member).where(Member.username == "carol").values(email="carol@uni.example")
        )
    alice = service.ok("POST", "api/v1/admissions", who="hub", status=201, json=ALICE)
    refused = service.call("POST", "api/v1/admissions", who="hub", json=CAROL)
    assert refused.status_code == 403
    assert refused.json()["reason"] == "gpus_busy"
    assert "No H800 GPU is free" in refused.json()["message"]

    place = service.ok("POST", "api/v1/queue", who="carol", status=201, json=CAROL)
    assert (place["state"], place["position"], place["gpus_ahead"]) == ("waiting", 1, 0)
    # No session of the type ended yet (no usual length): the estimate and the latest start
    # are both when alice's project runs out of subsidy, which stops her server.
    [alpha] = [p for p in service.ok("GET", "api/v1/me", who="alice")["projects"]]
    assert place["latest_start"] == place["estimated_start"] == alpha["exhaustion_at"]
    # A second place for the same server is the same place.
    again = service.ok("POST", "api/v1/queue", who="carol", status=201, json=CAROL)
    assert again["id"] == place["id"]
    # Bob may not take a place for carol, nor see hers.
    assert service.call("POST", "api/v1/queue", who="bob", json=CAROL).status_code == 403
    assert service.ok("GET", "api/v1/queue", who="bob")["places"] == []
    [mine] = service.ok("GET", "api/v1/queue", who="carol")["places"]
    assert mine["id"] == place["id"]

    [h800] = [
        t
        for t in service.ok("GET", "api/v1/capacity", who="carol")["gpu_types"]
        if t["gpu_type"] == "h800"
    ]
    assert (h800["gpus"], h800["in_use"], h800["free_now"], h800["waiting"]) == (1, 1, 0, 1)

    service.clock.advance(HOUR)
    service.ok(
        "POST",
        "api/v1/servers/stop",
        who="hub",
        json={"user": "alice", "server_name": "", "reason": "user"},
    )
    # Bob walks in the moment it frees: carol is waiting, so he is refused.
    walk_in = service.call("POST", "api/v1/admissions", who="hub", json=BOB)
    assert walk_in.json()["reason"] == "gpus_busy"
    assert "1 waiting in the queue" in walk_in.json()["message"]

    asyncio.run(enforce_once(service, jupyterhub.api_url))
    [offered] = service.ok("GET", "api/v1/queue", who="carol")["places"]
    assert offered["state"] == "offered"
    assert offered["offer_expires"] == "2026-12-01T01:10:00Z"
    # Carol's page may be closed: GET me (the lab) and her email say it is her turn.
    [beta] = service.ok("GET", "api/v1/me", who="carol")["projects"]
    [offer] = [w for w in beta["warnings"] if w["code"] == "gpu_offer"]
    assert (
        "Your turn in the queue: 1 × H800 is held for your server until 01:10 UTC"
        in (offer["message"])
    )
    [mail] = inbox[0].messages
    assert (mail["To"], mail["From"]) == ("carol@uni.example", "hub@centre")
    assert mail["Subject"] == "Your turn: 1 × H800 is held for you until 01:10 UTC"
    assert "passes to the next person" in mail.get_content()
    carol = service.ok("POST", "api/v1/admissions", who="hub", status=201, json=CAROL)
    assert carol["session_id"] != alice["session_id"]
    assert service.ok("GET", "api/v1/queue", who="carol")["places"] == []

    metrics = metric_samples(service.ok_text("metrics", who="centre-admin"))
    assert metrics[("subsidyhub_gpus_in_use", (("gpu_type", "h800"),))] == 1
    assert metrics[("subsidyhub_queue_length", (("gpu_type", "h800"),))] == 0
    assert metrics[("subsidyhub_queue_wait_seconds_count", (("gpu_type", "h800"),))] == 1
    assert metrics[("subsidyhub_queue_wait_seconds_sum", (("gpu_type", "h800"),))] == 3600


def test_leaving_the_queue_and_places_that_cannot_be_taken(service: Service) -> None:
    seed(service)
    service.ok("POST", "api/v1/admissions", who="hub", status=201, json=ALICE)
    service.ok("POST", "api/v1/queue", who="hub", status=201, json=CAROL)
    left = service.ok(
        "POST", "api/v1/queue/leave", who="carol", json={"user": "carol", "server_name": ""}
    )
    assert left["state"] == "left"
    gone = service.call(
        "POST", "api/v1/queue/leave", who="carol", json={"user": "carol", "server_name": ""}
    )
    assert gone.status_code == 404
    assert "not waiting in any queue" in gone.json()["message"]
    cpu = service.call("POST", "api/v1/queue", who="carol", json=CAROL | {"profile": "cpu-small"})
    assert cpu.status_code == 400
    assert "never waits: start it directly" in cpu.json()["message"]
    stranger = service.call("POST", "api/v1/queue", who="carol", json=CAROL | {"project": "alpha"})
    assert stranger.status_code in (403, 404)


def test_reservations_admins_any_managers_within_their_limit(service: Service) -> None:
    seed(service)
    window = {
        "project": "alpha",
        "gpu_type": "h800",
        "gpus": 1,
        "starts": "2026-12-01T14:00:00Z",
        "ends": "2026-12-01T16:00:00Z",
        "weeks": 13,
        "note": "COMP3340 labs",
    }
    refused = service.call("POST", "api/v1/reservations", who="bob", json=window)
    assert refused.status_code == 403
    assert "managers may not reserve GPUs" in refused.json()["message"]
    service.ok(
        "PUT",
        "api/v1/projects/alpha/quota",
        who="centre-admin",
        json={"reservable_gpus": 1},
    )
    made = service.ok("POST", "api/v1/reservations", who="bob", status=201, json=window)
    assert (made["gpus"], made["weeks"], made["created_by"]) == (1, 13, "bob")
    # Not for another project, and not beyond the type's capacity.
    other = service.call(
        "POST", "api/v1/reservations", who="bob", json=window | {"project": "beta"}
    )
    assert other.status_code == 403
    full = service.call(
        "POST",
        "api/v1/reservations",
        who="centre-admin",
        json=window
        | {
            "project": "beta",
            "weeks": 1,
            "starts": "2026-12-08T15:00:00Z",
            "ends": "2026-12-08T17:00:00Z",
        },
    )
    assert full.status_code == 403
    assert full.json()["reason"] == "reservations_exceed_capacity"
    # Carol (not in alpha) sees nothing of it; bob sees his project's.
    assert service.call("GET", "api/v1/reservations?project=alpha", who="carol").status_code == 403
    listed = service.ok("GET", "api/v1/reservations?project=alpha", who="bob")["reservations"]
    assert [r["id"] for r in listed] == [made["id"]]
    cancelled = service.ok("POST", f"api/v1/reservations/{made['id']}/cancel", who="bob")
    assert cancelled["cancelled"] == "2026-12-01T00:00:00Z"
    assert service.ok("GET", "api/v1/reservations", who="centre-admin")["reservations"] == []


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"gpus": "１"}, "gpus"),
        ({"gpus": 1e30}, "gpus"),
        ({"weeks": 0}, "weeks"),
        ({"starts": "tomorrow"}, "starts"),
        ({"gpu_type": "H800"}, "gpu_type"),
        ({"colour": "red"}, "unknown field 'colour'"),
    ],
)
def test_bad_reservations_are_a_4xx_naming_the_field(
    service: Service, change: dict, fragment: str
) -> None:
    seed(service)
    body = {
        "project": "alpha",
        "gpu_type": "h800",
        "gpus": 1,
        "starts": "2026-12-01T14:00:00Z",
        "ends": "2026-12-01T16:00:00Z",
    } | change
    response = service.call("POST", "api/v1/reservations", who="centre-admin", json=body)
    assert 400 <= response.status_code < 500
    assert set(response.json()) >= {"status", "message"}
    assert fragment in response.json()["message"]
