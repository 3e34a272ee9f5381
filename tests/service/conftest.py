"""Service-layer fixtures: one real service per test and database.

The real hub is the session's ``jupyterhub`` (tests/conftest.py), which also runs
``python -m subsidyhub.service`` as the managed service ``subsidy``, so one test can go
through the proxy exactly as production does. ``service`` builds the app for the test's
database (SQLite and PostgreSQL, from ``ledger_db``) and serves it with uvicorn on a free
loopback port; every token it sees is checked against the hub's REST API. Its clock is
movable, so a test can admit at one instant and stop two hours later.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from subsidyhub.ledger.db import Database
from subsidyhub.service.app import create_app
from subsidyhub.settings import Settings
from subsidyhub.testing.hub import TestHub

from .helpers import PREFIX, T0, Clock, Service, serve


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


@pytest.fixture
def browser(service: Service) -> Iterator[Service]:
    """The service with a cookie jar that starts empty (httpx keeps Set-Cookie like a browser)."""
    service.http.cookies.clear()
    yield service
    service.http.cookies.clear()
