"""The usage page at the service's root ("Services → subsidy"): signed in through the hub.

Real components as in ``test_browser_auth.py``: the session's JupyterHub, its login form and
OAuth, the service app. The page's script reads GET me, GET me/spending and, for managers,
GET projects/SLUG/member-use; those answers are checked here for the people who read them.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from subsidyhub.service.browser_auth import CSRF_COOKIE, CSRF_HEADER, NEXT_COOKIE
from subsidyhub.testing.hub import TestHub

from .helpers import Service, seed
from .test_browser_auth import CALLBACK, sign_in

pytestmark = pytest.mark.hub


def read(service: Service, path: str) -> httpx.Response:
    csrf = service.http.cookies.get(CSRF_COOKIE)
    assert csrf
    return service.http.get(path, headers={CSRF_HEADER: csrf})


def test_a_member_signs_in_at_the_root_and_comes_back_to_the_usage_page(
    browser: Service, jupyterhub: TestHub
) -> None:
    seed(browser)
    start = browser.http.get("")
    assert start.status_code == 302
    assert urlsplit(start.headers["location"]).path == "/hub/api/oauth2/authorize"
    assert any(
        v.startswith(f"{NEXT_COOKIE}=") and f"path={CALLBACK}" in v.lower()
        for v in start.headers.get_list("set-cookie")
    )
    browser.http.cookies.clear()

    signed_in = sign_in(browser, jupyterhub, "alice", "")
    assert signed_in.status_code == 302, signed_in.text
    assert signed_in.headers["location"] == "/services/subsidy/"
    page = browser.http.get("")
    assert page.status_code == 200
    assert "<title>Your usage · SubsidyHub</title>" in page.text
    assert page.headers["cache-control"] == "no-store"
    for asset in ("static/usage.js", "admin/static/format.js", "admin/static/admin.css"):
        assert browser.http.get(asset).status_code == 200, asset
    # What the script reads: alice's own view, and not her project's members.
    me = read(browser, "api/v1/me").json()
    assert [p["slug"] for p in me["projects"]] == ["alpha"]
    assert me["projects"][0]["available"] == "500.00"
    assert read(browser, "api/v1/me/spending?days=14").status_code == 200
    assert read(browser, "api/v1/projects/alpha/member-use").status_code == 403


def test_a_manager_sees_the_members_use(browser: Service, jupyterhub: TestHub) -> None:
    seed(browser)
    browser.admit("alice", "gpu-1", "alpha")
    assert sign_in(browser, jupyterhub, "bob", "").headers["location"] == ("/services/subsidy/")
    used = read(browser, "api/v1/projects/alpha/member-use")
    assert used.status_code == 200, used.text
    members = {m["username"]: m for m in used.json()["members"]}
    assert members["alice"]["running_servers"] == 1
    assert members["bob"]["running_servers"] == 0
    assert members["alice"]["usage"]["member_max_gpus"] == 1  # gpu-1: one GPU, running
    assert members["bob"]["usage"]["member_max_gpus"] == 0
    assert read(browser, "api/v1/projects/beta/member-use").status_code == 403


def test_the_admin_page_still_comes_back_to_itself(browser: Service, jupyterhub: TestHub) -> None:
    signed_in = sign_in(browser, jupyterhub, "centre-admin", "admin/")
    assert signed_in.headers["location"] == "/services/subsidy/admin/"
