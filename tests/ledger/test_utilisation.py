"""GPU utilisation per type and month: GPU-hours charged over capacity, equal to the statements."""

from __future__ import annotations

import pytest

from subsidyhub.ledger import admission
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.metering import charge_until
from subsidyhub.ledger.statements import statement
from subsidyhub.ledger.utilisation import Capacity, gpu_capacity, utilisation
from subsidyhub.settings import Settings, parse_settings
from subsidyhub.timeutil import month_bounds

from ..conftest import TEST_CONFIG
from .helpers import HOUR, T0, make_project

DECEMBER_HOURS = 31 * 24
NEW_YEAR = month_bounds("2027-01")[0]


def with_keys(**keys: object) -> Settings:
    return parse_settings(TEST_CONFIG | keys, "test-config")


def run(db: Database, settings: Settings, user: str, profile: str, start: int, end: int) -> None:
    """A session from ``start`` to ``end``, charged by ticks on the way (one inside it)."""
    with db.write() as session:
        admitted = admission.admit(
            session,
            settings,
            username=user,
            project_slug="demo",
            profile_slug=profile,
            server_name=profile,
            now_ms=start,
        )
    charge_until(db, (start + end) // 2)
    with db.write() as session:
        admission.stop(session, admitted.session_id, now_ms=end, reason="user")


@pytest.fixture
def usage(ledger_db: Database, settings: Settings) -> Database:
    """December usage with sessions straddling both month bounds, and a CPU-only one.

    gpu-1 (1× h800): Nov 30 23:30 → Dec 1 00:30, half an hour on each side.
    gpu-2 (2× a100): Dec 31 23:00 → Jan 1 01:00, 2 GPU-hours in each month.
    cpu-small: 3 hours in December.
    """
    make_project(ledger_db, settings, amount="5000", members=("alice", "bob"), at_ms=T0 - 48 * HOUR)
    run(ledger_db, settings, "alice", "gpu-1", T0 - HOUR // 2, T0 + HOUR // 2)
    run(ledger_db, settings, "bob", "gpu-2", NEW_YEAR - HOUR, NEW_YEAR + HOUR)
    run(ledger_db, settings, "alice", "cpu-small", T0 + 5 * HOUR, T0 + 8 * HOUR)
    return ledger_db


def test_december_per_gpu_type_with_capacity_from_config(usage: Database) -> None:
    settings = with_keys(gpu_capacity={"h800": 4, "a100": 2})
    with usage.read() as session:
        report = utilisation(session, settings, "2026-12").as_dict()
    assert report["hours_in_month"] == f"{DECEMBER_HOURS}.0000"
    rows = {row["gpu_type"]: row for row in report["rows"]}
    assert list(rows) == ["a100", "h800", "cpu-only"]
    assert rows["a100"] == {
        "gpu_type": "a100",
        "gpus": 2,
        "capacity_source": "gpu_capacity",
        "capacity_gpu_hours": f"{2 * DECEMBER_HOURS}.0000",
        "used_gpu_hours": "2.0000",
        "utilisation_percent": "0.13",  # 2 / 1488
        "reserved_gpu_hours": "0.0000",
        "reserved_unused_gpu_hours": "0.0000",
        "sessions": 1,
        # 1 h of gpu-2 (2 × 24 + 16 × 0.5 + 128 × 0.1 = 68.80/h), 70% subsidy
        "list": "68.80",
        "subsidy": "48.16",
        # No GPU samples were recorded: no idle time (tests/ledger/test_waste.py has some).
        "idle_gpu_hours": "0.0000",
        "idle_percent": "0.00",
        "idle_list": "0.00",
        "idle_subsidy": "0.00",
    }
    assert rows["h800"]["used_gpu_hours"] == "0.5000"
    assert rows["h800"]["capacity_gpu_hours"] == f"{4 * DECEMBER_HOURS}.0000"
    assert rows["cpu-only"]["used_gpu_hours"] == "0.0000"
    assert rows["cpu-only"]["gpus"] is None
    assert report["totals"]["gpus"] == 6
    assert report["totals"]["used_gpu_hours"] == "2.5000"
    assert report["totals"]["utilisation_percent"] == "0.06"  # 2.5 / 4464
    assert report["unknown_capacity"] == []
    assert report["projects"] == [
        {
            "project": "demo",
            "used_gpu_hours": "2.5000",
            "idle_gpu_hours": "0.0000",
            "idle_percent": "0.00",
            "idle_list": "0.00",
            "idle_subsidy": "0.00",
        }
    ]


@pytest.mark.parametrize("month", ["2026-11", "2026-12", "2027-01"])
def test_totals_equal_the_statements(usage: Database, settings: Settings, month: str) -> None:
    with usage.read() as session:
        report = utilisation(session, settings, month)
        claimed = statement(session, month, settings.currency)
    assert report.total_used_ms == sum(line.gpu_ms for line in claimed.lines)
    assert report.total_used_ms > 0
    totals, expected = report.as_dict()["totals"], claimed.as_dict()["totals"]
    assert (totals["used_gpu_hours"], totals["list"], totals["subsidy"]) == (
        expected["gpu_hours"],
        expected["list"],
        expected["subsidy"],
    )


def test_unknown_capacity_is_reported_not_guessed(usage: Database, settings: Settings) -> None:
    with usage.read() as session:
        report = utilisation(session, settings, "2027-01")
    assert report.unknown_types == ["a100", "h800"]
    document = report.as_dict()
    assert document["totals"]["capacity_gpu_hours"] is None
    assert document["totals"]["utilisation_percent"] is None
    a100 = next(row for row in document["rows"] if row["gpu_type"] == "a100")
    assert (a100["used_gpu_hours"], a100["capacity_source"], a100["gpus"]) == (
        "2.0000",
        "unknown",
        None,
    )


def test_a_month_without_usage_lists_offered_types_at_zero(ledger_db: Database) -> None:
    settings = with_keys(gpu_capacity={"h800": 8})
    with ledger_db.read() as session:
        document = utilisation(session, settings, "2026-02").as_dict()
    assert [
        (r["gpu_type"], r["used_gpu_hours"], r["utilisation_percent"]) for r in document["rows"]
    ] == [
        ("a100", "0.0000", None),
        ("h800", "0.0000", "0.00"),
    ]
    assert document["rows"][1]["capacity_gpu_hours"] == "5376.0000"  # 8 GPUs × 28 days × 24 h


ONE_TYPE = [
    {
        "slug": "gpu-1",
        "display_name": "1× H800",
        "cpu": 8,
        "memory_gib": 64,
        "gpus": {"type": "h800"},
    }
]


@pytest.mark.parametrize(
    ("keys", "gpu_type", "expected"),
    [
        ({"gpu_capacity": {"h800": 16}}, "h800", Capacity(16, "gpu_capacity")),
        ({"gpu_capacity": {"h800": 0}}, "h800", Capacity(0, "gpu_capacity")),
        (
            {"profiles": ONE_TYPE, "local": {"gpus": ["0", "1", "2"]}},
            "h800",
            Capacity(3, "local.gpus"),
        ),
        (
            {"profiles": ONE_TYPE, "backend": "docker", "docker": {"gpus": ["0", "1"]}},
            "h800",
            Capacity(2, "docker.gpus"),
        ),
        # The pool of another backend does not count.
        (
            {"profiles": ONE_TYPE, "backend": "docker", "local": {"gpus": ["0"]}},
            "h800",
            Capacity(None, "unknown"),
        ),
        # GPU ids say nothing about types when profiles use two.
        ({"local": {"gpus": ["0", "1"]}}, "h800", Capacity(None, "unknown")),
        # Unset pool: NVML would decide at run time, on the hub's machine, not here.
        ({"profiles": ONE_TYPE}, "h800", Capacity(None, "unknown")),
        (
            {"profiles": ONE_TYPE, "gpu_capacity": {"h800": 5}, "local": {"gpus": ["0"]}},
            "h800",
            Capacity(5, "gpu_capacity"),
        ),
    ],
)
def test_capacity_sources(keys: dict[str, object], gpu_type: str, expected: Capacity) -> None:
    assert gpu_capacity(with_keys(**keys), gpu_type) == expected
