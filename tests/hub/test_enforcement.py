"""Stop on exhaustion, on time, against the real stack.

`subsidyhub up`'s stack (real JupyterHub, real configurable-http-proxy, the subsidy service
as a managed service with its enforcer, LocalGPUSpawner running a real JupyterLab) with a
price high enough that a small allocation lasts about 20 seconds. The enforcer must stop the
server within a few seconds of the predicted exhaustion instant, record why, and the next
spawn must be refused with the balance message.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select

from subsidyhub import launcher
from subsidyhub.ledger import admission, projects
from subsidyhub.ledger.db import Database, now_ms
from subsidyhub.ledger.enforcement import REASON_EXHAUSTED, plan
from subsidyhub.ledger.migrate import upgrade
from subsidyhub.ledger.models import SpawnSession
from subsidyhub.money import parse_amount
from subsidyhub.netutil import free_port
from subsidyhub.settings import load_settings

pytestmark = pytest.mark.hub

CONFIG = {
    "currency": "HKD",
    "metering": {"interval_seconds": 1, "min_start_minutes": 0.05, "reconcile_seconds": 2},
    # 2 cores at 3,600/h: 7,200/h list, 5,040/h (1.40/s) from the subsidy at 70%.
    "prices": {"cpu_core": "3600.00", "memory_gib": "0"},
    "profiles": [{"slug": "cpu-small", "display_name": "CPU", "cpu": 2, "memory_gib": 1}],
    "local": {"gpus": []},
}
FUNDS = "28.00"  # 20 seconds at 1.40/s
PASSWORD = secrets.token_urlsafe(12)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: pytest.MonkeyPatch
) -> Iterator[tuple[launcher.Stack, Database]]:
    root = tmp_path_factory.mktemp("enforce")
    config = root / "subsidyhub.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    data_dir = root / "data"
    monkeypatch_module.setenv("SUBSIDYHUB_DATA_DIR", str(data_dir))
    settings = load_settings(config)
    db = Database(settings.resolved_database_url())
    upgrade(db, settings)
    with db.write() as session:
        projects.create_project(session, settings, "test", slug="tiny", name="Tiny", at_ms=now_ms())
        projects.add_allocation(
            session, "test", "tiny", amount_micro=parse_amount(FUNDS), at_ms=now_ms()
        )
        projects.set_member(session, "test", "tiny", "alice", at_ms=now_ms())
    running = launcher.start(
        config=str(config),
        data_dir=data_dir,
        port=free_port(),
        ip="127.0.0.1",
        demo=False,
        password=PASSWORD,
        quiet=True,
    )
    try:
        yield running, db
    finally:
        running.stop()
        db.dispose()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def logged_in(url: str, user: str) -> httpx.Client:
    client = httpx.Client(base_url=url, follow_redirects=True, timeout=30)
    client.get("/hub/login")
    response = client.post(
        "/hub/login",
        data={"username": user, "password": PASSWORD, "_xsrf": client.cookies["_xsrf"]},
    )
    assert response.status_code == 200
    client.headers["X-XSRFToken"] = client.cookies["_xsrf"]
    return client


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_server_is_stopped_at_exhaustion_and_the_next_spawn_is_refused(
    stack: tuple[launcher.Stack, Database], tmp_path: Path
) -> None:
    running, db = stack
    alice = logged_in(running.url, "alice")
    assert alice.post("/hub/api/users/alice/server", json={"profile": "cpu-small"}).status_code in (
        201,
        202,
    )
    with db.read() as session:
        predicted = plan(session, now_ms()).next_due_ms
    assert predicted is not None
    wait_for(
        lambda: alice.get("/hub/api/user").json()["servers"].get("", {}).get("ready"),
        60,
        "the server to start",
    )

    def stopped_session() -> SpawnSession | None:
        with db.read() as session:
            return session.scalars(
                select(SpawnSession).where(SpawnSession.stopped_ms.is_not(None))
            ).first()

    closed = wait_for(stopped_session, 60, "the enforcer to close the session")
    assert closed.stop_reason == REASON_EXHAUSTED
    lateness_ms = closed.stopped_ms - predicted
    assert 0 <= lateness_ms <= 5_000, f"stopped {lateness_ms} ms after the predicted exhaustion"
    wait_for(
        lambda: "" not in alice.get("/hub/api/user").json()["servers"],
        30,
        "the hub to stop the server",
    )

    again = alice.post("/hub/api/users/alice/server", json={"profile": "cpu-small"})
    assert again.status_code == 403
    assert "Project tiny has" in again.json()["message"]
    assert "of subsidy left; cpu-small needs" in again.json()["message"]


def test_reconciliation_closes_ghost_sessions_and_stops_unadmitted_servers(
    stack: tuple[launcher.Stack, Database],
) -> None:
    running, db = stack
    alice = logged_in(running.url, "alice")
    wait_for(
        lambda: "" not in alice.get("/hub/api/user").json()["servers"], 30, "no server for alice"
    )
    config = load_settings(running.config)
    with db.write() as session:
        projects.add_allocation(
            session,
            "test",
            "tiny",
            amount_micro=parse_amount("100000"),
            at_ms=now_ms(),
            valid_from_ms=now_ms() - 60_000,
        )
        # A session whose server the hub never started (its stop was lost): a ghost.
        ghost = admission.admit(
            session,
            config,
            username="alice",
            project_slug="tiny",
            profile_slug="cpu-small",
            server_name="ghost",
            now_ms=now_ms() - 10_000,
        ).session_id
    assert alice.post("/hub/api/users/alice/server", json={"profile": "cpu-small"}).status_code in (
        201,
        202,
    )
    wait_for(
        lambda: alice.get("/hub/api/user").json()["servers"].get("", {}).get("ready"),
        60,
        "the server to start",
    )

    def reason_of(session_id: int) -> str | None:
        with db.read() as session:
            return session.get(SpawnSession, session_id).stop_reason

    assert wait_for(lambda: reason_of(ghost), 15, "the ghost session to be closed") == "reconciled"
    # Now lose the real server's session: the server runs unadmitted and must be stopped.
    with db.write() as session:
        live = session.scalars(
            select(SpawnSession).where(
                SpawnSession.server_name == "", SpawnSession.stopped_ms.is_(None)
            )
        ).one()
        admission.stop(session, live.id, now_ms=now_ms(), reason="lost")
    wait_for(
        lambda: "" not in alice.get("/hub/api/user").json()["servers"],
        20,
        "the unadmitted server to be stopped",
    )
