"""``GET me`` may answer from a page read less than a second ago, never from an outdated one.

A write of the service's own process (an admission, an admin change, a test's direct write)
shows at once; a write of another process (the CLI) within a second; a moved clock at once.
"""

from __future__ import annotations

import time

import pytest

from subsidyhub.ledger import projects
from subsidyhub.ledger.db import Database
from subsidyhub.money import parse_amount
from subsidyhub.service.me_page import MePages
from subsidyhub.settings import Settings

from .helpers import HOUR, T0, Service, seed

GPU = {"user": "alice", "profile": "gpu-1", "server_name": "", "project": "alpha"}


def add_allocation(db: Database, settings: Settings, amount: str) -> None:
    with db.write() as session:
        projects.add_allocation(
            session, settings, "test", "alpha", amount_micro=parse_amount(amount), at_ms=T0
        )


@pytest.mark.hub
def test_repeated_me_is_the_same_page_until_something_changes(service: Service) -> None:
    seed(service)
    first = service.call("GET", "api/v1/me", who="alice")
    again = service.call("GET", "api/v1/me", who="alice")
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert first.headers["content-type"] == "application/json"

    # An admission through the service shows at once, at the same instant.
    admitted = service.ok("POST", "api/v1/admissions", who="hub", status=201, json=GPU)
    me = service.ok("GET", "api/v1/me", who="alice")
    assert [s["id"] for s in me["sessions"]] == [admitted["session_id"]]
    assert me["projects"][0]["running_servers"] == 1

    # So does a write of this process that bypasses the API.
    add_allocation(service.db, service.settings, "100")
    me = service.ok("GET", "api/v1/me", who="alice")
    assert me["projects"][0]["allocated"] == "600.00"

    # A moved clock is a new page.
    service.clock.advance(HOUR)
    me = service.ok("GET", "api/v1/me", who="alice")
    assert me["at"] == "2026-12-01T01:00:00Z"
    assert me["sessions"][0]["cost"]["list"] == "46.40"


@pytest.mark.hub
def test_a_change_by_another_process_shows_within_a_second(service: Service) -> None:
    seed(service)
    assert service.ok("GET", "api/v1/me", who="alice")["projects"][0]["allocated"] == "500.00"
    other = Database(service.db.url)  # as the CLI would open it: not watched by the service
    try:
        add_allocation(other, service.settings, "25")
    finally:
        other.dispose()
    time.sleep(1.05)
    assert service.ok("GET", "api/v1/me", who="alice")["projects"][0]["allocated"] == "525.00"


@pytest.mark.hub
def test_admin_and_plain_tokens_of_one_user_get_their_own_pages(service: Service) -> None:
    seed(service)
    assert service.ok("GET", "api/v1/me", who="centre-admin")["admin"] is True
    assert service.ok("GET", "api/v1/me", who="alice")["admin"] is False


def test_the_write_watch_moves_only_after_a_write(ledger_db: Database, settings: Settings) -> None:
    pages = MePages(ledger_db)
    try:
        before = pages.watch.generation
        with ledger_db.read() as session:
            projects.list_projects(session)
        assert pages.watch.generation == before
        with ledger_db.write() as session:
            projects.create_project(session, settings, "test", slug="alpha", name="A", at_ms=T0)
        assert pages.watch.generation > before
    finally:
        pages.close()


def test_a_page_read_while_a_write_ended_is_not_kept(
    ledger_db: Database, settings: Settings
) -> None:
    pages = MePages(ledger_db)
    try:
        generation = pages.watch.generation
        with ledger_db.write() as session:  # ends while "alice's page" is being read
            projects.create_project(session, settings, "test", slug="alpha", name="A", at_ms=T0)
        pages.put("alice", False, T0, generation, b"{}")
        assert pages.get("alice", False, T0) is None

        pages.put("alice", False, T0, pages.watch.generation, b"{}")
        assert pages.get("alice", False, T0) == b"{}"
        assert pages.get("alice", True, T0) is None  # an admin token's page is another page
        assert pages.get("alice", False, T0 + 999) == b"{}"
        assert pages.get("alice", False, T0 + 1000) is None  # the service clock moved 1 s
        assert pages.get("alice", False, T0 - 1) is None  # or back
    finally:
        pages.close()
    assert pages.get("alice", False, T0) is None  # closed: nothing is served any more


def test_pages_age_out_and_stay_bounded(ledger_db: Database) -> None:
    pages = MePages(ledger_db, max_age_s=0.5, max_entries=3)
    try:
        for name in ("a", "b", "c", "d"):
            pages.put(name, False, T0, pages.watch.generation, name.encode())
        assert [pages.get(name, False, T0) for name in "abcd"] == [None, b"b", b"c", b"d"]
        time.sleep(0.55)
        assert pages.get("d", False, T0) is None
    finally:
        pages.close()
    off = MePages(ledger_db, max_age_s=0)
    try:
        off.put("a", False, T0, off.watch.generation, b"{}")
        assert off.get("a", False, T0) is None
    finally:
        off.close()
