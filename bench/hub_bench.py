"""Hub benchmarks: what SubsidyHub costs a spawn, and how late the enforcer stops a server.

**Spawn throughput.** Two real stacks run side by side on this machine: the embedded default
(`subsidyhub up`: JupyterHub, proxy, subsidy service, admission hooks, spawn form) and the
same hub, proxy, LocalGPUSpawner and login without SubsidyHub's service and hooks
(:func:`subsidyhub.launcher.apply_platform_config` alone). Each round starts ``users`` real
JupyterLab servers at once through the REST API and times until all are ready, alternating
the stacks so background load hits both alike. Throughput is servers per second; the figure
is the ratio of medians (SubsidyHub ÷ baseline).

**Enforcement latency.** On the SubsidyHub stack, projects funded for a few seconds of a
high price each start a server; the figure is the time from the ledger's predicted
exhaustion instant to the enforcer closing the session, immediately followed by its stop
request to the hub.
"""

from __future__ import annotations

import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import select

from subsidyhub import launcher
from subsidyhub.ledger import projects
from subsidyhub.ledger.db import Database, now_ms
from subsidyhub.ledger.migrate import upgrade
from subsidyhub.ledger.models import SpawnSession
from subsidyhub.ledger.pricing import subsidy_rate_per_hour
from subsidyhub.money import parse_amount
from subsidyhub.netutil import free_port
from subsidyhub.settings import load_settings
from subsidyhub.timeutil import MS_PER_HOUR

BASELINE_HUB_CONFIG = '''
"""Baseline for the spawn benchmark: the embedded hub without SubsidyHub's service and hooks."""
import os
from subsidyhub.launcher import apply_platform_config
apply_platform_config(c, os.environ)
'''

CONFIG: dict[str, Any] = {
    "currency": "HKD",
    "metering": {"interval_seconds": 5, "min_start_minutes": 0.05, "reconcile_seconds": 60},
    # 2 cores at 3,600/h: the subsidy burns 1.40/s at 70%.
    "prices": {"cpu_core": "3600.00", "memory_gib": "0"},
    "profiles": [{"slug": "cpu-small", "display_name": "CPU", "cpu": 2, "memory_gib": 1}],
    "local": {"gpus": []},
}
PASSWORD = secrets.token_urlsafe(12)
FUNDS_MICRO = parse_amount("28")  # 20 seconds at 1.40/s: the server starts before it runs out


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def admin_client(stack: launcher.Stack) -> httpx.Client:
    """A token client for the hub admin, who may start anyone's server."""
    url = stack.url
    client = httpx.Client(base_url=url, follow_redirects=True, timeout=60)
    client.get("/hub/login")
    # Not following the redirect: the baseline hub would start the admin's own server.
    client.post(
        "/hub/login",
        data={
            "username": launcher.DEMO_ADMIN,
            "password": stack.admin_password,
            "_xsrf": client.cookies["_xsrf"],
        },
        follow_redirects=False,
    )
    client.headers["X-XSRFToken"] = client.cookies["_xsrf"]
    token = client.post(
        f"/hub/api/users/{launcher.DEMO_ADMIN}/tokens", json={"note": "bench"}
    ).json()["token"]
    return httpx.Client(base_url=url, headers={"Authorization": f"token {token}"}, timeout=60)


def active_users(client: httpx.Client) -> list[Any]:
    return [
        (u["name"], u["servers"])
        for u in client.get("/hub/api/users", params={"state": "active"}).json()
    ]


def spawn_round(client: httpx.Client, users: list[str]) -> float:
    """Start every user's server at once; seconds until all are ready; then stop them."""
    began = time.perf_counter()
    for user in users:
        client.post(f"/hub/api/users/{user}", json={})  # create the user if new (409 if known)
        response = client.post(f"/hub/api/users/{user}/server", json={"profile": "cpu-small"})
        if response.status_code not in (201, 202):
            raise RuntimeError(
                f"spawn of {user} answered {response.status_code}: {response.text[:200]}"
            )

    def all_ready() -> bool:
        listed = client.get("/hub/api/users", params={"state": "ready"}).json()
        return len({u["name"] for u in listed} & set(users)) == len(users)

    wait_for(all_ready, 300, f"{len(users)} servers to be ready")
    elapsed = time.perf_counter() - began
    for user in users:
        response = client.delete(f"/hub/api/users/{user}/server")
        if response.status_code not in (202, 204):
            raise RuntimeError(
                f"stop of {user} answered {response.status_code}: {response.text[:200]}"
            )
    try:
        wait_for(lambda: not active_users(client), 120, "servers to stop")
    except TimeoutError as error:
        raise TimeoutError(f"{error}; still active: {active_users(client)}") from None
    return elapsed


def _stack(
    root: Path, name: str, hub_config: Path | None, users: list[str]
) -> tuple[launcher.Stack, Database]:
    config = root / f"{name}.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    data_dir = root / name
    os.environ["SUBSIDYHUB_DATA_DIR"] = str(data_dir)
    settings = load_settings(config)
    db = Database(settings.resolved_database_url())
    upgrade(db, settings)
    with db.write() as session:
        at = now_ms()
        projects.create_project(session, settings, "bench", slug="bench", name="Bench", at_ms=at)
        projects.add_allocation(
            session, settings, "bench", "bench", amount_micro=parse_amount("1000000"), at_ms=at
        )
        for user in users:
            projects.set_member(session, "bench", "bench", user, at_ms=at)
    stack = launcher.start(
        config=str(config),
        data_dir=data_dir,
        port=free_port(),
        ip="127.0.0.1",
        demo=False,
        password=PASSWORD,
        quiet=True,
        **({"hub_config": hub_config} if hub_config else {}),
    )
    return stack, db


def measure_spawns(users_count: int = 10, rounds: int = 3) -> dict[str, float]:
    users = [f"bench{i:02d}" for i in range(users_count)]
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="subsidyhub-hubbench-") as scratch:
        root = Path(scratch)
        baseline_config = root / "baseline_jupyterhub_config.py"
        baseline_config.write_text(BASELINE_HUB_CONFIG)
        subsidy, subsidy_db = _stack(root, "subsidyhub", None, users)
        baseline, baseline_db = _stack(root, "baseline", baseline_config, users)
        try:
            clients = {
                "subsidyhub": admin_client(subsidy),
                "baseline": admin_client(baseline),
            }
            times: dict[str, list[float]] = {"subsidyhub": [], "baseline": []}
            for round_number in range(rounds):
                order = (
                    ["subsidyhub", "baseline"]
                    if round_number % 2 == 0
                    else ["baseline", "subsidyhub"]
                )
                for name in order:
                    times[name].append(spawn_round(clients[name], users))
            for name, samples in times.items():
                figures[f"hub_spawn_per_s_{name}"] = users_count / statistics.median(samples)
            figures["hub_spawn_ratio"] = (
                figures["hub_spawn_per_s_subsidyhub"] / figures["hub_spawn_per_s_baseline"]
            )
            figures["enforce_latency_s"], figures["enforce_latency_max_s"] = measure_enforcement(
                clients["subsidyhub"], subsidy_db, subsidy
            )
        finally:
            subsidy.stop()
            baseline.stop()
            subsidy_db.dispose()
            baseline_db.dispose()
    return figures


def measure_enforcement(
    client: httpx.Client, db: Database, stack: launcher.Stack, servers: int = 3
) -> tuple[float, float]:
    """Median and worst seconds from predicted exhaustion to the enforcer's stop."""
    settings = load_settings(stack.config)
    users = [f"broke{i}" for i in range(servers)]
    with db.write() as session:
        for user in users:
            at = now_ms()
            projects.create_project(session, settings, "bench", slug=user, name=user, at_ms=at)
            projects.add_allocation(
                session, settings, "bench", user, amount_micro=FUNDS_MICRO, at_ms=at
            )
            projects.set_member(session, "bench", user, user, at_ms=at)
    predicted: dict[str, int] = {}
    for user in users:
        client.post(f"/hub/api/users/{user}", json={})
        response = client.post(
            f"/hub/api/users/{user}/server", json={"profile": "cpu-small", "project": user}
        )
        if response.status_code not in (201, 202):
            raise RuntimeError(
                f"spawn of {user} answered {response.status_code}: {response.text[:200]}"
            )
    with db.read() as session:
        sessions = session.scalars(
            select(SpawnSession).where(SpawnSession.username.in_(users))
        ).all()
    if len(sessions) != len(users):
        raise RuntimeError(f"expected {len(users)} admitted sessions, found {len(sessions)}")
    # One session on one allocation: the instant its subsidy runs out, as the ledger predicts it.
    for row in sessions:
        burn = subsidy_rate_per_hour(row.list_rate_micro, row.subsidy_bp)
        predicted[row.username] = row.started_ms + FUNDS_MICRO * MS_PER_HOUR // burn
    ids = {row.username: row.id for row in sessions}

    def all_stopped() -> list[int] | None:
        with db.read() as session:
            stops = [session.get(SpawnSession, ids[u]).stopped_ms for u in users]
        return None if any(s is None for s in stops) else [s for s in stops if s is not None]

    stopped = wait_for(all_stopped, 120, "the enforcer to stop the broke servers")
    lateness = [(stop - predicted[user]) / 1000 for user, stop in zip(users, stopped, strict=True)]
    return statistics.median(lateness), max(lateness)
