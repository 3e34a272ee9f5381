"""Service-layer fixtures: one real JupyterHub per run, one real service per test and database.

``jupyterhub`` starts a real hub (proxy, roles, custom scope, users) once per session; it
also runs ``python -m subsidyhub.service`` as the managed service ``subsidy``, so one test
can go through the proxy exactly as production does. ``service`` builds the app for the
test's database (SQLite and PostgreSQL, from ``ledger_db``) and serves it with uvicorn on a
free loopback port; every token it sees is checked against the hub's REST API. Its clock is
movable, so a test can admit at one instant and stop two hours later.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import pytest

from subsidyhub.ledger.db import Database
from subsidyhub.service.app import create_app
from subsidyhub.settings import Settings
from subsidyhub.testing.hub import HUB_ADMIN, USERS, TestHub
from subsidyhub.testing.postgres import free_port

from .helpers import PREFIX, T0, Clock, Service, serve


@pytest.fixture(scope="session")
def jupyterhub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestHub]:
    root = tmp_path_factory.mktemp("jupyterhub")
    hub = TestHub(
        root=root,
        service_url=f"http://127.0.0.1:{free_port()}",
        service_command=[sys.executable, "-m", "subsidyhub.service"],
        service_environment={"SUBSIDYHUB_DATA_DIR": str(root / "service-data")},
    )
    with hub:
        yield hub


@pytest.fixture(scope="session")
def tokens(jupyterhub: TestHub) -> dict[str, str]:
    """One full-permission token per user, minted through the hub's REST API."""
    return {name: jupyterhub.token_for(name) for name in (*USERS, HUB_ADMIN)}


@pytest.fixture
def service(
    ledger_db: Database, settings: Settings, jupyterhub: TestHub, tokens: dict[str, str]
) -> Iterator[Service]:
    clock = Clock(T0)
    app = create_app(
        settings,
        ledger_db,
        prefix=PREFIX,
        hub_api_url=jupyterhub.api_url,
        service_token=jupyterhub.service_token,
        clock=clock,
    )
    with serve(app) as base_url, httpx.Client(base_url=base_url + PREFIX, timeout=30) as http:
        yield Service(http, tokens, jupyterhub.service_token, clock, ledger_db, settings, app)
