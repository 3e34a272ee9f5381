"""The admin page in a real browser: a centre admin runs a project from it; others are kept out.

Real components: the ``subsidyhub up`` stack (JupyterHub with SubsidyHub's templates, the npm
configurable-http-proxy, the subsidy service as a managed service with its OAuth client,
``LocalGPUSpawner`` running JupyterLab), the hub's login form and OAuth, and Debian's Chromium
driven by Playwright. What the page claims to have written (or not) is checked in the
stack's own ledger database, and the stopped server through the hub's REST API.

Screenshots land in ``tests/e2e/artifacts/``: the projects table, a refused form, the
project view with a running server, the prices page and the 403 page.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from subsidyhub.ledger.db import Database
from subsidyhub.ledger.models import (
    Allocation,
    AuditEntry,
    Member,
    PriceVersion,
    Project,
    Reservation,
)
from tests.hub.helpers import HubStack, HubUser, poll

pytestmark = [pytest.mark.e2e, pytest.mark.hub]

ADMIN_PAGE = "/services/subsidy/admin/"
SLUG = "physics-lab"


def count(db: Database, model: type, *where: object) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def log_in(page: Page, stack: HubStack, user: str, password: str) -> None:
    page.goto(f"{stack.url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_url("**/hub/**")
    expect(page.locator("#login_submit")).to_have_count(0)


def refused(page: Page, form: str, message: str) -> None:
    expect(page.locator(f"{form} .sh-error")).to_contain_text(message)


def test_an_admin_runs_a_project_from_the_page(
    page: Page, stack: HubStack, ledger: Database, artifacts: Path
) -> None:
    log_in(page, stack, "admin", stack.admin_password)
    page.goto(f"{stack.url}/hub/home")
    page.click("#subsidyhub-admin-link")  # hub nav bar → the service → hub OAuth → the page
    page.wait_for_url(f"**{ADMIN_PAGE}")
    expect(page.locator("h1")).to_have_text("Projects")
    expect(page.locator("#sh-user")).to_have_text("Signed in as admin")
    demo = page.locator('tr[data-slug="demo"]')
    expect(demo).to_contain_text("HK$500.00")
    page.screenshot(path=artifacts / "admin-projects.png", full_page=True)

    # Create a project; a bad slug first is refused with the API's message and writes nothing.
    page.click("text=New project")
    page.fill("#sh-project-form [name=slug]", "Bad Slug!")
    page.fill("#sh-project-form [name=name]", "Physics teaching lab")
    page.click("#sh-project-form button")
    refused(page, "#sh-project-form", "slug")
    assert count(ledger, Project) == 1
    page.fill("#sh-project-form [name=slug]", SLUG)
    page.click("#sh-project-form button")
    page.wait_for_url(f"**#/projects/{SLUG}")
    expect(page.locator("h1")).to_contain_text("Physics teaching lab")

    # Allocation: a malformed amount and a correction without a note are refused, unwritten.
    form = "#sh-allocation-form"
    page.fill(f"{form} [name=amount]", "12.3.4")
    page.click(f"{form} button")
    refused(page, form, "field 'amount'")
    page.screenshot(path=artifacts / "admin-refused-allocation.png", full_page=True)
    page.fill(f"{form} [name=amount]", "-50.00")
    page.click(f"{form} button")
    refused(page, form, "a correction needs a note saying why")
    with ledger.read() as session:
        project_id = session.scalars(select(Project.id).where(Project.slug == SLUG)).one()
    assert count(ledger, Allocation, Allocation.project_id == project_id) == 0
    page.fill(f"{form} [name=amount]", "5000.00")
    page.fill(f"{form} [name=note]", "Term 1 grant")
    page.click(f"{form} button")
    expect(page.locator("#sh-allocations tbody")).to_contain_text("HK$5,000.00")
    expect(page.locator("#sh-left")).to_contain_text("HK$5,000.00")
    assert count(ledger, Allocation, Allocation.project_id == project_id) == 1

    # Quotas: not a number → the API's message and no change; then a real change.
    form = "#sh-quota-form"
    page.fill(f"{form} [name=project_max_gpus]", "two")
    page.fill(f"{form} [name=gpu_hours_per_week]", "40")
    page.click(f"{form} button")
    refused(page, form, "project_max_gpus 'two' is not a whole number of GPUs")
    with ledger.read() as session:
        project = session.get(Project, project_id)
        assert project is not None
        assert project.limits == {}
    page.fill(f"{form} [name=project_max_gpus]", "2")
    page.click(f"{form} button")
    expect(page.locator("#sh-quota tbody")).to_contain_text("40 hours")
    with ledger.read() as session:
        project = session.get(Project, project_id)
        assert project is not None
        assert project.limits == {"project_max_gpus": 2, "gpu_hours_per_week": 40 * 3_600_000}

    # Members: erin joins with a cap, then starts a server through the hub's API.
    form = "#sh-member-form"
    page.fill(f"{form} [name=username]", "erin")
    page.fill(f"{form} [name=member_max_gpus]", "1")
    page.click(f"{form} button")
    expect(page.locator('tr[data-member="erin"]')).to_contain_text("member")
    assert count(ledger, Member, Member.project_id == project_id) == 1
    with ledger.read() as session:
        erin_row = session.scalars(select(Member).where(Member.username == "erin")).one()
        assert erin_row.limits == {"member_max_gpus": 1}

    erin = HubUser(stack, "erin")
    try:
        started = erin.start_server("cpu-small", project=SLUG)
        assert started.status_code in (201, 202), started.text
        erin.wait_ready()
        server = page.locator("#sh-servers tbody tr[data-session]")
        # The page lists what the service answered when it loaded: reload until it is there.

        def listed() -> bool:
            page.reload()
            page.wait_for_selector("#sh-servers")
            return server.count() > 0

        poll(listed, timeout=60, what="erin's server listed on the project's page")
        expect(server).to_contain_text("erin")
        expect(server).to_contain_text("cpu-small")
        page.screenshot(path=artifacts / "admin-project.png", full_page=True)
        # Every part of the page is an element: no stray text (a "null") between the sections.
        stray = "[...document.getElementById('sh-main').childNodes].filter((n) => n.nodeType === 3 && n.textContent.trim()).length"
        assert page.evaluate(stray) == 0

        # Every project's running servers on one page, each with a Stop button.
        page.click(".sh-nav a[data-section=servers]")
        expect(page.locator("#sh-all-servers tbody tr[data-session]")).to_contain_text(SLUG)
        page.go_back()
        page.once("dialog", lambda dialog: dialog.accept("left running over the holidays"))
        server.locator("button", has_text="Stop").click()
        expect(page.locator("#sh-servers")).to_contain_text("No servers running")
        poll(lambda: erin.server() is None, timeout=60, what="erin's server stopped by the hub")
    finally:
        erin.stop_server()
        erin.close()

    audit = page.locator("#sh-audit tbody")
    for action in ("server.stop", "member.add", "quota.set", "allocation.add", "project.create"):
        expect(audit).to_contain_text(action)
    with ledger.read() as session:
        stop = session.scalars(select(AuditEntry).where(AuditEntry.action == "server.stop")).one()
    assert stop.actor == "admin"
    assert stop.after is not None and stop.after["reason"] == "admin"
    assert stop.after["note"] == "left running over the holidays"

    # Suspend it and lower its rate from the page (PATCH projects/SLUG).
    page.select_option("#sh-project-settings-form [name=status]", "suspended")
    page.fill("#sh-project-settings-form [name=subsidy_rate]", "0.5")
    page.click("#sh-project-settings-form button")
    expect(page.locator("h1")).to_contain_text("suspended")
    with ledger.read() as session:
        changed = session.scalars(select(Project).where(Project.slug == SLUG)).one()
    assert (changed.status, changed.subsidy_bp) == ("suspended", 5000)

    # Remove the member again.
    page.locator('tr[data-member="erin"] button', has_text="Remove").click()
    expect(page.locator('tr[data-member="erin"]')).to_have_count(0)
    assert count(ledger, Member, Member.project_id == project_id) == 0

    # Prices: a negative price is refused; a new version is added and listed.
    versions = count(ledger, PriceVersion)
    page.click("text=Prices")
    form = "#sh-price-form"
    page.fill(f"{form} [name=cpu_core]", "-1")
    page.click(f"{form} button")
    refused(page, form, "field 'cpu_core'")
    assert count(ledger, PriceVersion) == versions
    page.fill(f"{form} [name=cpu_core]", "0.60")
    page.fill(f"{form} [name=note]", "Power price rise")
    page.click(f"{form} button")
    expect(page.locator("#sh-price-versions tbody")).to_contain_text("Power price rise")
    assert count(ledger, PriceVersion) == versions + 1

    # A slipped digit (60.00 for 0.60) is refused with both prices, and a confirmation box
    # appears; ticking it applies the price on the second, deliberate click.
    confirm = page.locator(f"{form} .sh-confirm")
    expect(confirm).to_be_hidden()
    page.fill(f"{form} [name=cpu_core]", "60.00")
    page.fill(f"{form} [name=note]", "Typo?")
    page.click(f"{form} button")
    refused(page, form, "CPU core-h 0.60 → 60.00")
    assert count(ledger, PriceVersion) == versions + 1
    expect(confirm).to_be_visible()
    page.screenshot(path=artifacts / "admin-prices-confirm.png", full_page=True)
    confirm.locator("input").check()
    page.click(f"{form} button")
    expect(page.locator("#sh-price-versions tbody")).to_contain_text("Typo?")
    assert count(ledger, PriceVersion) == versions + 2
    page.screenshot(path=artifacts / "admin-prices.png", full_page=True)


def test_an_admin_reserves_gpus_from_the_capacity_calendar(
    page: Page, stack: HubStack, ledger: Database, artifacts: Path
) -> None:
    """The GPUs section: the type now, its 7-day calendar, a reservation made and cancelled."""
    log_in(page, stack, "admin", stack.admin_password)
    page.goto(f"{stack.url}{ADMIN_PAGE}#/gpus")
    card = page.locator('section[data-gpu-type="h800"]')
    # The type's GPUs (not "subsidy on idle GPUs", also a stat of the card).
    expect(card.locator(".sh-stat", has_text=re.compile(r"^\s*1\s*GPUs\s*$"))).to_have_count(1)
    calendar = card.locator("table.sh-calendar")
    expect(calendar.locator("tbody tr")).to_have_count(7)
    expect(calendar.locator("tbody tr").first.locator("td")).to_have_count(24)
    form = "#sh-reservation-form"
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT14:00:00Z")
    after = tomorrow.replace("T14:", "T16:")
    # Two GPUs of a type the centre has one of: refused with the API's words, nothing written.
    page.fill(f"{form} [name=project]", "demo")
    page.fill(f"{form} [name=gpus]", "2")
    page.fill(f"{form} [name=starts]", tomorrow)
    page.fill(f"{form} [name=ends]", after)
    page.click(f"{form} button")
    refused(page, form, "the centre has 1 H800 GPUs, reserve 1 to 1")
    assert count(ledger, Reservation) == 0
    page.fill(f"{form} [name=gpus]", "1")
    page.fill(f"{form} [name=weeks]", "13")
    page.click(f"{form} button")
    row = page.locator("#sh-reservations tr[data-reservation]")
    expect(row).to_contain_text("1 × H800")
    expect(row).to_contain_text("13")
    # Tomorrow 14:00 shows as reserved (nothing free for anyone else).
    hour = page.locator(f'table.sh-calendar td[title^="{tomorrow[:10]} 14:00"]')
    expect(hour).to_have_class("sh-full")
    page.screenshot(path=artifacts / "admin-gpus.png", full_page=True)
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button").click()
    expect(page.locator("#sh-reservations")).to_contain_text("No reservations.")
    with ledger.read() as session:
        assert session.scalars(select(Reservation.cancelled_by)).one() == "admin"


def test_a_user_who_is_not_an_admin_gets_a_403_page(
    page: Page, stack: HubStack, artifacts: Path
) -> None:
    log_in(page, stack, "bob", stack.password)
    page.goto(f"{stack.url}/hub/home")
    expect(page.locator("#subsidyhub-admin-link")).to_have_count(0)
    response = page.goto(f"{stack.url}{ADMIN_PAGE}")
    assert response is not None and response.status == 403
    expect(page.locator("#sh-forbidden h1")).to_contain_text("Not a SubsidyHub admin")
    expect(page.locator("#sh-forbidden")).to_contain_text("signed in as bob")
    page.screenshot(path=artifacts / "admin-forbidden.png", full_page=True)


def test_services_subsidy_opens_the_usage_page(
    page: Page, stack: HubStack, artifacts: Path
) -> None:
    # What the hub's "Services → subsidy" menu entry opens: a page, not the API's JSON 404.
    log_in(page, stack, "alice", stack.password)
    page.goto(f"{stack.url}/services/subsidy/")
    page.wait_for_url("**/services/subsidy/")
    expect(page.locator("h1")).to_have_text("Your usage")
    expect(page.locator("#sh-user")).to_have_text("alice")
    demo = page.locator("#sh-project-demo")
    expect(demo.locator('[data-field="available"]')).to_contain_text("HK$")
    expect(page.locator("#sh-servers")).to_be_visible()
    expect(page.locator("#sh-stops")).to_be_visible()
    expect(page.locator("#sh-spending table")).to_be_visible()
    expect(page.locator("#sh-admin")).to_be_hidden()
    expect(page.locator("body")).not_to_contain_text("--")  # no command-line flags in its words
    expect(page.locator("#sh-main")).not_to_contain_text("null")
    page.screenshot(path=artifacts / "usage-page.png", full_page=True)


def test_a_lecturer_reserves_gpus_for_a_class_from_the_usage_page(
    page: Page, stack: HubStack, ledger: Database, artifacts: Path
) -> None:
    """A course's lecturer (its manager) may reserve within the limit the admins set, from the
    usage page; without that limit the page offers nothing to reserve with."""
    stack.admin("project", "create", "comp3340", "--name", "COMP3340", "--kind", "course")
    stack.admin("member", "add", "comp3340", "lena", "--role", "manager")
    log_in(page, stack, "lena", stack.password)
    page.goto(f"{stack.url}/services/subsidy/")
    expect(page.locator("h1")).to_have_text("Your usage")
    expect(page.locator("#sh-reservations")).to_have_count(0)
    expect(page.locator("#sh-project-comp3340")).to_contain_text("only admins reserve")
    stack.admin("quota", "set", "comp3340", "--reservable-gpus", "1")
    card = page.locator("#sh-reservations-comp3340")

    def offered() -> bool:
        page.reload()  # GET me is kept for a second: the CLI wrote in another process
        page.wait_for_selector("#sh-projects")
        return card.count() > 0

    poll(offered, timeout=20, what="the reservation form offered")
    expect(card).to_contain_text("you may reserve 1 GPUs at once")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    card.locator("[name=gpus]").fill("2")
    card.locator("[name=starts]").fill(f"{tomorrow}T14:00")
    card.locator("[name=ends]").fill(f"{tomorrow}T16:00")
    card.locator("[name=weeks]").fill("13")
    card.locator("[name=note]").fill("Tuesday labs")
    card.locator("button[type=submit]").click()
    # Two GPUs of a type the centre has one of: the API's words, nothing written.
    expect(card.locator(".sh-error")).to_contain_text("reserve 1 to 1")
    assert count(ledger, Reservation, Reservation.created_by == "lena") == 0
    card.locator("[name=gpus]").fill("1")
    card.locator("button[type=submit]").click()
    card = page.locator("#sh-reservations-comp3340")
    expect(card.locator("tbody")).to_contain_text("weekly, 13 weeks")
    expect(card.locator("tbody")).to_contain_text(f"{tomorrow} 14:00:00 UTC")
    page.screenshot(path=artifacts / "usage-reservations.png", full_page=True)
    with ledger.read() as session:
        made = session.scalars(select(Reservation).where(Reservation.created_by == "lena")).one()
    assert (made.created_by, made.gpu_count, made.weeks, made.note) == (
        "lena",
        1,
        13,
        "Tuesday labs",
    )
    page.once("dialog", lambda dialog: dialog.accept())
    card.locator("tbody button", has_text="Cancel").click()
    expect(page.locator("#sh-reservations-comp3340 tbody")).to_contain_text("No reservations yet.")
