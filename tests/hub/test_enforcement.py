"""Stop on exhaustion, on time, and reconcile with the hub, against the real stack.

`subsidyhub up`'s stack (real JupyterHub, real configurable-http-proxy, the subsidy service
as a managed service with its enforcer, LocalGPUSpawner running a real JupyterLab) with a
price high enough that a small allocation lasts about 20 seconds. The enforcer must stop the
server within a few seconds of the predicted exhaustion instant, record why, and the next
spawn must be refused with the balance message. Reconciliation must close a session whose
server the hub does not run, and stop a server that runs without a session.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from subsidyhub.ledger import admission
from subsidyhub.ledger.db import Database, now_ms
from subsidyhub.ledger.enforcement import REASON_EXHAUSTED, plan
from subsidyhub.ledger.models import SpawnSession
from subsidyhub.settings import Settings, parse_settings

from .helpers import HubStack, HubUser, poll

pytestmark = [pytest.mark.hub, pytest.mark.slow]

CONFIG = {
    "currency": "HKD",
    "metering": {
        "interval_seconds": 1,
        "min_start_minutes": 0.05,
        "reconcile_seconds": 2,
        "admin_stop_grace_seconds": 4,
    },
    # 2 cores at 3,600/h: 7,200/h list, 5,040/h (1.40/s) from the subsidy at 70%.
    "prices": {"cpu_core": "3600.00", "memory_gib": "0"},
    "profiles": [{"slug": "cpu-small", "display_name": "CPU", "cpu": 2, "memory_gib": 1}],
    "local": {"gpus": []},
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubStack]:
    hub = HubStack(tmp_path_factory.mktemp("enforce"), CONFIG).start()
    try:
        hub.admin("project", "create", "tiny", "--name", "Tiny")
        hub.admin("allocate", "tiny", "28.00")  # 20 seconds at 1.40/s
        hub.admin("member", "add", "tiny", "carol")
        yield hub
    finally:
        hub.close()


@pytest.fixture
def carol(stack: HubStack) -> Iterator[HubUser]:
    user = HubUser(stack, "carol")
    try:
        yield user
    finally:
        user.stop_server()
        user.close()


def settings() -> Settings:
    return parse_settings(CONFIG, "test")


def test_server_is_stopped_at_exhaustion_and_the_next_spawn_is_refused(
    carol: HubUser, ledger: Database
) -> None:
    assert carol.start_server("cpu-small").status_code in (201, 202)
    with ledger.read() as session:
        predicted = plan(session, now_ms()).next_due_ms
    assert predicted is not None
    carol.wait_ready()

    def stopped_session() -> SpawnSession | None:
        with ledger.read() as session:
            return session.scalars(
                select(SpawnSession).where(SpawnSession.stopped_ms.is_not(None))
            ).first()

    closed = poll(stopped_session, timeout=60, what="the enforcer closing the session")
    assert closed.stop_reason == REASON_EXHAUSTED
    lateness_ms = closed.stopped_ms - predicted
    assert 0 <= lateness_ms <= 5_000, f"stopped {lateness_ms} ms after the predicted exhaustion"
    poll(lambda: carol.server() is None, timeout=30, what="the hub stopping the server")

    # The hub's pages say why, above the Start button, and what to do.
    def home_banner() -> str | None:
        page = carol.http.get("/hub/home").text
        return page if 'id="sh-stop"' in page else None

    home = poll(home_banner, timeout=10, what="the home page saying why the server stopped")
    assert 'data-reason="subsidy_exhausted"' in home
    assert "project Tiny&#39;s subsidy ran out. Ask your project manager to top it up." in home
    assert home.index('id="sh-stop"') < home.index('id="start"')

    again = carol.start_server("cpu-small")
    assert again.status_code == 403
    assert "Project Tiny has no subsidy left" in again.json()["message"]
    assert "left; CPU needs HK$" in again.json()["message"]
    # A refused start is no new server: the spawn page still says why the last one stopped.
    assert "project Tiny&#39;s subsidy ran out" in carol.http.get("/hub/spawn").text


def test_reconciliation_closes_ghost_sessions_and_stops_unadmitted_servers(
    stack: HubStack, carol: HubUser, ledger: Database
) -> None:
    stack.admin("allocate", "tiny", "100000", "--from", "2020-01-01")
    with ledger.write() as session:
        # A session whose server the hub never started (its stop was lost): a ghost.
        ghost = admission.admit(
            session,
            settings(),
            username="carol",
            project_slug="tiny",
            profile_slug="cpu-small",
            server_name="ghost",
            now_ms=now_ms() - 10_000,
        ).session_id
    assert carol.start_server("cpu-small").status_code in (201, 202)
    carol.wait_ready()

    def reason_of(session_id: int) -> str | None:
        with ledger.read() as session:
            return session.get(SpawnSession, session_id).stop_reason

    assert (
        poll(lambda: reason_of(ghost), timeout=15, what="the ghost session closed") == "reconciled"
    )
    # Now lose the real server's session: the server runs unadmitted and must be stopped.
    with ledger.write() as session:
        live = session.scalars(
            select(SpawnSession).where(
                SpawnSession.server_name == "", SpawnSession.stopped_ms.is_(None)
            )
        ).one()
        admission.stop(session, live.id, now_ms=now_ms(), reason="lost")
    poll(lambda: carol.server() is None, timeout=20, what="the unadmitted server stopped")


def test_an_admins_stop_from_the_cli_stops_the_server_on_the_hub(
    stack: HubStack, carol: HubUser, ledger: Database
) -> None:
    """``subsidyhub server stop`` writes only the ledger; the enforcer carries it to the hub."""
    stack.admin("allocate", "tiny", "100000", "--from", "2020-01-01")
    assert carol.start_server("cpu-small").status_code in (201, 202)
    carol.wait_ready()
    said = stack.cli("server", "stop", "carol", "--note", "maintenance at noon")
    assert "asks the hub to stop the server 4 s after this" in said
    assert carol.server() is not None  # carol has the grace to save her work
    poll(lambda: carol.server() is None, timeout=20, what="the hub stopping the server")
    # The enforcer's doing (within a second of the write), not reconciliation's.
    assert "carol/ of project tiny: closed in the ledger by an admin" in stack.log_path.read_text()
    with ledger.read() as session:
        row = session.scalars(
            select(SpawnSession)
            .where(SpawnSession.username == "carol")
            .order_by(SpawnSession.id.desc())
        ).first()
    assert row is not None and (row.stop_reason, row.stop_note) == ("admin", "maintenance at noon")
    assert row.reported_stop_ms is not None  # the hub's own stop is kept as evidence
    page = carol.http.get("/hub/home").text
    assert "maintenance at noon" in page
