"""The unauthenticated probes: ``health/live`` never needs the database, ``health/ready`` does.

Real components: the service app on uvicorn, the real hub for token checks, SQLite and a
throwaway PostgreSQL; the outage is a real one (the PostgreSQL cluster is stopped).
"""

from __future__ import annotations

import httpx
import pytest

from subsidyhub.ledger.db import Database
from subsidyhub.ledger.migrate import upgrade
from subsidyhub.service.app import create_app
from subsidyhub.settings import Settings
from subsidyhub.testing.hub import TestHub
from subsidyhub.testing.postgres import ThrowawayPostgres, create_database

from .helpers import PREFIX, Service, serve


def test_probes_answer_without_a_token(service: Service) -> None:
    live = service.http.get("health/live")
    ready = service.http.get("health/ready")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok", "database": service.db.engine.dialect.name}


@pytest.mark.postgres
@pytest.mark.slow
def test_ready_fails_while_the_database_is_down_and_live_does_not(
    settings: Settings, jupyterhub: TestHub
) -> None:
    cluster = ThrowawayPostgres()
    url = create_database(cluster.start(), "health")
    db = Database(url)
    running = True
    try:
        upgrade(db, settings)
        app = create_app(settings, db, prefix=PREFIX, hub_api_url=jupyterhub.api_url)
        with serve(app) as base, httpx.Client(base_url=base + PREFIX, timeout=30) as http:
            assert http.get("health/ready").status_code == 200
            cluster.stop()
            running = False
            ready = http.get("health/ready")
            live = http.get("health/live")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == 503
        assert "ledger database does not answer (OperationalError)" in body["message"]
        assert "SUBSIDYHUB_DATABASE_URL" in body["message"]
        assert url not in ready.text and "postgresql" not in ready.text
        assert live.status_code == 200
    finally:
        db.dispose()
        if running:
            cluster.stop()
