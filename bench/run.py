"""``make bench``: run the benchmarks, write ``bench/results/latest.json`` and print a table.

Each database gets a fresh store: SQLite in a temporary directory, PostgreSQL as a throwaway
cluster (or ``SUBSIDYHUB_TEST_POSTGRES_URL``). On each, the ledger benchmarks
(:mod:`bench.ledger_bench`) seed it and measure the tick and admission; then ``GET me``
(:mod:`bench.me_bench`) is measured against the same seeded store through the real service
and a real hub (``--skip-me`` leaves it out). Last, :mod:`bench.hub_bench` compares spawn
throughput of the SubsidyHub stack with a plain hub and measures enforcement lateness
(``--skip-hub`` leaves it out). ``--quick`` shrinks sizes and runs for a smoke
run; the figures reported in ``bench/README.md`` come from the full run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import hub_bench, ledger_bench, me_bench
from subsidyhub.ledger.db import Database, now_ms
from subsidyhub.settings import Settings, parse_settings
from subsidyhub.testing.postgres import ThrowawayPostgres, create_database

RESULTS = Path(__file__).with_name("results")
BENCH_CONFIG = {
    "currency": "HKD",
    "prices": {"cpu_core": "0.50", "memory_gib": "0.10", "gpu": {"h800": "36.00"}},
    "profiles": [
        {"slug": "cpu-small", "display_name": "CPU", "cpu": 2, "memory_gib": 4},
        {
            "slug": "gpu-1",
            "display_name": "GPU",
            "cpu": 8,
            "memory_gib": 64,
            "gpus": {"type": "h800", "count": 1},
        },
    ],
}


def machine() -> dict[str, Any]:
    memory = ""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            memory = info.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                cpu,
            )
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory": memory,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def ledger_figures(
    kind: str, url: str, settings: Settings, *, users: int, history: int, repeats: int
) -> dict[str, float]:
    figures: dict[str, float] = {}
    seeded = ledger_bench.timed(
        f"{kind}: seed {users} users",
        lambda: ledger_bench.seed(Database(url), settings, users=users, history=0, now_ms=now_ms()),
    )
    assert isinstance(seeded, ledger_bench.Seeded)
    figures[f"tick_ms_1k_{kind}"] = ledger_bench.measure_tick(seeded, min(1000, users), repeats)
    figures[f"tick_ms_10k_{kind}_empty_history"] = ledger_bench.measure_tick(seeded, users, repeats)
    ledger_bench.timed(
        f"{kind}: seed {history} charge lines of history",
        lambda: ledger_bench._seed_history(
            seeded.db, _project_ids(seeded), seeded.usernames, history, seeded.now_ms
        ),
    )
    figures[f"tick_ms_10k_{kind}"] = ledger_bench.measure_tick(seeded, users, repeats)
    figures[f"tick_history_ratio_{kind}"] = (
        figures[f"tick_ms_10k_{kind}"] / figures[f"tick_ms_10k_{kind}_empty_history"]
    )
    burst = ledger_bench.measure_admission_burst(seeded, settings)
    figures[f"admission_p50_ms_{kind}"] = burst["p50"]
    figures[f"admission_p99_ms_{kind}"] = burst["p99"]
    figures[f"admissions_per_s_{kind}"] = ledger_bench.measure_admission_throughput(
        seeded, settings
    )
    seeded.db.dispose()
    return figures


def _project_ids(seeded: ledger_bench.Seeded) -> dict[str, int]:
    from sqlalchemy import select

    from subsidyhub.ledger.models import Project

    with seeded.db.read() as session:
        return dict(session.execute(select(Project.slug, Project.id)).all())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="one database only")
    parser.add_argument("--skip-me", action="store_true", help="leave out the GET me benchmark")
    parser.add_argument(
        "--skip-hub", action="store_true", help="leave out the hub spawn and enforcement benchmark"
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args(argv)
    users, history, repeats = (1000, 20_000, 3) if args.quick else (10_000, 1_000_000, 7)
    plan = me_bench.QUICK if args.quick else me_bench.FULL
    settings = parse_settings(BENCH_CONFIG, "bench config")
    figures: dict[str, float] = {}
    began = time.time()
    # Other work on the machine skews every figure; the 1-minute load says how much was running.
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="subsidyhub-bench-") as scratch:
        if args.only in (None, "sqlite"):
            url = f"sqlite:///{Path(scratch) / 'bench.sqlite'}"
            figures |= ledger_figures(
                "sqlite", url, settings, users=users, history=history, repeats=repeats
            )
            if not args.skip_me:
                figures |= me_bench.me_figures(
                    "sqlite", url, BENCH_CONFIG, plan=plan, scratch=Path(scratch)
                )
        if args.only in (None, "postgres"):
            cluster = None
            admin = os.environ.get("SUBSIDYHUB_TEST_POSTGRES_URL")
            if not admin:
                cluster = ThrowawayPostgres()
                admin = cluster.start()
            try:
                url = create_database(admin, "subsidyhub_bench")
                figures |= ledger_figures(
                    "postgres", url, settings, users=users, history=history, repeats=repeats
                )
                if not args.skip_me:
                    figures |= me_bench.me_figures(
                        "postgres", url, BENCH_CONFIG, plan=plan, scratch=Path(scratch)
                    )
            finally:
                if cluster:
                    cluster.stop()
    if not args.skip_hub:
        figures |= hub_bench.measure_spawns(
            users_count=3 if args.quick else 10, rounds=1 if args.quick else 3
        )
    if "admission_p99_ms_sqlite" in figures:
        figures["admission_p99_ms"] = figures["admission_p99_ms_sqlite"]
        figures["admissions_per_s"] = figures["admissions_per_s_sqlite"]
    # The GET me target is read on SQLite, the embedded default.
    for name in me_bench.HEADLINE:
        if f"{name}_sqlite" in figures:
            figures[name] = figures[f"{name}_sqlite"]
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(began)),
        "quick": args.quick,
        "sizes": {"users": users, "history_charges": history, "repeats": repeats},
        "me_bench": None if args.skip_me else me_bench.plan_description(plan),
        "machine": machine() | {"load_average_at_start": round(load_at_start, 2)},
        "figures": {k: round(v, 3) for k, v in sorted(figures.items())},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    width = max(len(k) for k in figures)
    for key, value in sorted(figures.items()):
        print(f"{key:<{width}}  {value:10.2f}")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
