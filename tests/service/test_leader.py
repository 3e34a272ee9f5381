"""One metering leader among the processes on a ledger, on PostgreSQL and on SQLite.

The lock is exclusive and passes on when released: a PostgreSQL advisory lock, or on SQLite a
``flock`` on a file beside the database (two :class:`Leadership` objects open it separately,
so they exclude each other as two processes do). In-memory SQLite is one process, the leader.
Then two real ``python -m subsidyhub.service`` processes on one SQLite ledger, with tokens
checked by the session's real hub: exactly one ticks, and when it is killed the other takes
over within a second or two; SIGTERM still shuts a service down cleanly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from subsidyhub.ledger.db import Database
from subsidyhub.ledger.migrate import upgrade
from subsidyhub.netutil import free_port, wait_for
from subsidyhub.service.leader import Leadership, lock_file_path
from subsidyhub.settings import parse_settings
from subsidyhub.testing.hub import TestHub

from ..conftest import TEST_CONFIG
from .helpers import PREFIX, metric_samples

LAST_TICK = "subsidyhub_metering_last_tick_timestamp_seconds"


def test_only_one_leads_until_it_lets_go(ledger_db: Database) -> None:
    first, second = Leadership(ledger_db), Leadership(ledger_db)
    try:
        assert first.holds()
        assert first.holds()  # keeps it
        assert not second.holds()
        lock = lock_file_path(ledger_db)
        if ledger_db.is_sqlite:
            assert lock is not None and lock.read_text() == f"{os.getpid()}\n"
        first.release()
        assert second.holds()
        assert not first.holds()
    finally:
        first.release()
        second.release()


def test_an_in_memory_ledger_is_one_process_so_it_leads() -> None:
    db = Database("sqlite://")
    first, second = Leadership(db), Leadership(db)
    try:
        assert lock_file_path(db) is None
        assert first.holds() and second.holds()
    finally:
        db.dispose()


class ServiceProcess:
    """``python -m subsidyhub.service`` on a loopback port, as a deployment would run it."""

    def __init__(self, hub: TestHub, config: Path, ledger_url: str, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}{PREFIX}"
        self.log = log
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("JUPYTERHUB_", "SUBSIDYHUB_"))
        } | {
            "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{self.port}",
            "JUPYTERHUB_API_URL": hub.api_url,
            "JUPYTERHUB_API_TOKEN": hub.service_token,
            "SUBSIDYHUB_CONFIG": str(config),
            "SUBSIDYHUB_DATABASE_URL": ledger_url,
            "SUBSIDYHUB_DATA_DIR": str(log.parent),
        }
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "subsidyhub.service"],
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> None:
        wait_for(
            f"{self.base}health/live",
            timeout=30,
            ready=lambda response: response.status_code == 200,
            alive=lambda: self.process.poll() is None,
        )

    def last_tick(self, token: str) -> float:
        """When this process last metered (0: never), from its own metrics."""
        response = httpx.get(
            f"{self.base}metrics", headers={"Authorization": f"token {token}"}, timeout=10
        )
        assert response.status_code == 200, response.text
        return metric_samples(response.text)[LAST_TICK, ()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


@pytest.fixture
def two_services(
    tmp_path: Path, jupyterhub: TestHub
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """Two services on one migrated SQLite ledger, metering every second."""
    config = TEST_CONFIG | {"metering": {"interval_seconds": 1, "min_start_minutes": 15}}
    config_path = tmp_path / "subsidyhub.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    db = Database(ledger_url)
    upgrade(db, parse_settings(config, str(config_path)))
    db.dispose()
    services = [
        ServiceProcess(jupyterhub, config_path, ledger_url, tmp_path / f"service-{n}.log")
        for n in (1, 2)
    ]
    try:
        for service in services:
            service.wait_ready()
        yield services[0], services[1]
    finally:
        for service in services:
            service.stop()


@pytest.mark.hub
@pytest.mark.slow
def test_one_of_two_services_on_a_sqlite_ledger_meters_and_the_other_takes_over(
    two_services: tuple[ServiceProcess, ServiceProcess], tokens: dict[str, str]
) -> None:
    admin = tokens["centre-admin"]
    services = list(two_services)
    deadline = time.monotonic() + 10
    while not any(service.last_tick(admin) for service in services):
        assert time.monotonic() < deadline, "neither service metered within 10 s"
        time.sleep(0.2)
    [leader] = [service for service in services if service.last_tick(admin)]
    [follower] = [service for service in services if service is not leader]

    # Three more seconds: the leader keeps ticking, the other never does.
    began = leader.last_tick(admin)
    time.sleep(3)
    assert leader.last_tick(admin) >= began + 2
    assert follower.last_tick(admin) == 0

    leader.process.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    while not follower.last_tick(admin):
        assert time.monotonic() - killed < 5, "the follower did not take over within 5 s"
        time.sleep(0.1)
    assert time.monotonic() - killed < 3
    assert (follower.log.parent / "ledger.sqlite.leader").read_text() == (
        f"{follower.process.pid}\n"
    )

    # A clean shutdown: uvicorn finishes and the app's lifespan stops the enforcer.
    follower.process.send_signal(signal.SIGTERM)
    follower.process.wait(10)
    log = follower.log.read_text(encoding="utf-8", errors="replace")
    assert "Application shutdown complete" in log, log
    assert f"Finished server process [{follower.process.pid}]" in log, log
