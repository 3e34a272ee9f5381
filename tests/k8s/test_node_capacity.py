"""GPU capacity from the cluster's nodes (``kubernetes.capacity_from_nodes``, issue 16).

No Kubernetes API server can run here, so a stand-in serves ``GET /api/v1/nodes`` with node
objects as the API returns them (a real node list's shape: metadata.labels, spec.unschedulable,
status.allocatable and conditions); the service's enforcer reads it as it would the cluster's
and records the count in a real ledger (SQLite and PostgreSQL), where admission uses it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from subsidyhub.errors import Refused
from subsidyhub.ledger import admission, capacity, projects
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.migrate import upgrade
from subsidyhub.money import parse_amount
from subsidyhub.service.enforcer import Enforcer
from subsidyhub.service.hubclient import HubClient
from subsidyhub.service.metrics import ServiceMetrics
from subsidyhub.service.node_capacity import NodeReadFailed, count_gpus, read_nodes
from subsidyhub.settings import parse_settings

from .test_profiles import BASE

T0 = 1_796_083_200_000


def node(
    label: str | None,
    allocatable: dict[str, str],
    *,
    ready: bool = True,
    unschedulable: bool = False,
) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": "n"} | ({"nvidia.com/gpu.product": label} if label else {})
    return {
        "metadata": {"name": "n", "labels": labels},
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {
            "allocatable": {"cpu": "64", "memory": "512Gi"} | allocatable,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


NODES = [
    node("NVIDIA-H800", {"nvidia.com/gpu": "8"}),
    node("NVIDIA-H800", {"nvidia.com/gpu": "8"}),
    node("NVIDIA-H800", {"nvidia.com/gpu": "8"}, unschedulable=True),  # cordoned: not counted
    node("NVIDIA-H800", {"nvidia.com/gpu": "8"}, ready=False),  # not ready: not counted
    node("NVIDIA-A100", {"nvidia.com/mig-1g.10gb": "7", "nvidia.com/gpu": "0"}),
    node("NVIDIA-L4", {"nvidia.com/gpu": "1"}),  # a type SubsidyHub does not price
]


def settings(**kubernetes: Any):
    data = {**BASE, "backend": "kubernetes"}
    data["kubernetes"] = {**BASE["kubernetes"], **kubernetes}
    data["gpu_capacity"] = {"h800": 4}
    return parse_settings(data, "test.yaml")


def test_ready_schedulable_nodes_count_per_type_by_label_and_resource():
    counted = count_gpus(NODES, settings().kubernetes)
    assert counted == {"h800": (16, 2), "a100": (7, 1)}
    assert count_gpus([], settings().kubernetes) == {"h800": (0, 0), "a100": (0, 0)}


class _Nodes(BaseHTTPRequestHandler):
    items: ClassVar[list[dict[str, Any]]] = NODES
    status = 200
    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).asked.append(self.path)
        body = json.dumps({"kind": "NodeList", "items": self.items}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Nodes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Nodes.status, _Nodes.asked = 200, []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_read_asks_for_the_gpu_nodes_only(api):
    counted = asyncio.run(read_nodes(settings(api_url=api).kubernetes))
    assert counted["h800"] == (16, 2)
    assert _Nodes.asked == ["/api/v1/nodes?labelSelector=nvidia.com%2Fgpu.product"]
    _Nodes.status = 403
    with pytest.raises(NodeReadFailed, match="answered 403"):
        asyncio.run(read_nodes(settings(api_url=api).kubernetes))


def test_outside_a_pod_without_api_url_the_read_says_how_to_fix_it(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(NodeReadFailed, match=r"set kubernetes\.api_url"):
        asyncio.run(read_nodes(settings().kubernetes))


@pytest.fixture
def ledger(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


def test_the_enforcer_records_the_nodes_and_admission_counts_them(ledger, api):
    config = settings(api_url=api, capacity_from_nodes=True, capacity_refresh_seconds=60)
    upgrade(ledger, config)
    with ledger.write() as session:
        projects.create_project(session, config, "t", slug="lab", name="Lab", at_ms=T0)
        projects.add_allocation(
            session, config, "t", "lab", amount_micro=parse_amount("100000"), at_ms=T0
        )
        for n in range(20):
            projects.set_member(session, "t", "lab", f"u{n}", at_ms=T0)
    clock = [T0]
    enforcer = Enforcer(
        config,
        ledger,
        HubClient("http://127.0.0.1:9/hub/api", "x"),
        ServiceMetrics(ledger, config, lambda: clock[0]),
        lambda: clock[0],
    )
    with ledger.read() as session:  # before any read: the configured 4
        assert capacity.capacity_of(session, config, "h800", T0) == (4, "gpu_capacity")
    asyncio.run(enforcer.read_node_capacity())
    with ledger.read() as session:
        assert capacity.capacity_of(session, config, "h800", T0) == (16, "cluster")
    # 16 two-GPU servers would need 32: eight are admitted, the ninth waits.
    admitted = 0
    for n in range(9):
        try:
            with ledger.write() as session:
                admission.admit(
                    session,
                    config,
                    username=f"u{n}",
                    project_slug="lab",
                    profile_slug="h800-2",
                    server_name="",
                    now_ms=T0 + n,
                )
            admitted += 1
        except Refused as refused:
            assert refused.reason == "gpus_busy"
    assert admitted == 8
    # Three refresh intervals without a read: the configured number counts again.
    with ledger.read() as session:
        later = T0 + 3 * 60_000 + 1
        assert capacity.capacity_of(session, config, "h800", later) == (4, "gpu_capacity")
