"""Idle GPUs over the API (issue 17), against the session's real hub.

The utilisation comes from dcgm-exporter's own endpoint (``idle_gpu.source: exporter``): a
stand-in exporter serving its exact text format, since no GPU can run here. Servers on this
host hold GPUs by index, as the local spawner hands them out. The enforcer's sampling runs at
the service's movable clock: alice's idle server is warned, kept once, warned again and
stopped with the reason ``idle_gpu``; bob's busy server is never touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from subsidyhub.ledger.models import GpuSample, SpawnSession
from subsidyhub.service.enforcer import Enforcer
from subsidyhub.service.hubclient import HubClient
from subsidyhub.settings import Settings, parse_settings
from subsidyhub.testing.hub import TestHub
from subsidyhub.testing.prometheus import FakeDcgmExporter
from tests.conftest import TEST_CONFIG

from .helpers import Service, metric_samples, seed

pytestmark = pytest.mark.hub

SAMPLE_MS = 30_000
MINUTE = 60_000
ALICE = {"user": "alice", "profile": "gpu-1", "server_name": "", "project": "alpha"}
BOB = {"user": "bob", "profile": "gpu-1", "server_name": "", "project": "alpha"}


@pytest.fixture
def exporter() -> Iterator[FakeDcgmExporter]:
    with FakeDcgmExporter(gpus=2) as fake:
        yield fake


@pytest.fixture
def settings(exporter: FakeDcgmExporter) -> Settings:
    return parse_settings(
        TEST_CONFIG
        | {
            "idle_gpu": {
                "source": "exporter",
                "exporter_urls": [exporter.url],
                "sample_seconds": 30,
                "stop_after_minutes": 30,
                "warn_before_minutes": 10,
            }
        },
        "test-config",
    )


async def sample(service: Service, hub_api_url: str, rounds: int = 1) -> None:
    """``rounds`` samples, each a sample period after the last (the enforcer's own code)."""
    client = HubClient(hub_api_url, service.hub_token)
    context = service.app.state.subsidy
    enforcer = Enforcer(service.settings, service.db, client, context.metrics, service.clock)
    try:
        for _ in range(rounds):
            service.clock.advance(SAMPLE_MS)
            await enforcer.sample_gpus()
    finally:
        await client.aclose()


def idle_warnings(service: Service, who: str) -> list[dict]:
    return [
        warning
        for project in service.ok("GET", "api/v1/me", who=who)["projects"]
        for warning in project["warnings"]
        if warning["code"] == "idle_gpu"
    ]


def test_an_idle_server_is_warned_kept_once_and_stopped_while_a_busy_one_runs_on(
    service: Service, jupyterhub: TestHub, exporter: FakeDcgmExporter
) -> None:
    seed(service)
    service.ok(
        "POST", "api/v1/admissions", who="hub", status=201, json=ALICE | {"gpu_devices": ["0"]}
    )
    service.ok(
        "POST", "api/v1/admissions", who="hub", status=201, json=BOB | {"gpu_devices": ["1"]}
    )
    exporter.set("", "", 0, utilisation=2, memory_mib=30_000)  # a model loaded, no work
    exporter.set("", "", 1, utilisation=85, memory_mib=60_000)

    asyncio.run(sample(service, jupyterhub.api_url, rounds=39))  # 19.5 min idle
    assert idle_warnings(service, "alice") == []
    asyncio.run(sample(service, jupyterhub.api_url))  # 20 min: 10 min before the stop
    [warning] = idle_warnings(service, "alice")
    assert warning["can_keep"] is True and warning["server_name"] == ""
    assert warning["at"] == "2026-12-01T00:30:00Z"
    assert "have done no work for 20 min (below 5% use)" in warning["message"]

    plot = service.ok("GET", "api/v1/users/alice/gpu-usage", who="alice")
    assert len(plot["samples"]) == 40 and plot["samples"][-1]["utilisation_pct"] == 2
    assert plot["samples"][-1]["memory_mib"] == 30_000 and plot["samples"][-1]["idle"] is True
    assert plot["usage"]["idle_since"] == "2026-12-01T00:00:00Z"
    assert plot["usage"]["stops_at"] == "2026-12-01T00:30:00Z" and plot["can_keep"] is True
    assert service.call("GET", "api/v1/users/alice/gpu-usage", who="bob").status_code == 403

    metrics = metric_samples(service.ok_text("metrics", who="centre-admin"))
    assert metrics[("subsidyhub_gpus_idle", (("gpu_type", "h800"),))] == 1

    kept = service.ok("POST", "api/v1/users/alice/keep", who="alice", json={"server_name": ""})
    assert kept["stops_at"] == "2026-12-01T00:50:00Z"
    assert idle_warnings(service, "alice") == []
    again = service.call("POST", "api/v1/users/alice/keep", who="alice", json={"server_name": ""})
    assert again.status_code == 409 and "kept once already" in again.json()["message"]
    assert (
        service.call(
            "POST", "api/v1/users/alice/keep", who="bob", json={"server_name": ""}
        ).status_code
        == 403
    )

    asyncio.run(sample(service, jupyterhub.api_url, rounds=39))  # 00:39:30
    assert idle_warnings(service, "alice") == []
    asyncio.run(sample(service, jupyterhub.api_url))  # 00:40:00
    [warning] = idle_warnings(service, "alice")
    assert warning["can_keep"] is False and warning["at"] == "2026-12-01T00:50:00Z"
    asyncio.run(sample(service, jupyterhub.api_url, rounds=19))  # 00:49:30: still running
    assert running(service) == {"alice", "bob"}
    asyncio.run(sample(service, jupyterhub.api_url))  # 00:50:00
    assert running(service) == {"bob"}

    [stop] = service.ok("GET", "api/v1/me", who="alice")["stops"]
    assert stop["reason"] == "idle_gpu" and stop["stopped"] == "2026-12-01T00:50:00Z"
    assert "GPUs did no work for too long" in stop["message"]
    with service.db.read() as session:
        alice = session.scalars(select(SpawnSession).where(SpawnSession.username == "alice")).one()
        counted = session.scalar(
            select(func.sum(GpuSample.idle_ms)).where(GpuSample.session_id == alice.id)
        )
    assert alice.idle_gpu_ms == counted == 50 * MINUTE
    metrics = metric_samples(service.ok_text("metrics", who="centre-admin"))
    assert metrics[("subsidyhub_stops_total", (("reason", "idle_gpu"),))] == 1


def test_keep_it_and_the_plot_need_a_running_gpu_server(service: Service) -> None:
    seed(service)
    service.ok(
        "POST", "api/v1/admissions", who="hub", status=201, json=ALICE | {"profile": "cpu-small"}
    )
    missing = service.call("GET", "api/v1/users/alice/gpu-usage", who="alice")
    assert missing.status_code == 404 and "no running GPU" in missing.json()["message"]
    kept = service.call("POST", "api/v1/users/alice/keep", who="alice", json={"server_name": ""})
    assert kept.status_code == 404 and "nothing to keep" in kept.json()["message"]
    bad = service.call(
        "POST", "api/v1/admissions", who="hub", json=BOB | {"gpu_devices": ["0; rm -rf"]}
    )
    assert bad.status_code == 400 and "gpu_devices" in bad.json()["message"]


def running(service: Service) -> set[str]:
    with service.db.read() as session:
        return set(
            session.scalars(select(SpawnSession.username).where(SpawnSession.stopped_ms.is_(None)))
        )
