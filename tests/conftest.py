"""Shared fixtures: real databases (SQLite file and a throwaway PostgreSQL) and settings.

``ledger_db`` is parametrised so every ledger test runs on both databases. PostgreSQL comes
from ``SUBSIDYHUB_TEST_POSTGRES_URL`` when set, otherwise a cluster is started once per run.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from subsidyhub.ledger.db import Database
from subsidyhub.ledger.migrate import upgrade
from subsidyhub.settings import Settings, parse_settings
from subsidyhub.testing.postgres import ThrowawayPostgres, create_database

TEST_CONFIG = {
    "currency": "HKD",
    "subsidy_rate": 0.70,
    "metering": {"interval_seconds": 60, "min_start_minutes": 15},
    "prices": {"cpu_core": 0.50, "memory_gib": 0.10, "gpu": {"h800": 36.00, "a100": 24.00}},
    "profiles": [
        {"slug": "cpu-small", "display_name": "CPU · 2 cores · 4 GiB", "cpu": 2, "memory_gib": 4},
        {
            "slug": "gpu-1",
            "display_name": "PyTorch · 1× H800",
            "cpu": 8,
            "memory_gib": 64,
            "gpus": {"type": "h800", "count": 1},
        },
        {
            "slug": "gpu-2",
            "display_name": "PyTorch · 2× A100",
            "cpu": 16,
            "memory_gib": 128,
            "gpus": {"type": "a100", "count": 2},
        },
    ],
}

_counter = itertools.count()


@pytest.fixture
def settings() -> Settings:
    return parse_settings(TEST_CONFIG, "test-config")


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    url = os.environ.get("SUBSIDYHUB_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    cluster = ThrowawayPostgres()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def fresh_database_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    admin = request.getfixturevalue("postgres_admin_url")
    return create_database(admin, f"t{os.getpid()}_{next(_counter)}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return fresh_database_url(request.param, tmp_path, request)


@pytest.fixture
def ledger_db(database_url: str, settings: Settings) -> Iterator[Database]:
    db = Database(database_url)
    upgrade(db, settings)
    yield db
    db.dispose()
