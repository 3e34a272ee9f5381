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

import pytest

from subsidyhub.ledger.db import Database
from subsidyhub.settings import Settings
from subsidyhub.testing.hub import TestHub

from .helpers import Service, running_service


@pytest.fixture
def service(
    ledger_db: Database, settings: Settings, jupyterhub: TestHub, tokens: dict[str, str]
) -> Iterator[Service]:
    with running_service(
        ledger_db, settings, jupyterhub.api_url, jupyterhub.service_token, tokens
    ) as running:
        yield running


@pytest.fixture
def browser(service: Service) -> Iterator[Service]:
    """The service with a cookie jar that starts empty (httpx keeps Set-Cookie like a browser)."""
    service.http.cookies.clear()
    yield service
    service.http.cookies.clear()
