"""Ledger benchmarks: the metering tick and admission, on SQLite and PostgreSQL.

The database is seeded the way a busy centre's looks after months: ``users`` members spread
over projects, ``history`` charge lines on stopped sessions, then ``running`` sessions that
the tick charges. Each figure is the median (and p99 where it is a latency) of repeated runs;
the tick is also measured on an empty history so the ratio shows whether it stays flat.
"""

from __future__ import annotations

import gc
import random
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.orm import Session

from subsidyhub.errors import SubsidyError
from subsidyhub.ledger import admission
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.metering import charge_until
from subsidyhub.ledger.migrate import upgrade
from subsidyhub.ledger.models import Allocation, Charge, Hold, Member, Project, SpawnSession
from subsidyhub.ledger.prices import current_version
from subsidyhub.settings import Settings

HOUR = 3_600_000
MEMBERS_PER_PROJECT = 10


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Seeded:
    db: Database
    now_ms: int
    usernames: list[str]
    project_slugs: list[str]


def seed(db: Database, settings: Settings, *, users: int, history: int, now_ms: int) -> Seeded:
    """Projects, members, allocations and ``history`` charge lines, written in bulk."""
    upgrade(db, settings)
    projects_count = max(1, users // MEMBERS_PER_PROJECT)
    with db.write() as session:
        session.execute(
            insert(Project),
            [
                {
                    "slug": f"p{i:05d}",
                    "name": f"Project {i}",
                    "kind": "research",
                    "status": "active",
                    "subsidy_bp": 7000,
                    "overdraft_micro": 0,
                    "created_ms": now_ms - 90 * 24 * HOUR,
                }
                for i in range(projects_count)
            ],
        )
        ids = dict(session.execute(select(Project.slug, Project.id)).all())
        session.execute(
            insert(Allocation),
            [
                {
                    "project_id": pid,
                    "amount_micro": 10_000_000 * 1_000_000,
                    "valid_from_ms": now_ms - 90 * 24 * HOUR,
                    "valid_until_ms": None,
                    "note": "bench",
                    "created_by": "bench",
                    "created_ms": now_ms - 90 * 24 * HOUR,
                    "drawn_micro": 0,
                }
                for pid in ids.values()
            ],
        )
        usernames = [f"user{i:05d}" for i in range(users)]
        session.execute(
            insert(Member),
            [
                {
                    "project_id": ids[f"p{i // MEMBERS_PER_PROJECT:05d}"],
                    "username": name,
                    "role": "member",
                    "created_ms": now_ms - 90 * 24 * HOUR,
                }
                for i, name in enumerate(usernames)
            ],
        )
    if history:
        _seed_history(db, ids, usernames, history, now_ms)
    return Seeded(db, now_ms, usernames, sorted(ids))


def _seed_history(
    db: Database, ids: dict[str, int], usernames: list[str], lines: int, now_ms: int
) -> None:
    """Stopped sessions of 100 one-minute lines each, spread over the last 60 days."""
    rng = random.Random(7)
    per_session = 100
    sessions = max(1, lines // per_session)
    with db.write() as session:
        version = current_version(session, now_ms).id
        start_id = (session.scalar(select(func.max(SpawnSession.id))) or 0) + 1
        rows = []
        for n in range(sessions):
            user_index = rng.randrange(len(usernames))
            started = now_ms - rng.randrange(2, 60 * 24) * HOUR
            rows.append(
                {
                    "id": start_id + n,
                    "project_id": ids[f"p{user_index // MEMBERS_PER_PROJECT:05d}"],
                    "username": usernames[user_index],
                    "server_name": "",
                    "profile_slug": "cpu-small",
                    "cpu_millicores": 2000,
                    "memory_mib": 4096,
                    "gpu_type": None,
                    "gpu_count": 0,
                    "price_version_id": version,
                    "list_rate_micro": 1_400_000,
                    "subsidy_bp": 7000,
                    "started_ms": started,
                    "stopped_ms": started + per_session * 60_000,
                    "stop_reason": "user",
                    "charged_until_ms": started + per_session * 60_000,
                    "charged_list_micro": 0,
                    "charged_subsidy_micro": 0,
                }
            )
        session.execute(insert(SpawnSession), rows)
        _sync_sequence(session, db)
        charges = (
            {
                "session_id": row["id"],
                "project_id": row["project_id"],
                "kind": "usage",
                "interval_start_ms": row["started_ms"] + k * 60_000,
                "interval_end_ms": row["started_ms"] + (k + 1) * 60_000,
                "list_micro": 23_333,
                "subsidy_micro": 16_333,
                "copay_micro": 7_000,
                "created_ms": row["started_ms"] + (k + 1) * 60_000,
            }
            for row in rows
            for k in range(per_session)
        )
        if db.is_sqlite:
            batch: list[dict[str, object]] = []
            for charge in charges:
                batch.append(charge)
                if len(batch) == 50_000:
                    session.execute(insert(Charge), batch)
                    batch = []
            if batch:
                session.execute(insert(Charge), batch)
        else:
            raw = session.connection().connection.dbapi_connection
            columns = "session_id, project_id, kind, interval_start_ms, interval_end_ms, list_micro, subsidy_micro, copay_micro, created_ms"
            with (
                raw.cursor() as cursor,
                cursor.copy(f"COPY charges ({columns}) FROM STDIN") as copy,
            ):
                for charge in charges:
                    copy.write_row(list(charge.values()))


def _sync_sequence(session: Session, db: Database) -> None:
    """Rows were written with explicit ids; move PostgreSQL's sequence past them."""
    if not db.is_sqlite:
        session.execute(text("SELECT setval('sessions_id_seq', (SELECT max(id) FROM sessions))"))


def start_running(seeded: Seeded, count: int) -> None:
    """``count`` running CPU sessions with holds, one per user, as admissions would leave them."""
    db, now = seeded.db, seeded.now_ms
    with db.write() as session:
        session.execute(delete(Hold))
        session.execute(
            update(SpawnSession)
            .where(SpawnSession.stopped_ms.is_(None))
            .values(stopped_ms=now, stop_reason="bench")
        )
        ids = dict(session.execute(select(Project.slug, Project.id)).all())
        version = current_version(session, now).id
        first = (session.scalar(select(func.max(SpawnSession.id))) or 0) + 1
        rows = [
            {
                "id": first + i,
                "project_id": ids[f"p{i // MEMBERS_PER_PROJECT:05d}"],
                "username": seeded.usernames[i],
                "server_name": "bench",
                "profile_slug": "cpu-small",
                "cpu_millicores": 2000,
                "memory_mib": 4096,
                "gpu_type": None,
                "gpu_count": 0,
                "price_version_id": version,
                "list_rate_micro": 1_400_000,
                "subsidy_bp": 7000,
                "started_ms": now,
                "charged_until_ms": now,
                "charged_list_micro": 0,
                "charged_subsidy_micro": 0,
            }
            for i in range(count)
        ]
        if not rows:
            return
        session.execute(insert(SpawnSession), rows)
        _sync_sequence(session, db)
        session.execute(
            insert(Hold),
            [
                {
                    "session_id": r["id"],
                    "project_id": r["project_id"],
                    "amount_micro": 245_000,
                    "created_ms": now,
                }
                for r in rows
            ],
        )
    if not db.is_sqlite:
        # A live database has planner statistics (autovacuum); a bulk-loaded one has none yet.
        with db.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
            connection.commit()


def measure_tick(seeded: Seeded, running: int, repeats: int) -> float:
    """Median milliseconds of one metering tick (60 s of usage) over ``running`` sessions."""
    start_running(seeded, running)
    gc.collect()
    gc.freeze()  # as the service does after start (see subsidyhub.service.run)
    clock = seeded.now_ms
    timings = []
    for _ in range(repeats):
        clock += 60_000
        began = time.perf_counter()
        charged = charge_until(seeded.db, clock)
        timings.append((time.perf_counter() - began) * 1000)
        assert charged == running, f"tick charged {charged} of {running} sessions"
    seeded.now_ms = clock
    return statistics.median(timings)


def _admit_one(seeded: Seeded, settings: Settings, user_index: int, server: str) -> None:
    with seeded.db.write() as session:
        admission.admit(
            session,
            settings,
            username=seeded.usernames[user_index],
            project_slug=f"p{user_index // MEMBERS_PER_PROJECT:05d}",
            profile_slug="cpu-small",
            server_name=server,
            now_ms=seeded.now_ms,
        )


def measure_admission_burst(
    seeded: Seeded, settings: Settings, count: int = 100, window_s: float = 1.0
) -> dict[str, float]:
    """Open loop: ``count`` admissions arrive evenly within ``window_s``; latency from arrival."""
    start_running(seeded, 0)
    for n in range(20):  # warm the connection pool and statement caches, as a running service is
        _admit_one(seeded, settings, count + n, "warmup")
    latencies: list[float] = []
    lock = threading.Lock()
    began = time.perf_counter() + 0.05

    def arrive(n: int) -> None:
        due = began + n * window_s / count
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        _admit_one(seeded, settings, n, f"burst{n}")
        with lock:
            latencies.append((time.perf_counter() - due) * 1000)

    # Enough workers that an arrival never waits for a free thread (service time ≪ spacing × 8).
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(arrive, range(count)))
    return {"p50": statistics.median(latencies), "p99": percentile(latencies, 0.99)}


def measure_admission_throughput(
    seeded: Seeded, settings: Settings, seconds: float = 3.0, workers: int = 4
) -> float:
    """Closed loop: ``workers`` admit back to back for ``seconds``; admissions per second."""
    start_running(seeded, 0)
    stop_at = time.perf_counter() + seconds
    counts = [0] * workers
    errors: list[str] = []

    def work(worker: int) -> None:
        n = worker
        while time.perf_counter() < stop_at:
            try:
                _admit_one(seeded, settings, n % len(seeded.usernames), f"loop{n}")
            except SubsidyError as error:
                errors.append(error.message)
                return
            counts[worker] += 1
            n += workers

    began = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(work, range(workers)))
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"admission refused during the throughput run: {errors[0]}")
    return sum(counts) / elapsed


def timed(label: str, action: Callable[[], object]) -> object:
    began = time.perf_counter()
    result = action()
    print(f"  {label}: {time.perf_counter() - began:.1f} s", flush=True)
    return result
