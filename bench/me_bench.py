"""``GET me`` under a steady request rate: the real service, a real hub, an open-loop client.

``GET me`` is what every JupyterLab status bar polls, so the issue sets its target as a
latency at a rate: p99 ≤ 5 ms at 2,000 requests/s on 2 cores, with 1M+ charge lines of
history and 10k users. This benchmark reproduces that setting as production runs it:

* the ledger is the one :mod:`bench.ledger_bench` seeded (10k members, one project per ten
  members, 1M+ charges), plus ``running`` sessions with holds (10 % of the members), so the
  callers' ``me`` has a project with running servers, not an empty page;
* a real JupyterHub (:class:`~subsidyhub.testing.hub.TestHub`) knows the seeded members who
  call, and mints each of them an API token; the service checks every token against the
  hub's REST API and caches the answer (30 s), exactly as in production;
* the service runs in its own process as JupyterHub starts it (``python -m
  subsidyhub.service`` with the ``JUPYTERHUB_*`` environment and a config naming the seeded
  database), with its usual per-request log going to a file;
* :mod:`bench.loadgen` sends requests on a fixed schedule over 32 keep-alive connections and
  measures each from its due time, so queueing in an overloaded server shows in the figures.
  Every answer must be 200 and describe the caller, with at least one project and session.

Beside ``me``, the same schedule is sent to a *baseline* on the same server: a ``GET`` of an
unknown path under the API prefix, which goes through uvicorn, Starlette's routing, the
service's timing middleware and access log and its JSON 404 handler, but no authentication,
no database and no serialisation of ours. ``me ÷ baseline`` separates the cost of our code
from the framework's. Each endpoint is measured at a low rate (100/s, meant to show latency
without queueing) and at the target rate, alternating endpoints, ``repeats`` times; figures
are medians over repeats. The service's CPU time per request (from ``/proc``, at the low
rate) says how far its capacity is from the target whatever the latency; when the target
rate saturates the service, the achieved rate is its capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from bench import ledger_bench
from bench.loadgen import LOOPBACK, Check, LoadResult, open_loop, request_bytes
from subsidyhub.ledger.db import Database, now_ms
from subsidyhub.ledger.models import Member, Project, SpawnSession
from subsidyhub.names import API_PATH, SERVICE_PREFIX
from subsidyhub.netutil import wait_for
from subsidyhub.settings import parse_settings
from subsidyhub.testing.hub import USERS, TestHub
from subsidyhub.testing.postgres import free_port

ME_PATH = f"{SERVICE_PREFIX}{API_PATH}/me"
BASELINE_PATH = f"{SERVICE_PREFIX}{API_PATH}/no-such-endpoint"
ENDPOINTS = ("baseline", "me")
# Figures that ``bench.run`` also reports without the database suffix (SQLite's).
HEADLINE = (
    "me_p50_ms",
    "me_p99_ms",
    "me_rate_achieved",
    "baseline_p50_ms",
    "baseline_p99_ms",
    "baseline_rate_achieved",
    "me_baseline_p99_ratio",
)


@dataclass(frozen=True)
class Plan:
    """Rates, lengths and sizes of one run of this benchmark."""

    rate: float = 2000.0
    low_rate: float = 100.0
    seconds: float = 10.0
    low_seconds: float = 5.0
    warmup_seconds: float = 2.0
    repeats: int = 3
    connections: int = 32
    drain_seconds: float = 5.0
    running: int = 1000
    callers: int = 16


FULL = Plan()
QUICK = Plan(seconds=2.0, low_seconds=2.0, warmup_seconds=1.0, repeats=1, running=100)


def _ledger_facts(db: Database) -> tuple[list[str], list[str], int]:
    """The seeded members, the projects, and the latest instant the ledger has charged to."""
    with db.read() as session:
        usernames = list(
            session.scalars(
                select(Member.username)
                .where(Member.username.like("user%"))  # ledger_bench's members
                .distinct()
                .order_by(Member.username)
            )
        )
        slugs = list(session.scalars(select(Project.slug).order_by(Project.slug)))
        latest = max(
            session.scalar(select(func.max(column))) or 0
            for column in (
                SpawnSession.started_ms,
                SpawnSession.stopped_ms,
                SpawnSession.charged_until_ms,
            )
        )
    return usernames, slugs, latest


def _running_and_callers(usernames: list[str], plan: Plan) -> tuple[int, list[str]]:
    running = min(plan.running, len(usernames))
    if running < 1:
        raise RuntimeError("the ledger has no members to call GET me as; seed it first")
    step = max(1, running // plan.callers)
    return running, [usernames[i] for i in range(0, running, step)][: plan.callers]


def caller_names(url: str, plan: Plan) -> list[str]:
    """The members who will call ``me`` (the hub must know them before it starts)."""
    db = Database(url)
    try:
        return _running_and_callers(_ledger_facts(db)[0], plan)[1]
    finally:
        db.dispose()


def prepare_ledger(url: str, plan: Plan) -> list[str]:
    """Start ``plan.running`` sessions on a seeded ledger; the members who will call ``me``.

    Called once the service runs: its start-up reconciliation closes sessions that have no
    server on the hub and are older than a few seconds, as it should in production.
    """
    db = Database(url)
    try:
        usernames, slugs, latest = _ledger_facts(db)
        running, callers = _running_and_callers(usernames, plan)
        # Never before what the ledger bench's ticks already charged (their clock runs ahead).
        seeded = ledger_bench.Seeded(db, max(now_ms(), latest + 1), usernames, slugs)
        ledger_bench.start_running(seeded, running)
        return callers
    finally:
        db.dispose()


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and its threads, from ``/proc``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RunningService:
    """``python -m subsidyhub.service`` in its own process, configured as the hub would."""

    def __init__(self, scratch: Path, config: dict[str, Any], url: str, hub: TestHub) -> None:
        self.port = free_port()
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        self.log_path = scratch / "service.log"
        config_path = scratch / "service-config.yaml"
        # JSON is YAML; the database is the one seeded.
        config_path.write_text(json.dumps({**config, "database_url": url}), encoding="utf-8")
        environment = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
        environment |= {
            "JUPYTERHUB_SERVICE_URL": self.base_url,
            "JUPYTERHUB_SERVICE_PREFIX": SERVICE_PREFIX,
            "JUPYTERHUB_API_URL": hub.api_url,
            "JUPYTERHUB_API_TOKEN": hub.service_token,
            "SUBSIDYHUB_CONFIG": str(config_path),
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "subsidyhub.service"],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for(
                self.base_url + ME_PATH,
                timeout=60,
                ready=lambda response: response.status_code == 401,
                alive=lambda: self.process.poll() is None,
            )
        except (TimeoutError, RuntimeError) as problem:
            self.stop()
            raise RuntimeError(f"the service did not start: {problem}\n{self.log_tail()}") from None

    def cpu_seconds(self) -> float:
        return _cpu_seconds(self.process.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no service log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@contextmanager
def service_with_hub(
    scratch: Path, config: dict[str, Any], url: str, callers: Sequence[str]
) -> Iterator[tuple[RunningService, dict[str, str]]]:
    """A hub that knows ``callers`` (a token each) and the service against ``url``."""
    with TestHub(users=(*USERS, *callers)) as hub:
        tokens = {name: hub.token_for(name, note="subsidyhub bench") for name in callers}
        service = RunningService(scratch, config, url, hub)
        try:
            yield service, tokens
        finally:
            service.stop()


def me_check(callers: Sequence[str]) -> Check:
    """200, the caller's own name, and a member's page: a project and a running server."""

    def check(index: int, status: int, body: bytes) -> str | None:
        if status != 200:
            return f"HTTP {status}: {body[:200]!r}"
        page = json.loads(body)
        expected = callers[index % len(callers)]
        if page.get("user") != expected:
            return f"answered for {page.get('user')!r}, not {expected!r}"
        if not page.get("projects") or not page.get("sessions"):
            return f"{expected} has no projects or no running sessions in the answer"
        return None

    return check


def baseline_check(_index: int, status: int, body: bytes) -> str | None:
    if status != 404 or json.loads(body).get("status") != 404:
        return f"expected the JSON 404, got HTTP {status}: {body[:200]!r}"
    return None


@dataclass(frozen=True)
class Phase:
    endpoint: str
    result: LoadResult
    service_cpu_ms_per_request: float


def run_phase(
    service: RunningService,
    endpoint: str,
    requests: Sequence[bytes],
    check: Check,
    *,
    rate: float,
    seconds: float,
    plan: Plan,
) -> Phase:
    cpu_before = service.cpu_seconds()
    result = asyncio.run(
        open_loop(
            service.port,
            requests,
            check,
            rate=rate,
            seconds=seconds,
            connections=plan.connections,
            drain_s=plan.drain_seconds,
        )
    )
    cpu = service.cpu_seconds() - cpu_before
    if result.failures:
        raise RuntimeError(
            f"GET {endpoint} at {rate:.0f}/s: {result.failures} wrong answers; first: "
            f"{result.first_failure}\n{service.log_tail()}"
        )
    time.sleep(0.5 if result.unfinished == 0 else 2.0)  # let a saturated server drain
    return Phase(endpoint, result, cpu * 1000 / max(1, result.completed))


def me_figures(
    kind: str, url: str, config: dict[str, Any], *, plan: Plan, scratch: Path
) -> dict[str, float]:
    """Figures of ``GET me`` and the baseline against the ledger at ``url`` (already seeded)."""
    with service_with_hub(scratch, config, url, caller_names(url, plan)) as (service, tokens):
        callers = prepare_ledger(url, plan)
        me_requests = [
            request_bytes(ME_PATH, service.port, {"Authorization": f"token {tokens[name]}"})
            for name in callers
        ]
        baseline_requests = [request_bytes(BASELINE_PATH, service.port)]
        sample = httpx.get(
            service.base_url + ME_PATH,
            headers={"Authorization": f"token {tokens[callers[0]]}"},
            timeout=30,
        ).json()
        print(
            f"  {kind}: GET me as {len(callers)} members ({callers[0]}: "
            f"{len(sample['projects'])} project, {len(sample['sessions'])} running, "
            f"{len(json.dumps(sample))} bytes)",
            flush=True,
        )
        targets = {
            "baseline": (baseline_requests, baseline_check),
            "me": (me_requests, me_check(callers)),
        }
        for endpoint in ENDPOINTS:  # warm-up: token cache, connection pool, statement caches
            requests, check = targets[endpoint]
            run_phase(
                service,
                endpoint,
                requests,
                check,
                rate=plan.low_rate,
                seconds=plan.warmup_seconds,
                plan=plan,
            )
        phases: dict[tuple[str, float], list[Phase]] = {}
        for rate, seconds in ((plan.low_rate, plan.low_seconds), (plan.rate, plan.seconds)):
            for _ in range(plan.repeats):
                for endpoint in ENDPOINTS:
                    requests, check = targets[endpoint]
                    phase = run_phase(
                        service, endpoint, requests, check, rate=rate, seconds=seconds, plan=plan
                    )
                    phases.setdefault((endpoint, rate), []).append(phase)
                    result = phase.result
                    print(
                        f"  {kind}: {endpoint:>8} @{rate:5.0f}/s: p50 {result.p50_ms:7.2f} ms, "
                        f"p99 {result.p99_ms:8.2f} ms, {result.rate_achieved:6.0f}/s achieved, "
                        f"{result.unfinished} unfinished; service "
                        f"{phase.service_cpu_ms_per_request:.2f} CPU ms/request, client "
                        f"{result.client_cpu_s / result.elapsed_s:.0%} of a core",
                        flush=True,
                    )
    return summarise(kind, phases, plan)


def summarise(
    kind: str, phases: dict[tuple[str, float], list[Phase]], plan: Plan
) -> dict[str, float]:
    def median(endpoint: str, rate: float, what: str) -> float:
        values = []
        for phase in phases[(endpoint, rate)]:
            if what == "cpu":
                values.append(phase.service_cpu_ms_per_request)
            elif what == "client":
                values.append(phase.result.client_cpu_s / phase.result.elapsed_s)
            else:
                values.append(float(getattr(phase.result, what)))
        return statistics.median(values)

    figures: dict[str, float] = {}
    for endpoint in ENDPOINTS:
        figures[f"{endpoint}_p50_ms_{kind}"] = median(endpoint, plan.rate, "p50_ms")
        figures[f"{endpoint}_p99_ms_{kind}"] = median(endpoint, plan.rate, "p99_ms")
        figures[f"{endpoint}_rate_achieved_{kind}"] = median(endpoint, plan.rate, "rate_achieved")
        figures[f"{endpoint}_unfinished_{kind}"] = median(endpoint, plan.rate, "unfinished")
        low = f"{plan.low_rate:.0f}rps"
        figures[f"{endpoint}_p50_ms_{low}_{kind}"] = median(endpoint, plan.low_rate, "p50_ms")
        figures[f"{endpoint}_p99_ms_{low}_{kind}"] = median(endpoint, plan.low_rate, "p99_ms")
        figures[f"{endpoint}_cpu_ms_per_request_{kind}"] = median(endpoint, plan.low_rate, "cpu")
    figures[f"me_baseline_p50_ratio_{kind}"] = (
        figures[f"me_p50_ms_{kind}"] / figures[f"baseline_p50_ms_{kind}"]
    )
    figures[f"me_baseline_p99_ratio_{kind}"] = (
        figures[f"me_p99_ms_{kind}"] / figures[f"baseline_p99_ms_{kind}"]
    )
    figures[f"me_baseline_cpu_ratio_{kind}"] = (
        figures[f"me_cpu_ms_per_request_{kind}"] / figures[f"baseline_cpu_ms_per_request_{kind}"]
    )
    figures[f"loadgen_cpu_share_{kind}"] = median("me", plan.rate, "client")
    return figures


def plan_description(plan: Plan) -> dict[str, Any]:
    return asdict(plan) | {"me_path": ME_PATH, "baseline_path": BASELINE_PATH}


def main(argv: list[str] | None = None) -> int:
    """Seed a SQLite ledger (as ``make bench`` does) and run this benchmark alone."""
    from bench.run import BENCH_CONFIG

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and short runs")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    users, history = (1000, 20_000) if args.quick else (10_000, 1_000_000)
    settings = parse_settings(BENCH_CONFIG, "bench config")
    with tempfile.TemporaryDirectory(prefix="subsidyhub-bench-") as scratch:
        url = f"sqlite:///{Path(scratch) / 'bench.sqlite'}"
        ledger_bench.timed(
            f"sqlite: seed {users} users, {history} charge lines",
            lambda: ledger_bench.seed(
                Database(url), settings, users=users, history=history, now_ms=now_ms()
            ).db.dispose(),
        )
        figures = me_figures("sqlite", url, BENCH_CONFIG, plan=plan, scratch=Path(scratch))
    width = max(len(k) for k in figures)
    for key, value in sorted(figures.items()):
        print(f"{key:<{width}}  {value:10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
