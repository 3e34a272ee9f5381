"""Admission on real databases: holds, caps, rates fixed at admission, and racing spawns.

The race tests start 20 admissions at once from 20 threads, each with its own database
connection, against SQLite (BEGIN IMMEDIATE) and PostgreSQL (row lock on the project).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from subsidyhub.errors import Refused
from subsidyhub.ledger import admission, prices, projects
from subsidyhub.ledger.accounts import load_account
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.metering import charge_until
from subsidyhub.ledger.models import Hold, SpawnSession
from subsidyhub.money import parse_amount
from subsidyhub.settings import Settings

from .helpers import HOUR, T0, make_project


def admit(
    db: Database,
    settings: Settings,
    user: str,
    profile: str,
    *,
    server: str = "",
    at: int = T0,
    project: str | None = "demo",
):
    with db.write() as session:
        return admission.admit(
            session,
            settings,
            username=user,
            project_slug=project,
            profile_slug=profile,
            server_name=server,
            now_ms=at,
        )


def race(
    db: Database, settings: Settings, attempts: list[tuple[str, str, str]]
) -> tuple[int, list[str]]:
    barrier = threading.Barrier(len(attempts))

    def attempt(args: tuple[str, str, str]) -> str:
        user, profile, server = args
        barrier.wait()
        try:
            admit(db, settings, user, profile, server=server)
            return "admitted"
        except Refused as refusal:
            return refusal.reason

    with ThreadPoolExecutor(len(attempts)) as pool:
        results = list(pool.map(attempt, attempts))
    return results.count("admitted"), results


def test_twenty_racing_gpu_spawns_against_a_two_gpu_cap_admit_exactly_two(ledger_db, settings):
    users = tuple(f"user{i}" for i in range(20))
    make_project(ledger_db, settings, members=users)
    with ledger_db.write() as session:
        projects.set_quota(session, settings, "test", "demo", dict(project_max_gpus=2))
    admitted, results = race(ledger_db, settings, [(u, "gpu-1", "") for u in users])
    assert admitted == 2
    assert set(results) == {"admitted", "project_gpu_cap"}
    with ledger_db.read() as session:
        running = session.scalar(
            select(func.sum(SpawnSession.gpu_count)).where(SpawnSession.stopped_ms.is_(None))
        )
    assert running == 2


def test_racing_spawns_never_hold_more_than_the_balance(ledger_db, settings):
    # gpu-1 holds 8.12 for 15 minutes at 70%; 30.00 covers three holds, not four.
    users = tuple(f"user{i}" for i in range(20))
    make_project(ledger_db, settings, amount="30", members=users)
    admitted, results = race(ledger_db, settings, [(u, "gpu-1", "") for u in users])
    assert admitted == 3
    assert results.count("insufficient_balance") == 17
    with ledger_db.read() as session:
        account = load_account(session, projects.get_project(session, "demo"), T0)
    assert account.available >= 0
    assert account.holds == 3 * 8_120_000


def test_member_cap_and_a_restarted_server_supersedes_its_stale_session(ledger_db, settings):
    make_project(ledger_db, settings)
    with ledger_db.write() as session:
        projects.set_member(
            session, "test", "demo", "alice", at_ms=T0, quota={"member_max_gpus": 1}
        )
    admit(ledger_db, settings, "alice", "gpu-1", server="a")
    with pytest.raises(Refused) as refused:
        admit(ledger_db, settings, "alice", "gpu-1", server="b")
    assert refused.value.reason == "member_gpu_cap"
    # The hub starts server "a" again: the session that missed its stop is closed first.
    again = admit(ledger_db, settings, "alice", "cpu-small", server="a")
    with ledger_db.read() as session:
        old = session.scalars(
            select(SpawnSession).where(SpawnSession.server_name == "a").order_by(SpawnSession.id)
        ).first()
        assert (old.stop_reason, old.stopped_ms) == ("superseded", T0)
        assert session.get(SpawnSession, again.session_id).stopped_ms is None


def test_refusal_writes_nothing_and_names_the_balance(ledger_db, settings):
    make_project(ledger_db, settings, amount="3.20")
    with pytest.raises(Refused) as refused:
        admit(ledger_db, settings, "alice", "gpu-1")
    assert refused.value.reason == "insufficient_balance"
    assert (
        "Project Demo has HK$3.20 of subsidy left; PyTorch · 1× H800 needs HK$8.12 for 15 "
        "minutes. Ask your project manager to top up, or pick CPU · 2 cores · 4 GiB."
        in refused.value.message
    )
    with ledger_db.read() as session:
        assert session.scalar(select(func.count()).select_from(SpawnSession)) == 0
        assert session.scalar(select(func.count()).select_from(Hold)) == 0


def test_single_project_user_may_omit_project_and_strangers_are_refused(ledger_db, settings):
    make_project(ledger_db, settings)
    assert admit(ledger_db, settings, "alice", "cpu-small", project=None).project == "demo"
    with pytest.raises(Refused) as refused:
        admit(ledger_db, settings, "mallory", "cpu-small", project=None)
    assert refused.value.reason == "not_member"


def test_rates_are_fixed_at_admission(ledger_db, settings):
    make_project(ledger_db, settings)
    first = admit(ledger_db, settings, "alice", "gpu-1", server="old")
    with ledger_db.write() as session:
        prices.set_prices(
            session, settings, "test", at_ms=T0 + 1000, gpu={"h800": parse_amount("72")}
        )
    second = admit(ledger_db, settings, "alice", "gpu-1", server="new", at=T0 + 2000)
    assert first.list_rate == 46_400_000
    assert second.list_rate == 46_400_000 + 36_000_000
    assert second.price_version > first.price_version
    charge_until(ledger_db, T0 + HOUR)
    with ledger_db.read() as session:
        old = session.get(SpawnSession, first.session_id)
        assert old.charged_list_micro == 46_400_000  # a full hour at the old price


def test_stop_releases_hold_and_is_idempotent(ledger_db, settings):
    make_project(ledger_db, settings)
    admitted = admit(ledger_db, settings, "alice", "gpu-1")
    with ledger_db.write() as session:
        first = admission.stop(session, admitted.session_id, now_ms=T0 + HOUR, reason="user")
    with ledger_db.write() as session:
        again = admission.stop(session, admitted.session_id, now_ms=T0 + 2 * HOUR, reason="user")
    assert not first.already and again.already
    assert first.list_micro == again.list_micro == 46_400_000
    with ledger_db.read() as session:
        account = load_account(session, projects.get_project(session, "demo"), T0 + 3 * HOUR)
    assert account.holds == 0
    assert account.balance == 500_000_000 - 32_480_000
    assert account.burn_rate_per_hour == 0


def test_max_session_hours_sets_the_stop_deadline(ledger_db, settings):
    make_project(ledger_db, settings)
    with ledger_db.write() as session:
        projects.set_quota(session, settings, "test", "demo", dict(max_session_hours="8"))
    admitted = admit(ledger_db, settings, "alice", "cpu-small")
    assert admitted.max_stop_ms == T0 + 8 * HOUR


def test_weekly_gpu_hours_count_past_sessions(ledger_db, settings):
    make_project(ledger_db, settings)
    with ledger_db.write() as session:
        projects.set_quota(session, settings, "test", "demo", dict(gpu_hours_per_week="2"))
    first = admit(ledger_db, settings, "alice", "gpu-1")
    with ledger_db.write() as session:
        admission.stop(session, first.session_id, now_ms=T0 + 2 * HOUR - 10 * 60_000, reason="user")
    with pytest.raises(Refused) as refused:
        admit(ledger_db, settings, "alice", "gpu-1", at=T0 + 2 * HOUR)
    assert refused.value.reason == "weekly_gpu_hours"
    # A week later the hours are free again.
    assert (
        admit(ledger_db, settings, "alice", "gpu-1", at=T0 + 8 * 24 * HOUR).max_stop_ms
        == T0 + 8 * 24 * HOUR + 2 * HOUR
    )
