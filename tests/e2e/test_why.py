"""Issue 14's "done when": whoever stops a server, its user is told why, before and after.

Real components: the ``subsidyhub up`` stack (JupyterHub with SubsidyHub's pages, the npm
configurable-http-proxy, the subsidy service and its enforcer, ``LocalGPUSpawner`` running
JupyterLab with the jupyterlab-subsidy extension), the ``subsidyhub`` CLI, and Debian's
Chromium driven by Playwright. The stack's host has no GPUs (``local.gpus: []``) and meters
each second at a high price, so three stops happen within a minute and a half, side by side:

* ``why-tiny``'s project has about 70 s of subsidy: the enforcer stops the server when it
  runs out (the lab counts down first);
* ``why-cap``'s project allows sessions of 0.02 h (72 s): the server stops at its deadline;
* ``why-admin`` is stopped by an admin with a note (``subsidyhub server stop --note``); the
  ledger closes the session at once and the hub stops the server a grace period later
  (``metering.admin_stop_grace_seconds``, 40 s here), during which the lab says why.

After each stop the lab's notification and the hub's home page (``#sh-stop``) give the
reason; the lab's comes from the hub's page, so it is the service's own record. Along the
way: a reopened lab does not repeat a warning or alarm about a project where nothing of the
user's runs; no page shows more than two decimals of HKD; the GPU profile is disabled with a
reason; the usage page shows GET me's balance. Screenshots of each moment go to a folder
under the test's ``tmp_path`` and, if ``SUBSIDYHUB_SCREENSHOTS`` names a folder, there too.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from subsidyhub.money import format_money, parse_amount
from tests.e2e.conftest import finished_job
from tests.e2e.test_jupyterlab import log_in, poll_every_two_seconds, toast
from tests.hub.helpers import HubStack, HubUser, service_get

pytestmark = [pytest.mark.e2e, pytest.mark.hub, pytest.mark.slow]

CONFIG: dict[str, Any] = {
    "currency": "HKD",
    "subsidy_rate": 0.70,
    # An admin's stop leaves its user 40 s (20 by default): the lab must show the notice within
    # it even when a loaded machine slows its polls.
    "metering": {
        "interval_seconds": 1,
        "min_start_minutes": 0.05,
        "reconcile_seconds": 2,
        "admin_stop_grace_seconds": 40,
    },
    # 2 cores at 3,600/h: 7,200/h list, 5,040/h (1.40/s) from the subsidy at 70%.
    "prices": {"cpu_core": "3600.00", "memory_gib": "0", "gpu": {"h800": "36.00"}},
    "profiles": [
        {"slug": "cpu-small", "display_name": "CPU · 2 cores", "cpu": 2, "memory_gib": 1},
        {
            "slug": "gpu-1",
            "display_name": "PyTorch · 1× H800",
            "cpu": 2,
            "memory_gib": 1,
            "gpus": {"type": "h800", "count": 1},
        },
    ],
    "local": {"gpus": []},
}
SUBSIDY_PER_HOUR = Decimal(5040)
NOTE = "maintenance of the storage at noon"
# Three decimals or more of an amount in HKD: what no page may show.
OVERPRECISE = re.compile(r"HK\$-?[\d,]+\.\d{3,}")
STATUS = "#jp-subsidy-status"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubStack]:
    running = HubStack(tmp_path_factory.mktemp("why"), CONFIG)
    try:
        yield running.start()
    finally:
        running.close()


class Shots:
    """Screenshots of each moment, under the test's tmp_path and in $SUBSIDYHUB_SCREENSHOTS."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        extra = os.environ.get("SUBSIDYHUB_SCREENSHOTS")
        self.extra = Path(extra) if extra else None
        if self.extra is not None:
            self.extra.mkdir(parents=True, exist_ok=True)

    def __call__(self, page: Page, name: str) -> None:
        page.wait_for_timeout(600)  # a toast slides in
        path = self.folder / f"{name}.png"
        page.screenshot(path=path)
        if self.extra is not None:
            shutil.copy(path, self.extra / path.name)


def no_overprecise_money(page: Page, where: str) -> None:
    text = page.locator("body").inner_text()
    assert not OVERPRECISE.findall(text), (where, OVERPRECISE.findall(text))


def project(stack: HubStack, slug: str, amount: str, *members: str) -> None:
    since = (datetime.now(UTC) - timedelta(days=2)).isoformat(timespec="seconds")
    stack.admin("project", "create", slug, "--name", f"Lab {slug}")
    stack.admin("allocate", slug, amount, "--from", since, "--note", "grant")
    for member in members:
        stack.admin("member", "add", slug, member)


def open_lab(browser: Browser, stack: HubStack, user: str) -> Page:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, timezone_id="UTC")
    context.set_default_timeout(30_000)
    page = context.new_page()
    log_in(page, stack, user)
    page.goto(f"{stack.url}/user/{user}/lab")
    expect(page.locator(STATUS)).to_contain_text(user, timeout=60_000)
    return page


def hub_home_says(page: Page, stack: HubStack, *words: str) -> None:
    """The hub's home page explains the stop (it asks the service after the stop hook)."""
    stop = page.locator("#sh-stop")
    for _ in range(10):
        page.goto(f"{stack.url}/hub/home")
        if stop.count():
            break
        page.wait_for_timeout(1000)
    for word in words:
        expect(stop).to_contain_text(word)


def test_every_stop_is_explained_before_and_after(
    stack: HubStack, browser: Browser, tmp_path: Path
) -> None:
    shots = Shots(tmp_path / "why")
    tiny, cap, admin = "why-tiny", "why-cap", "why-admin"
    project(stack, tiny, "100", tiny, admin)  # ~70 s at 1.40/s; admin runs nothing there
    project(stack, cap, "100000", cap)
    stack.admin("quota", "set", cap, "--max-session-hours", "0.02")
    project(stack, admin, "100000", admin)
    # A job that cost 85,000 of subsidy: below 20% of the allocation, a warning holds.
    finished_job(stack, admin, "cpu-small", Decimal(85000) / SUBSIDY_PER_HOUR, ended_ago_ms=60_000)
    users = {name: HubUser(stack, name) for name in (tiny, admin, cap)}
    pages: list[Page] = []
    try:
        for name, user in users.items():
            poll_every_two_seconds(stack, name)
            response = user.start_server("cpu-small", name)
            assert response.status_code in (201, 202), response.text
        for user in users.values():
            user.wait_ready()

        # Before: the countdowns, each with its reason.
        tiny_lab = open_lab(browser, stack, tiny)
        cap_lab = open_lab(browser, stack, cap)
        pages += [tiny_lab, cap_lab]
        expect(toast(tiny_lab, "this server stops in")).to_contain_text(
            f"because project Lab {tiny}'s subsidy runs out"
        )
        shots(tiny_lab, "1-exhaustion-countdown")
        expect(toast(cap_lab, "this server stops in")).to_contain_text(
            f"because it reaches the longest session project Lab {cap} allows (0.02 h)"
        )
        shots(cap_lab, "3-session-cap-countdown")

        # The admin's lab: its project's warning once; nothing about why-tiny, where he runs
        # nothing; a second tab repeats neither.
        admin_lab = open_lab(browser, stack, admin)
        pages.append(admin_lab)
        expect(toast(admin_lab, "less than 20% of its allocation left")).to_have_count(1)
        admin_lab.locator(STATUS).click()
        expect(admin_lab.locator("#jp-subsidy-panel")).to_contain_text("HK$100,000.00")
        no_overprecise_money(admin_lab, "lab panel")
        shots(admin_lab, "4-warning-once")
        reopened = admin_lab.context.new_page()
        reopened.goto(f"{stack.url}/user/{admin}/lab")
        expect(reopened.locator(STATUS)).to_contain_text(admin, timeout=60_000)
        reopened.wait_for_timeout(5_000)  # a few polls
        expect(toast(reopened, "less than 20%")).to_have_count(0)
        for lab in (admin_lab, reopened):
            expect(toast(lab, tiny)).to_have_count(0)
        no_overprecise_money(reopened, "lab status bar")
        shots(reopened, "4-reopened-no-repeat")

        # An admin's stop: the note, while the server still runs (the grace) and after.
        stack.cli("server", "stop", admin, "--note", NOTE)
        during = toast(reopened, "Save your work now: this server stops in")
        expect(during).to_contain_text(
            f'because an administrator stopped it. The admin wrote: "{NOTE}"'
        )
        shots(reopened, "2-admin-stop-grace")
        after = toast(reopened, "UTC: an administrator stopped it")
        expect(after).to_contain_text(NOTE, timeout=60_000)
        expect(toast(reopened, "Save your work now")).to_have_count(0)
        shots(reopened, "2-admin-stop-after")
        hub_home_says(admin_lab, stack, "an administrator stopped it", NOTE)
        shots(admin_lab, "2-admin-stop-hub-home")

        # After the enforced stops: the lab and the hub's home page say why.
        expect(toast(tiny_lab, "Your server was stopped at")).to_contain_text(
            f"UTC: project Lab {tiny}'s subsidy ran out", timeout=90_000
        )
        shots(tiny_lab, "1-exhaustion-after")
        # JupyterLab's own "server unavailable" dialog says why too, not just "Restart?".
        dialog = tiny_lab.locator(".jp-Dialog-content")
        expect(dialog).to_contain_text("Your server has stopped", timeout=60_000)
        expect(dialog).to_contain_text(f"project Lab {tiny}'s subsidy ran out")
        expect(tiny_lab.get_by_text("Server unavailable or unreachable")).to_have_count(0)
        shots(tiny_lab, "1-exhaustion-dialog")
        expect(toast(cap_lab, "Your server was stopped at")).to_contain_text(
            "it reached the longest session", timeout=90_000
        )
        shots(cap_lab, "3-session-cap-after")
        hub_home_says(tiny_lab, stack, f"project Lab {tiny}'s subsidy ran out")
        shots(tiny_lab, "1-exhaustion-hub-home")
        hub_home_says(cap_lab, stack, "it reached the longest session")
        shots(cap_lab, "3-session-cap-hub-home")

        # The spawn page on a host without GPUs: the GPU profile is off, with a reason.
        admin_lab.goto(f"{stack.url}/hub/spawn")
        gpu = admin_lab.locator(f"fieldset[data-project={admin}] label.sh-card[data-profile=gpu-1]")
        expect(gpu.locator("input")).to_be_disabled()
        expect(gpu.locator(".sh-reason")).to_contain_text("The centre has 0 H800 GPUs")
        no_overprecise_money(admin_lab, "spawn page")
        shots(admin_lab, "6-spawn-no-gpus")

        # The usage page: GET me's balance, by the same rule (nothing runs: it stands still).
        me = service_get(stack, "me", users[admin].new_token("tests/e2e")).json()
        balance = next(p["balance"] for p in me["projects"] if p["slug"] == admin)
        admin_lab.goto(f"{stack.url}/services/subsidy/")
        shown = admin_lab.locator(f"#sh-project-{admin} [data-field=balance]")
        expect(shown).to_have_text(format_money(parse_amount(balance), "HKD"))
        no_overprecise_money(admin_lab, "usage page")
        shots(admin_lab, "7-usage-page")
    finally:
        for opened in pages:
            opened.context.close()
        for user in users.values():
            user.stop_server()
            user.close()


def test_the_admin_page_shows_money_to_the_cent(
    stack: HubStack, page: Page, tmp_path: Path
) -> None:
    shots = Shots(tmp_path / "why")
    page.goto(f"{stack.url}/hub/login")
    page.fill("#username_input", "admin")
    page.fill("#password_input", stack.admin_password)
    page.click("#login_submit")
    page.wait_for_url("**/hub/**")
    page.goto(f"{stack.url}/services/subsidy/admin/")
    expect(page.locator("h1")).to_have_text("Projects")
    expect(page.locator('tr[data-slug="demo"]')).to_contain_text("HK$")
    no_overprecise_money(page, "admin page")
    shots(page, "5-admin-page")
