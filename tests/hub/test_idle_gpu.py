"""Issue 17 on the real stack: an idle GPU server is warned in its JupyterLab, kept once from
there, warned again and stopped with the reason ``idle_gpu``; a busy one runs on.

`subsidyhub up`'s stack (real JupyterHub and proxy, the subsidy service with its enforcer,
LocalGPUSpawner running real JupyterLab servers). The host has no GPU: ``local.gpus`` declares
two ids, handed out as ``CUDA_VISIBLE_DEVICES`` as real ones would be, and the admission tells
the service which ids each server holds. Their utilisation comes from a stand-in for
dcgm-exporter (its exact text format, ``idle_gpu.source: exporter``) since no GPU can run here;
everything from the service's read of that endpoint to the lab's Keep it is the real path.
A sample is taken every second and a server stops after 9 s of idle GPUs (warned 6 s before).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from subsidyhub.ledger.db import Database
from subsidyhub.ledger.models import GpuSample, SpawnSession
from subsidyhub.testing.prometheus import FakeDcgmExporter

from .helpers import HubStack, HubUser, poll, release

pytestmark = [pytest.mark.hub, pytest.mark.slow]

TICK_MS = 1000
STOP_AFTER_MS = 9000


@pytest.fixture(scope="module")
def exporter() -> Iterator[FakeDcgmExporter]:
    with FakeDcgmExporter(gpus=2) as fake:
        for index in (0, 1):  # busy until a test says otherwise
            fake.set("", "", index, utilisation=90, memory_mib=20_000)
        yield fake


def idle_stack_config(exporter: FakeDcgmExporter, gpus: list[str], **idle: float) -> dict[str, Any]:
    """A stack with one GPU profile on ``gpus`` (host ids) whose utilisation is read from
    ``exporter``, with the ``idle_gpu`` settings given."""
    return {
        "currency": "HKD",
        "metering": {"interval_seconds": 2, "min_start_minutes": 0.05},
        "prices": {"cpu_core": "1.00", "memory_gib": "0", "gpu": {"h800": "36.00"}},
        "profiles": [
            {
                "slug": "gpu-1",
                "display_name": "PyTorch · 1× H800",
                "cpu": 1,
                "memory_gib": 1,
                "gpus": {"type": "h800", "count": 1},
            },
        ],
        "local": {"gpus": gpus},
        "idle_gpu": {"source": "exporter", "exporter_urls": [exporter.url], **idle},
    }


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, exporter: FakeDcgmExporter
) -> Iterator[HubStack]:
    config = idle_stack_config(
        exporter,
        ["0", "1"],
        sample_seconds=TICK_MS / 1000,
        stop_after_minutes=STOP_AFTER_MS / 60_000,
        warn_before_minutes=0.1,
    )
    hub = HubStack(tmp_path_factory.mktemp("idle"), config).start()
    try:
        hub.admin("project", "create", "lab", "--name", "Lab")
        hub.admin("allocate", "lab", "100000")
        for name in ("alice", "bob"):
            hub.admin("member", "add", "lab", name)
        yield hub
    finally:
        hub.close()


@pytest.fixture(scope="module")
def people(stack: HubStack) -> Iterator[dict[str, HubUser]]:
    users = {name: HubUser(stack, name) for name in ("alice", "bob")}
    try:
        yield users
    finally:
        release(users.values())


def session_of(ledger: Database, name: str) -> SpawnSession:
    with ledger.read() as session:
        row = session.scalars(
            select(SpawnSession)
            .where(SpawnSession.username == name)
            .order_by(SpawnSession.id.desc())
        ).first()
        assert row is not None
        session.expunge(row)
        return row


def lab(user: HubUser, method: str, path: str) -> Any:
    """The lab's server extension (``/user/NAME/subsidy/PATH``), as its front end calls it."""
    headers = {}
    if method != "GET":
        headers["X-XSRFToken"] = user.http.cookies.get("_xsrf", path=f"/user/{user.name}/") or ""
    response = user.http.request(method, f"/user/{user.name}/subsidy/{path}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def idle_warning(user: HubUser) -> dict[str, Any] | None:
    warnings = [
        warning
        for project in lab(user, "GET", "me")["projects"]
        for warning in project["warnings"]
        if warning["code"] == "idle_gpu"
    ]
    return warnings[0] if warnings else None


def test_an_idle_gpu_server_is_warned_kept_once_and_stopped_and_a_busy_one_runs_on(
    stack: HubStack,
    ledger: Database,
    people: dict[str, HubUser],
    exporter: FakeDcgmExporter,
) -> None:
    alice, bob = people["alice"], people["bob"]
    for user in (alice, bob):
        assert user.start_server("gpu-1", "lab").status_code in (201, 202)
        user.wait_ready()
    # The lab's session cookie for alice's server (OAuth with the hub on first visit).
    assert alice.http.get("/user/alice/lab").status_code == 200
    [gpu] = session_of(ledger, "alice").gpu_devices or []
    assert session_of(ledger, "bob").gpu_devices == ["1" if gpu == "0" else "0"]
    exporter.set("", "", int(gpu), utilisation=1, memory_mib=30_000)  # a model held, no work

    warning = poll(lambda: idle_warning(alice), timeout=20, what="the idle warning in the lab")
    assert warning["can_keep"] is True
    assert "have done no work for" in warning["message"]
    plot = lab(alice, "GET", "gpu-usage")
    assert plot["samples"][-1]["utilisation_pct"] == 1 and plot["usage"]["idle_since"]

    kept = lab(alice, "POST", "keep")
    kept_ms = session_of(ledger, "alice").idle_kept_ms
    assert kept_ms is not None and kept["stops_at"]
    again = poll(
        lambda: (w := idle_warning(alice)) is not None and not w["can_keep"] and w,
        timeout=20,
        what="the idle warning after Keep it",
    )
    assert again["id"] != warning["id"] and "kept it once already" in again["message"]
    poll(lambda: alice.server() is None, timeout=30, what="alice's idle server stopped")
    stopped = session_of(ledger, "alice")
    assert stopped.stop_reason == "idle_gpu"
    deadline = kept_ms + STOP_AFTER_MS
    # At the first sample at or after the deadline: one tick, plus the round's own time.
    assert deadline <= (stopped.stopped_ms or 0) <= deadline + 2 * TICK_MS

    home = poll(
        lambda: "did no work for too long" in (page := alice.http.get("/hub/home").text) and page,
        timeout=10,
        what="the hub's home page saying why",
    )
    assert 'data-reason="idle_gpu"' in home
    with ledger.read() as session:
        counted = session.scalar(
            select(func.sum(GpuSample.idle_ms)).where(GpuSample.session_id == stopped.id)
        )
    assert stopped.idle_gpu_ms == counted and stopped.idle_gpu_ms >= STOP_AFTER_MS
    # The statement's idle GPU-hours are the samples' (1 GPU), to its 4 decimals.
    month = time.strftime("%Y-%m", time.gmtime(stopped.started_ms / 1000))
    lines = json.loads(stack.cli("statement", "lab", "--month", month, "--format", "json"))
    [line] = [x for x in lines["lines"] if x["username"] == "alice"]
    assert Decimal(line["idle_gpu_hours"]) == round(Decimal(counted) / 3_600_000, 4)
    assert Decimal(line["idle_list"]) > 0

    # Bob's GPU stayed busy: never idle, never stopped.
    time.sleep(2 * TICK_MS / 1000)
    assert bob.server() is not None
    busy = session_of(ledger, "bob")
    assert busy.stopped_ms is None and busy.idle_gpu_ms == 0 and busy.idle_since_ms is None
