"""Admission with a long GPU queue (issue 16): p99 with 1,000 waiting within 2× of none.

Two ledgers alike but for the queue, side by side on the same database kind: a project of
1,400 members and 400 H800s (``gpu_capacity``). In the baseline nobody waits and 300 members
start a GPU server one after another. In the queued one, 1,000 members wait for the type and
300 hold offers; those 300 start their servers (each admission reads the type's capacity,
offers and queue under its lock, then claims its offer). Latency is each admission's wall
time; the two ledgers' admissions alternate, one each in turn, so both see the same load on
the machine. Also timed: one
:func:`~subsidyhub.ledger.queue.make_offers` round and the queue's places with wait estimates
(what ``queue show`` and the spawn page read) with 1,000 waiting.

``python -m bench.queue_bench [--only sqlite|postgres] [--output FILE]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from bench.ledger_bench import percentile
from bench.run import BENCH_CONFIG, machine
from subsidyhub.ledger import admission, projects, queue
from subsidyhub.ledger.db import Database, now_ms
from subsidyhub.ledger.migrate import upgrade
from subsidyhub.ledger.models import Project, QueueEntry
from subsidyhub.money import parse_amount
from subsidyhub.settings import Settings, parse_settings
from subsidyhub.testing.postgres import ThrowawayPostgres, create_database

RESULTS = Path(__file__).with_name("results")
WAITING = 1000
MEASURED = 300
GPUS = 400


def _seed(db: Database, settings: Settings, *, waiting: int, offered: int, at: int) -> None:
    upgrade(db, settings)
    with db.write() as session:
        projects.create_project(session, settings, "bench", slug="lab", name="Lab", at_ms=at)
        projects.add_allocation(
            session, settings, "bench", "lab", amount_micro=parse_amount("10000000"), at_ms=at
        )
        for n in range(MEASURED + WAITING + 100):
            projects.set_member(session, "bench", "lab", f"u{n:05d}", at_ms=at)
        lab = session.scalar(select(Project.id).where(Project.slug == "lab"))
        rows: list[dict[str, Any]] = []
        for n in range(offered):
            rows.append(_entry(lab, f"u{n:05d}", at, "offered", at + 600_000))
        for n in range(waiting):
            rows.append(_entry(lab, f"u{MEASURED + n:05d}", at + n, "waiting", None))
        if rows:
            session.execute(insert(QueueEntry), rows)


def _entry(project_id: int, user: str, at: int, state: str, expires: int | None) -> dict[str, Any]:
    return {
        "username": user,
        "server_name": "",
        "project_id": project_id,
        "profile_slug": "gpu-1",
        "gpu_type": "h800",
        "gpu_count": 1,
        "priority": 0,
        "joined_ms": at,
        "state": state,
        "offered_ms": at if state == "offered" else None,
        "offer_expires_ms": expires,
    }


def _admit(db: Database, settings: Settings, user: str, at: int) -> float:
    began = time.perf_counter()
    with db.write() as session:
        admission.admit(
            session,
            settings,
            username=user,
            project_slug="lab",
            profile_slug="gpu-1",
            server_name="",
            now_ms=at,
        )
    return (time.perf_counter() - began) * 1000


def figures_for(kind: str, urls: tuple[str, str], settings: Settings) -> dict[str, float]:
    at = now_ms()
    base_url, queued_url = urls
    base, queued = Database(base_url), Database(queued_url)
    _seed(base, settings, waiting=0, offered=0, at=at)
    _seed(queued, settings, waiting=WAITING, offered=MEASURED, at=at)
    baseline: list[float] = []
    with_queue: list[float] = []
    for n in range(MEASURED):
        baseline.append(_admit(base, settings, f"u{n:05d}", at + 1000 + n))
        with_queue.append(_admit(queued, settings, f"u{n:05d}", at + 1000 + n))
    began = time.perf_counter()
    with queued.read() as session:
        places = queue.places(session, settings, "h800", at + 5000)
    places_ms = (time.perf_counter() - began) * 1000
    assert len([p for p in places if p.position]) == WAITING
    began = time.perf_counter()
    with queued.write() as session:
        queue.make_offers(session, settings, "h800", at + 6000)
    offers_ms = (time.perf_counter() - began) * 1000
    base.dispose()
    queued.dispose()
    result = {
        f"admission_p50_ms_{kind}_no_queue": statistics.median(baseline),
        f"admission_p99_ms_{kind}_no_queue": percentile(baseline, 0.99),
        f"admission_p50_ms_{kind}_queue_1000": statistics.median(with_queue),
        f"admission_p99_ms_{kind}_queue_1000": percentile(with_queue, 0.99),
        f"queue_places_ms_{kind}_1000": places_ms,
        f"make_offers_ms_{kind}_1000": offers_ms,
    }
    result[f"admission_p99_ratio_{kind}"] = (
        result[f"admission_p99_ms_{kind}_queue_1000"] / result[f"admission_p99_ms_{kind}_no_queue"]
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="one database only")
    parser.add_argument("--output", type=Path, default=RESULTS / "queue.json")
    args = parser.parse_args(argv)
    settings = parse_settings(BENCH_CONFIG | {"gpu_capacity": {"h800": GPUS}}, "bench config")
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="subsidyhub-queue-bench-") as scratch:
        if args.only in (None, "sqlite"):
            urls = tuple(f"sqlite:///{Path(scratch) / name}.sqlite" for name in ("base", "queued"))
            figures |= figures_for("sqlite", (urls[0], urls[1]), settings)
        if args.only in (None, "postgres"):
            cluster = ThrowawayPostgres()
            try:
                admin = cluster.start()
                urls = (create_database(admin, "qbench_base"), create_database(admin, "qbench_q"))
                figures |= figures_for("postgres", urls, settings)
            finally:
                cluster.stop()
    report = {"machine": machine(), "figures": figures}
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    for name, value in figures.items():
        print(f"{name:45} {value:10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
