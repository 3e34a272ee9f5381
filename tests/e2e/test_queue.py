"""Issue 16 in the browser: a full GPU type, the queue on the spawn page, the automatic start.

Real components: the ``subsidyhub up`` stack (JupyterHub with SubsidyHub's pages and its
``/hub/subsidy/queue`` handler, the npm configurable-http-proxy, the subsidy service and its
enforcer, ``LocalGPUSpawner`` running JupyterLab) and Debian's Chromium under Playwright. The
host has no GPU: the local pool declares one (``local.gpus: ["0"]``), which the spawner hands
out as ``CUDA_VISIBLE_DEVICES`` exactly as it would a real one, and which is the service's
capacity of the H800 type. No GPU work runs, so none is needed.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.test_jupyterlab import log_in
from tests.e2e.test_why import project
from tests.hub.helpers import HubStack, HubUser, poll, release

pytestmark = [pytest.mark.e2e, pytest.mark.hub, pytest.mark.slow]

CONFIG: dict[str, Any] = {
    "currency": "HKD",
    "metering": {"interval_seconds": 5, "min_start_minutes": 1, "reconcile_seconds": 5},
    "prices": {"cpu_core": "1.00", "memory_gib": "0", "gpu": {"h800": "36.00"}},
    "profiles": [
        {"slug": "cpu-small", "display_name": "CPU · 1 core", "cpu": 1, "memory_gib": 1},
        {
            "slug": "gpu-1",
            "display_name": "PyTorch · 1× H800",
            "cpu": 1,
            "memory_gib": 1,
            "gpus": {"type": "h800", "count": 1},
        },
    ],
    "local": {"gpus": ["0"]},
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubStack]:
    running = HubStack(tmp_path_factory.mktemp("queue"), CONFIG)
    try:
        yield running.start()
    finally:
        running.close()


def spawn_page(browser: Browser, stack: HubStack, user: str) -> Page:
    context = browser.new_context(viewport={"width": 1300, "height": 900}, timezone_id="UTC")
    context.set_default_timeout(30_000)
    page = context.new_page()
    log_in(page, stack, user)
    page.goto(f"{stack.url}/hub/spawn")
    return page


def ledger(stack: HubStack, query: str, *args: Any) -> list[tuple[Any, ...]]:
    uri = f"{(stack.data_dir / 'subsidyhub.sqlite').as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
        return db.execute(query, args).fetchall()


def test_a_full_gpu_queues_on_the_spawn_page_and_starts_by_itself(
    stack: HubStack, browser: Browser
) -> None:
    project(stack, "q-lab", "100000", "q-alice", "q-bob", "q-carol")
    alice = HubUser(stack, "q-alice")
    users = [alice, HubUser(stack, "q-bob"), HubUser(stack, "q-carol")]
    try:
        assert alice.start_server("gpu-1", "q-lab").status_code in (201, 202)
        alice.wait_ready()

        bob = spawn_page(browser, stack, "q-bob")
        card = bob.locator('.sh-card[data-profile="gpu-1"]')
        expect(card.locator(".sh-capacity")).to_contain_text("0 of 1 H800 free now")
        expect(card).to_contain_text("join the queue")
        card.click()
        start = bob.locator("#spawn_form button[type=submit]")
        expect(start).to_have_text("Join the queue")
        start.click()
        expect(bob.locator("#sh-queue-status")).to_contain_text(
            "You are number 1 in the queue for 1 × H800"
        )

        carol = spawn_page(browser, stack, "q-carol")
        carol.locator('.sh-card[data-profile="gpu-1"]').click()
        carol.locator("#spawn_form button[type=submit]").click()
        expect(carol.locator("#sh-queue-status")).to_contain_text("You are number 2 in the queue")
        # A reload keeps the place: it lives in the ledger, not in the page.
        carol.reload()
        expect(carol.locator("#sh-queue-status")).to_contain_text("You are number 2 in the queue")

        alice.stop_server()
        # Bob's open page starts his server by itself; carol moves up.
        bob.wait_for_url(f"{stack.url}/user/q-bob/**", timeout=90_000)
        expect(carol.locator("#sh-queue-status")).to_contain_text("You are number 1 in the queue")
        users[1].wait_ready()
        [(stopped,)] = ledger(stack, "SELECT stopped_ms FROM sessions WHERE username='q-alice'")
        [(offered, state)] = ledger(
            stack, "SELECT offered_ms, state FROM queue_entries WHERE username='q-bob'"
        )
        assert state == "admitted"
        assert 0 <= offered - stopped <= 2000, "the freed GPU reached the head within 2 s"

        # The hub's home page tells her too, with the way back to her spawn page.
        home = carol.context.new_page()
        home.goto(f"{stack.url}/hub/home")
        expect(home.locator("#sh-queue-note")).to_contain_text(
            "Your server is number 1 in the queue for 1 × H800"
        )
        home.close()

        # Carol leaves; nobody waits any more.
        carol.locator("#sh-queue-leave").click()
        expect(carol.locator("#sh-queue")).to_be_hidden()
        poll(
            lambda: (
                ledger(stack, "SELECT state FROM queue_entries WHERE username='q-carol'")
                == [("left",)]
            ),
            timeout=10,
            what="carol's place ends as left",
        )
    finally:
        release(users)
