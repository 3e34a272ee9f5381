"""Idle GPUs in the ledger (issue 17), on SQLite and PostgreSQL: samples, idle time, the
warning, Keep it and the stop order.

Readings are given as the service's sampler would return them; where they come from (NVML,
Prometheus, dcgm-exporter) is tested in ``tests/service/test_gpu_samplers.py``.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from subsidyhub.errors import Conflict, NotFound
from subsidyhub.ledger import admission, idle, projects
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.me import read_page
from subsidyhub.ledger.models import AuditEntry, GpuSample, IdleGpuDay, SpawnSession
from subsidyhub.settings import Settings, parse_settings
from subsidyhub.timeutil import DAY_MS
from tests.conftest import TEST_CONFIG

from .helpers import T0, Reading, make_project

MINUTE = 60_000
SAMPLE = 30_000


@pytest.fixture
def settings() -> Settings:
    return parse_settings(
        TEST_CONFIG
        | {
            "idle_gpu": {
                "sample_seconds": 30,
                "threshold_percent": 5,
                "stop_after_minutes": 30,
                "warn_before_minutes": 10,
            }
        },
        "test-config",
    )


@pytest.fixture
def centre(ledger_db: Database, settings: Settings) -> Database:
    make_project(ledger_db, settings, "lab", members=("alice", "bob"))
    return ledger_db


def admit(db: Database, settings: Settings, user: str = "alice", *, at: int = T0, **where) -> int:
    with db.write() as session:
        return admission.admit(
            session,
            settings,
            username=user,
            project_slug="lab",
            profile_slug="gpu-1",
            server_name="",
            now_ms=at,
            **where,
        ).session_id


def sample(db: Database, settings: Settings, at: int, **readings: int) -> dict[str, int]:
    """One round: ``alice=3`` is alice's running server at 3 % utilisation."""
    with db.write() as session:
        ids = {
            row.username: row.id
            for row in session.scalars(
                select(SpawnSession).where(SpawnSession.stopped_ms.is_(None))
            )
        }
        return idle.record(
            session, settings, {ids[user]: Reading(pct) for user, pct in readings.items()}, at
        )


def due(db: Database, settings: Settings, at: int) -> list[tuple[str, str, int]]:
    with db.read() as session:
        return [(o.username, o.reason, o.due_ms) for o in idle.due(session, settings, at)]


def session_row(db: Database, session_id: int) -> SpawnSession:
    with db.read() as session:
        row = session.get(SpawnSession, session_id)
        assert row is not None
        session.expunge(row)
        return row


def test_admission_records_where_the_gpus_are_read_and_cpu_servers_are_not_targets(
    centre, settings
):
    gpu = admit(centre, settings, gpu_devices=["2", "GPU-8f0c"], pod_name="jupyter-alice")
    with centre.write() as session:
        admission.admit(
            session,
            settings,
            username="bob",
            project_slug="lab",
            profile_slug="cpu-small",
            server_name="",
            now_ms=T0,
            gpu_devices=["3"],
        )
    with centre.read() as session:
        targets = idle.targets(session)
    assert targets == [idle.Target(gpu, ("2", "GPU-8f0c"), "jupyter-alice")]


def test_idle_time_is_the_wall_time_of_idle_samples_and_a_busy_one_ends_the_stretch(
    centre, settings
):
    session_id = admit(centre, settings)
    assert sample(centre, settings, T0 + SAMPLE, alice=2) == {"h800": 1}
    sample(centre, settings, T0 + 2 * SAMPLE, alice=4)  # below 5 %: idle
    row = session_row(centre, session_id)
    assert (row.idle_gpu_ms, row.idle_since_ms) == (2 * SAMPLE, T0)
    assert sample(centre, settings, T0 + 3 * SAMPLE, alice=5) == {}  # at the threshold: busy
    row = session_row(centre, session_id)
    assert (row.idle_gpu_ms, row.idle_since_ms) == (2 * SAMPLE, None)
    # A gap while the source was away counts at most two sample periods.
    sample(centre, settings, T0 + 3 * SAMPLE + 10 * MINUTE, alice=0)
    row = session_row(centre, session_id)
    assert row.idle_gpu_ms == 4 * SAMPLE
    assert row.idle_since_ms == T0 + 3 * SAMPLE + 10 * MINUTE - 2 * SAMPLE
    with centre.read() as session:
        assert session.scalar(select(func.sum(GpuSample.idle_ms))) == row.idle_gpu_ms


def test_idle_time_is_split_by_utc_day_and_old_samples_leave_the_plot(centre, settings):
    start = T0 + DAY_MS - 45_000  # 45 s before midnight
    session_id = admit(centre, settings, at=start)
    sample(centre, settings, start + SAMPLE, alice=0)
    sample(centre, settings, start + 2 * SAMPLE, alice=0)  # crosses midnight: 15 s + 15 s
    with centre.read() as session:
        days = session.execute(
            select(IdleGpuDay.day_ms, IdleGpuDay.idle_ms).order_by(IdleGpuDay.day_ms)
        ).all()
    assert [tuple(d) for d in days] == [(T0, 45_000), (T0 + DAY_MS, 15_000)]
    assert session_row(centre, session_id).idle_gpu_ms == 60_000
    sample(centre, settings, start + 2 * SAMPLE + 61 * MINUTE, alice=90)
    with centre.read() as session:
        kept = session.scalars(select(GpuSample.at_ms)).all()
    assert kept == [start + 2 * SAMPLE + 61 * MINUTE]  # the window is 60 minutes


def test_an_idle_server_is_warned_then_due_at_its_time_on_a_fresh_sample(centre, settings):
    admit(centre, settings)
    at = T0
    while at < T0 + 30 * MINUTE:
        at += SAMPLE
        sample(centre, settings, at, alice=1)
        page = me(centre, settings, at)
        warned = [w for p in page["projects"] for w in p["warnings"] if w["code"] == "idle_gpu"]
        assert bool(warned) == (at >= T0 + 20 * MINUTE), at
        expected = [("alice", "idle_gpu", T0 + 30 * MINUTE)] if at >= T0 + 30 * MINUTE else []
        assert due(centre, settings, at) == expected
    assert "It stops at" in warned[0]["message"] and warned[0]["can_keep"] is True
    assert page["sessions"][0]["gpu_usage"]["stops_at"] == warned[0]["at"]
    # Without a fresh sample (the source went away) nobody is stopped.
    assert due(centre, settings, at + 2 * SAMPLE + 1) == []


def test_keep_it_restarts_the_clock_once_and_is_audited(centre, settings):
    session_id = admit(centre, settings)
    for n in range(1, 45):
        sample(centre, settings, T0 + n * SAMPLE, alice=0)
    now = T0 + 44 * SAMPLE
    with centre.write() as session:
        kept = idle.keep(session, settings, "alice", "", now, "alice")
    assert kept.stops_at_ms == now + 30 * MINUTE
    assert due(centre, settings, now + SAMPLE) == []
    with centre.write() as session, pytest.raises(Conflict, match="kept once already"):
        idle.keep(session, settings, "alice", "", now + SAMPLE, "alice")
    sample(centre, settings, now + 21 * MINUTE, alice=0)
    warned = [
        w
        for p in me(centre, settings, now + 21 * MINUTE)["projects"]
        for w in p["warnings"]
        if w["code"] == "idle_gpu"
    ]
    assert warned[0]["can_keep"] is False and "kept it once already" in warned[0]["message"]
    with centre.read() as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "idle_gpu_kept")
        ).one()
    assert entry.target == f"session:{session_id}" and entry.actor == "alice"


def test_keep_it_is_refused_when_busy_or_without_a_gpu_server(centre, settings):
    admit(centre, settings)
    sample(centre, settings, T0 + SAMPLE, alice=80)
    with centre.write() as session, pytest.raises(Conflict, match="busy"):
        idle.keep(session, settings, "alice", "", T0 + SAMPLE, "alice")
    with centre.write() as session, pytest.raises(NotFound, match="no running GPU"):
        idle.keep(session, settings, "bob", "", T0 + SAMPLE, "bob")


@pytest.mark.parametrize(
    ("limit", "stops_after"),
    [(None, 30 * MINUTE), ("2", 2 * 60 * MINUTE), ("0", None)],
    ids=["centre-default", "project-2h", "project-never"],
)
def test_a_projects_idle_limit_overrides_the_centres(centre, settings, limit, stops_after):
    with centre.write() as session:
        projects.set_quota(session, settings, "test", "lab", {"idle_gpu_hours": limit})
    admit(centre, settings)
    sample(centre, settings, T0 + SAMPLE, alice=0)
    with centre.read() as session:
        (server,) = idle.idle_servers(session, settings, T0 + SAMPLE)
    assert server.stops_at_ms == (None if stops_after is None else T0 + stops_after)


def me(db: Database, settings: Settings, at: int) -> dict:
    with db.read_engine.begin() as connection:
        return read_page(connection, settings, "alice", False, at)
