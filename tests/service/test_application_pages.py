"""The pages' side of applications (issue 18): what the usage page's and the admin page's
scripts load, and the calls they make through a browser session.

Real components as in ``test_usage_page.py``: the session's JupyterHub, its login form and
OAuth, the service app. Both pages are plain script modules with no build step; the usage
page imports the admin page's ``format.js`` and ``plan.js`` (the plan vs actual table both
pages draw), so each must reach anyone signed in, as JavaScript, or a browser refuses the
whole module. The applications section's calls go with the session cookie and the CSRF
header: without the header nothing is written; with it a researcher's draft is made, listed,
read with its history and submitted; a grant's plan is for the project's managers.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from subsidyhub.ledger.models import Application
from subsidyhub.service.browser_auth import CSRF_COOKIE, CSRF_HEADER
from subsidyhub.testing.hub import TestHub

from .helpers import Service, seed
from .test_browser_auth import sign_in

pytestmark = pytest.mark.hub

DRAFT = {
    "kind": "new",
    "slug": "coastal-flood",
    "title": "Coastal flood forecasting",
    "organisation": "University of Hong Kong",
    "abstract": "Storm surge forecasts.",
    "amount": "10000.00",
    "gpu_hours": {"h800": 200},
    "starts": "2026-12-01",
    "ends": "2027-06-01",
    "team": ["bob"],
    "plan": [],
}


def page_call(service: Service, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """A call as the page's script makes it: the session cookie and the CSRF header."""
    csrf = service.http.cookies.get(CSRF_COOKIE)
    assert csrf
    return service.http.request(method, path, headers={CSRF_HEADER: csrf}, **kwargs)


def applications(service: Service) -> int:
    with service.db.read() as session:
        return session.scalar(select(func.count()).select_from(Application)) or 0


@pytest.mark.parametrize(
    "asset",
    ["static/usage.js", "admin/static/format.js", "admin/static/plan.js", "admin/static/admin.js"],
)
def test_the_pages_modules_are_served_as_javascript(
    browser: Service, jupyterhub: TestHub, asset: str
) -> None:
    assert sign_in(browser, jupyterhub, "alice", "").status_code == 302
    response = browser.http.get(asset)
    assert response.status_code == 200, asset
    assert response.headers["content-type"].split(";")[0] in (
        "text/javascript",
        "application/javascript",
    )


def test_the_usage_page_imports_the_shared_plan_table(
    browser: Service, jupyterhub: TestHub
) -> None:
    sign_in(browser, jupyterhub, "alice", "")
    script = browser.http.get("static/usage.js").text
    assert 'from "../admin/static/plan.js"' in script
    assert 'from "./plan.js"' in browser.http.get("admin/static/admin.js").text


def test_a_researcher_applies_through_the_browser_session(
    browser: Service, jupyterhub: TestHub
) -> None:
    seed(browser)
    sign_in(browser, jupyterhub, "alice", "")
    # Without the CSRF header (a forged form elsewhere): refused, nothing written.
    forged = browser.http.post("api/v1/applications", json=DRAFT)
    assert forged.status_code == 403
    assert applications(browser) == 0

    made = page_call(browser, "POST", "api/v1/applications", json=DRAFT)
    assert made.status_code == 201, made.text
    number = made.json()["id"]
    listed = page_call(browser, "GET", "api/v1/applications").json()["applications"]
    assert [(a["id"], a["state"], a["applicant"]) for a in listed] == [(number, "draft", "alice")]
    one = page_call(browser, "GET", f"api/v1/applications/{number}").json()
    assert [e["kind"] for e in one["events"]] == ["created"]

    # The page's "Save draft" on a draft is a PUT; its "Submit" then makes it read-only.
    edited = page_call(
        browser, "PUT", f"api/v1/applications/{number}", json=DRAFT | {"amount": "12000.00"}
    )
    assert edited.status_code == 200 and edited.json()["amount"] == "12000.00"
    submitted = page_call(browser, "POST", f"api/v1/applications/{number}/submit")
    assert submitted.json()["state"] == "submitted"
    frozen = page_call(browser, "PUT", f"api/v1/applications/{number}", json=DRAFT)
    assert frozen.status_code == 409 and "read-only" in frozen.json()["message"]
    commented = page_call(
        browser, "POST", f"api/v1/applications/{number}/comments", json={"body": "Any news?"}
    )
    assert commented.status_code == 201
    assert commented.json()["events"][-1]["body"] == "Any news?"

    # The plan vs actual card: alice is a member of alpha, not a manager.
    assert page_call(browser, "GET", "api/v1/projects/alpha/burn-plan").status_code == 403


def test_a_manager_reads_the_plan_of_their_project(browser: Service, jupyterhub: TestHub) -> None:
    seed(browser)
    sign_in(browser, jupyterhub, "bob", "")
    plan = page_call(browser, "GET", "api/v1/projects/alpha/burn-plan")
    assert plan.status_code == 200, plan.text
    # alpha's allocation has no end, so it is no grant with a plan: the page shows no card.
    assert plan.json() == {"positions": []}
    assert page_call(browser, "GET", "api/v1/projects/alpha/allocations").status_code == 200
