"""Issue 18 in the browser: an application from the usage page to a running server.

Real components: the ``subsidyhub up`` stack (JupyterHub with its login form and OAuth, the
npm configurable-http-proxy, the subsidy service with its pages, ``LocalGPUSpawner`` running
JupyterLab) and Debian's Chromium under Playwright. A researcher applies for a project on the
usage page (a refused slug first, then a draft, edited and submitted); the centre's admin opens
it under Applications, comments, approves it at a 75% subsidy rate with a smaller amount and
a quota; the researcher's page then shows the decision, the new project and its grant's plan
against spending, and a server started for the project is charged to it. The admin sets the
grant's plan per month from the project's page, reached from the scheme's ranking; the
researcher then reads the under-spend warning. What the pages claim is checked in the
stack's own ledger.

Screenshots land in ``tests/e2e/artifacts/``: the submitted application, the admin's
queue, the approval, the applicant's approved application and plan, the scheme and the
project's plan vs actual.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from subsidyhub.ledger.db import Database
from subsidyhub.ledger.models import (
    Allocation,
    Application,
    Member,
    PlanMonth,
    Project,
    SpawnSession,
)
from tests.e2e.test_admin_page import count, log_in
from tests.hub.helpers import HubStack, HubUser, poll

pytestmark = [pytest.mark.e2e, pytest.mark.hub]

USAGE_PAGE = "/services/subsidy/"
ADMIN_PAGE = "/services/subsidy/admin/"
APPLICANT = "priya"
SLUG = "coastal-flood"
TITLE = "Coastal flood forecasting with graph networks"
FORM = "#sh-application-form"


def months_between(start: datetime, end: datetime) -> list[str]:
    """The UTC months of [start, end), as "YYYY-MM"."""
    last = end - timedelta(microseconds=1)
    months, year, month = [], start.year, start.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def reload_until(page: Page, selector: str, what: str, has_text: str | None = None) -> None:
    """Reload the usage page until ``selector`` is there (GET me is kept for a second, and a
    decision is made in another browser)."""
    found = page.locator(selector, has_text=has_text)

    def there() -> bool:
        page.reload()
        page.wait_for_selector("#sh-applications")
        return found.count() > 0

    poll(there, timeout=30, what=what)


def test_an_application_from_the_usage_page_to_a_running_server(
    page: Page, browser: Browser, stack: HubStack, ledger: Database, artifacts: Path
) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    # The period began 45 days ago, so under-spend is judged already (after 30 days).
    starts, ends = today - timedelta(days=45), today + timedelta(days=120)
    starts_text, ends_text = starts.strftime("%Y-%m-%d"), ends.strftime("%Y-%m-%d")

    # -- the researcher applies on the usage page ---------------------------------------
    log_in(page, stack, APPLICANT, stack.password)
    page.goto(f"{stack.url}{USAGE_PAGE}")
    expect(page.locator("h1")).to_have_text("Your usage")
    section = page.locator("#sh-applications")
    expect(section).to_contain_text("No applications yet.")
    expect(page.locator("#sh-apply-heading")).to_have_text("Apply for a project")
    page.fill(f"{FORM} [name=title]", TITLE)
    page.fill(f"{FORM} [name=slug]", "demo")  # taken: the service's own words, nothing written
    page.fill(f"{FORM} [name=organisation]", "University of Hong Kong")
    page.fill(f"{FORM} [name=abstract]", "Storm surge forecasts for the Pearl River delta.")
    page.fill(f"{FORM} [name=amount]", "10000.00")
    page.fill(f"{FORM} [name='gpu:h800']", "200")
    page.fill(f"{FORM} [name=starts]", starts_text)
    page.fill(f"{FORM} [name=ends]", ends_text)
    page.fill(f"{FORM} [name=team]", "tomas")
    page.fill(f"{FORM} [name=email]", "priya@hku.example")
    page.click(f"{FORM} button[data-action=save]")
    expect(page.locator(f"{FORM} .sh-error")).to_contain_text("a project demo exists already")
    assert count(ledger, Application) == 0

    page.fill(f"{FORM} [name=slug]", SLUG)
    page.click(f"{FORM} button[data-action=save]")
    card = section.locator("article[data-state]", has_text=TITLE)
    expect(card).to_have_attribute("data-state", "draft")
    expect(card.locator("[data-field=state]")).to_have_text("draft")

    # The draft is edited (a larger amount, a plan per quarter) and submitted: read-only.
    card.locator("button[data-action=edit]").click()
    expect(page.locator("#sh-apply-heading")).to_contain_text("Edit your draft")
    expect(page.locator(f"{FORM} [name=slug]")).to_have_value(SLUG)
    expect(page.locator(f"{FORM} [name=starts]")).to_have_value(starts_text)
    page.fill(f"{FORM} [name=amount]", "12000.00")
    page.fill(f"{FORM} [name=plan]", "3000.00, 9000.00")
    page.click(f"{FORM} button[data-action=submit]")
    card = section.locator("article[data-state]", has_text=TITLE)
    expect(card).to_have_attribute("data-state", "submitted")
    expect(card).to_contain_text("read-only")
    expect(card.locator("button[data-action=edit]")).to_have_count(0)
    expect(card.locator("[data-field=amount]")).to_have_text("HK$12,000.00")
    expect(card.locator("[data-field=plan]")).to_contain_text("Q2 HK$9,000.00")
    expect(card.locator(".sh-history")).to_contain_text("You submitted it")
    expect(page.locator("#sh-main")).not_to_contain_text("null")
    expect(page.locator("body")).not_to_contain_text("--")  # no command-line flags in its words
    card.screenshot(path=artifacts / "usage-application-submitted.png")
    with ledger.read() as session:
        application = session.scalars(select(Application)).one()
        assert (application.state, application.amount_micro, application.team) == (
            "submitted",
            12_000_000_000,
            ["tomas"],
        )
        number = application.id

    # -- the admin decides on the admin page ----------------------------------------------
    admin_context = browser.new_context(viewport={"width": 1400, "height": 900}, timezone_id="UTC")
    admin_context.set_default_timeout(30_000)
    admin = admin_context.new_page()
    priya = HubUser(stack, APPLICANT)
    try:
        log_in(admin, stack, "admin", stack.admin_password)
        admin.goto(f"{stack.url}{ADMIN_PAGE}#/applications")
        expect(admin.locator(".sh-nav a.sh-current")).to_have_text("Applications")
        expect(admin.locator(".sh-tabs a.sh-current")).to_have_text("submitted (1)")
        row = admin.locator(f'tr[data-application="{number}"]')
        expect(row).to_contain_text(TITLE)
        expect(row).to_contain_text("HK$12,000.00")
        admin.screenshot(path=artifacts / "admin-applications.png", full_page=True)
        row.click()
        admin.wait_for_url(f"**#/applications/{number}")
        expect(admin.locator("h1")).to_contain_text(TITLE)
        expect(admin.locator("#sh-application")).to_contain_text("Storm surge forecasts")
        expect(admin.locator("#sh-application")).to_contain_text("tomas")
        # Every part of the view is an element: no stray text (a "null") between them.
        stray = "[...document.getElementById('sh-main').childNodes].filter((n) => n.nodeType === 3 && n.textContent.trim()).length"
        assert admin.evaluate(stray) == 0

        admin.fill("#sh-comment-form [name=body]", "Approved at a lower amount for the first year.")
        admin.click("#sh-comment-form button")
        expect(admin.locator("#sh-history")).to_contain_text("lower amount for the first year")

        # A rate beyond the scheme's cap is refused with the service's words; nothing made.
        form = "#sh-approve-form"
        expect(admin.locator(f"{form} [name=subsidy_rate]")).to_have_value("0.70")
        expect(admin.locator(f"{form} [name=amount]")).to_have_value("12000.00")
        expect(admin.locator(f"{form} [name=valid_until]")).to_have_value(ends_text)
        admin.fill(f"{form} [name=subsidy_rate]", "0.95")
        admin.click(f"{form} button")
        expect(admin.locator(f"{form} .sh-error")).to_contain_text("out of range")
        assert count(ledger, Project, Project.slug == SLUG) == 0
        admin.fill(f"{form} [name=subsidy_rate]", "0.75")
        admin.fill(f"{form} [name=amount]", "10000.00")
        admin.fill(f"{form} [name='quota:gpu_hours_per_week']", "40")
        admin.fill(f"{form} [name=note]", "Welcome to the scheme.")
        admin.screenshot(path=artifacts / "admin-application-approve.png", full_page=True)
        admin.click(f"{form} button")
        expect(admin.locator("#sh-decision")).to_contain_text(f"project {SLUG}")
        expect(admin.locator("#sh-decided-rate")).to_contain_text("75%")
        expect(admin.locator("#sh-approve-form")).to_have_count(0)
        assert admin.evaluate(stray) == 0
        admin.screenshot(path=artifacts / "admin-application-approved.png", full_page=True)
        with ledger.read() as session:
            project = session.scalars(select(Project).where(Project.slug == SLUG)).one()
            assert (project.name, project.subsidy_bp) == (TITLE, 7500)
            assert project.limits == {"gpu_hours_per_week": 40 * 3_600_000}
            roles = {
                m.username: m.role
                for m in session.scalars(select(Member).where(Member.project_id == project.id))
            }
            assert roles == {APPLICANT: "manager", "tomas": "member"}
            grant = session.scalars(
                select(Allocation).where(Allocation.project_id == project.id)
            ).one()
            assert grant.amount_micro == 10_000_000_000
            assert grant.valid_until_ms == int(ends.timestamp() * 1000)
            project_id, grant_id = project.id, grant.id

        # -- the researcher reads the decision, the project and its plan --------------------
        reload_until(page, f"#sh-project-{SLUG}", "the new project on the usage page")
        card = section.locator(f"#sh-application-{number}")
        expect(card).to_have_attribute("data-state", "approved")
        decision = card.locator("[data-field=decision]")
        expect(decision.locator("[data-field=subsidy_rate]")).to_have_text("75% of the list price")
        expect(decision.locator("[data-field=approved_amount]")).to_have_text("HK$10,000.00")
        expect(decision.locator("[data-field=period]")).to_have_text(
            f"{starts_text} to {ends_text}"
        )
        expect(decision).to_contain_text("Welcome to the scheme.")
        expect(card.locator(".sh-history")).to_contain_text("lower amount for the first year")
        expect(card.locator(".sh-history")).to_contain_text("admin approved it")
        plan = page.locator(f"#sh-plan-{SLUG}")
        expect(plan.locator("[data-field=granted]")).to_have_text("HK$10,000.00")
        months = months_between(starts, ends)
        expect(plan.locator("tbody tr")).to_have_count(len(months))
        expect(plan.locator(f'tr[data-month="{months[0]}"] svg rect')).to_have_count(2)
        # A manager of the project now: top-ups and extensions are offered.
        page.screenshot(path=artifacts / "usage-application-approved.png", full_page=True)
        more = page.locator(f'#sh-apply-more [data-project="{SLUG}"]')
        more.locator("button[data-apply=top_up]").click()
        expect(page.locator("#sh-apply-heading")).to_have_text(f"Apply for a top-up of {TITLE}")
        expect(page.locator(f"{FORM} [name=title]")).to_have_value(f"Top-up of {TITLE}")
        expect(page.locator(f"{FORM} [name=slug]")).to_be_hidden()
        page.locator("#sh-apply").screenshot(path=artifacts / "usage-apply-top-up.png")

        # -- a server charged to the new project -----------------------------------------
        started = priya.start_server("cpu-small", SLUG)
        assert started.status_code in (201, 202), started.text
        priya.wait_ready()
        with ledger.read() as session:
            running = session.scalars(
                select(SpawnSession).where(
                    SpawnSession.username == APPLICANT, SpawnSession.stopped_ms.is_(None)
                )
            ).one()
            assert running.project_id == project_id
        reload_until(page, "#sh-servers tbody tr", "the server on the usage page", has_text=TITLE)
        priya.stop_server()

        # -- the admin sets the grant's plan from the scheme's ranking ----------------------
        admin.click(".sh-nav a[data-section=scheme]")
        ranked = admin.locator(f'#sh-ranking tr[data-slug="{SLUG}"]')
        expect(ranked).to_contain_text("HK$10,000.00")
        expect(admin.locator("#sh-scheme-stats")).to_contain_text("HK$10,000.00")
        admin.screenshot(path=artifacts / "admin-scheme.png", full_page=True)
        ranked.locator("a").click()
        admin.wait_for_url(f"**#/projects/{SLUG}")
        # The grant leads back to the application that made it.
        expect(admin.locator("#sh-allocations a.sh-application-link")).to_have_attribute(
            "href", f"#/applications/{number}"
        )
        form = "#sh-plan-form"
        expect(admin.locator("#sh-plan")).to_contain_text("Plan vs actual")
        first, second = months[0], months[1]
        admin.fill(f"{form} [name=months]", f"{first} 4000.00\n{second} 5000.00")
        admin.click(f"{form} button")
        expect(admin.locator(f"{form} .sh-error")).to_contain_text("make the months add up")
        assert count(ledger, PlanMonth, PlanMonth.allocation_id == grant_id) == 0
        admin.fill(f"{form} [name=months]", f"{first} 4000.00\n{second} 6000.00")
        admin.click(f"{form} button")
        expect(
            admin.locator(f'#sh-plan tr[data-month="{first}"] [data-field=planned]')
        ).to_have_text("HK$4,000.00")
        admin.locator("#sh-plan").screenshot(path=artifacts / "admin-project-plan.png")
        with ledger.read() as session:
            stored = {
                month: amount
                for month, amount in session.execute(
                    select(PlanMonth.month, PlanMonth.amount_micro).where(
                        PlanMonth.allocation_id == grant_id
                    )
                )
            }
        assert stored == {first: 4_000_000_000, second: 6_000_000_000}
    finally:
        with contextlib.suppress(Exception):
            priya.stop_server()
        priya.close()
        admin_context.close()

    # Nothing spent against a plan that front-loads the grant: the manager is warned.
    reload_until(page, f"#sh-plan-{SLUG} .sh-warning", "the under-plan warning")
    warning = page.locator(f"#sh-plan-{SLUG} [data-field=message]")
    expect(warning).to_contain_text("under plan")
    expect(warning).to_contain_text("left unused")
    page.locator(f"#sh-plan-{SLUG}").screenshot(path=artifacts / "usage-plan.png")
