"""The utilisation report over HTTP (admins), and idle GPUs on it, the statement and capacity.

The ledger's arithmetic is tested in ``tests/ledger/test_waste.py``; here, that the answers
carry it in their declared shapes, and who may read them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from subsidyhub.ledger import idle

from .helpers import HOUR, T0, Service, seed

pytestmark = pytest.mark.hub

REPORT = "api/v1/reports/utilisation"
SAMPLE = 30_000  # the default idle_gpu.sample_seconds


@dataclass(frozen=True)
class Reading:
    utilisation_pct: int
    memory_mib: int = 1024


def idle_gpu_server(service: Service) -> int:
    """alice's 1× h800 server in alpha from T0 + 1 h, idle for 3 samples, charged to then."""
    service.clock.now_ms = T0 + HOUR
    admitted = service.admit("alice", "gpu-1", "alpha")
    session_id = int(admitted["session_id"])
    for n in range(1, 4):
        with service.db.write() as session:
            idle.record(session, service.settings, {session_id: Reading(0)}, T0 + HOUR + n * SAMPLE)
    service.clock.now_ms = T0 + HOUR + 3 * SAMPLE
    return session_id


def test_admins_read_idle_gpus_per_type_and_project(service: Service) -> None:
    seed(service)
    idle_gpu_server(service)
    report = service.ok("GET", f"{REPORT}?month=2026-12", who="centre-admin")
    assert report["month"] == "2026-12"
    h800 = next(row for row in report["rows"] if row["gpu_type"] == "h800")
    # 90 s of one idle H800 at 36.00/h: 0.90 list, 0.63 subsidy (70 %).
    assert (h800["idle_gpu_hours"], h800["idle_list"], h800["idle_subsidy"]) == (
        "0.0250",
        "0.90",
        "0.63",
    )
    assert report["totals"]["idle_subsidy"] == "0.63"
    assert [(p["project"], p["idle_gpu_hours"]) for p in report["projects"]] == [
        ("alpha", "0.0250")
    ]
    # The current month by default; users and managers may not read the centre's report.
    assert service.ok("GET", REPORT, who="centre-admin")["month"] == "2026-12"
    for who in ("alice", "bob"):
        assert service.call("GET", REPORT, who=who).status_code == 403
    assert service.call("GET", f"{REPORT}?month=2026-13", who="centre-admin").status_code == 400


def test_statement_and_capacity_show_idle_gpus(service: Service) -> None:
    seed(service)
    idle_gpu_server(service)
    statement = service.ok("GET", "api/v1/projects/alpha/statement", who="bob")
    assert statement["totals"]["idle_gpu_hours"] == "0.0250"
    [line] = statement["lines"]
    assert (line["username"], line["idle_subsidy"], line["idle_copay"]) == ("alice", "0.63", "0.27")
    page = service.call("GET", "api/v1/projects/alpha/statement?format=html", who="bob").text
    assert "Of these charges: idle GPUs" in page
    capacity = service.ok("GET", "api/v1/capacity", who="alice")
    h800 = next(t for t in capacity["gpu_types"] if t["gpu_type"] == "h800")
    assert (h800["in_use"], h800["gpus_idle"]) == (1, 1)
    # A busy sample: the GPU is no longer idle now.
    session_id = statement_session(service)
    with service.db.write() as session:
        idle.record(session, service.settings, {session_id: Reading(90)}, T0 + HOUR + 4 * SAMPLE)
    capacity = service.ok("GET", "api/v1/capacity", who="alice")
    h800 = next(t for t in capacity["gpu_types"] if t["gpu_type"] == "h800")
    assert (h800["in_use"], h800["gpus_idle"]) == (1, 0)


def statement_session(service: Service) -> int:
    [session] = service.ok("GET", "api/v1/sessions?project=alpha", who="centre-admin")["sessions"]
    return int(session["id"])
