"""The admin page's sign-in through the hub's OAuth, cookie sessions with CSRF, and the Stop API.

Real components: the session's JupyterHub (its ``subsidy`` OAuth client is configured as
``hubplugin/config.py`` configures it: no confirmation page, ``oauth_client_allowed_scopes``
of the admin scope and ``admin:users``), people logged in through its login form, the codes
its ``/hub/api/oauth2/authorize`` hands out and its token endpoint; the service app on SQLite
and PostgreSQL. The browser's part (following redirects, keeping cookies) is played by httpx.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from subsidyhub.ledger.models import AuditEntry, Project, SpawnSession
from subsidyhub.service.browser_auth import (
    CSRF_COOKIE,
    CSRF_HEADER,
    SESSION_COOKIE,
    STATE_COOKIE,
)
from subsidyhub.testing.hub import CENTRE_ADMIN, HUB_ADMIN, TestHub

from .helpers import Service, seed

pytestmark = pytest.mark.hub

CALLBACK = "/services/subsidy/oauth_callback"


def hub_code(hub: TestHub, username: str, state: str) -> str:
    """Log in to the hub through its login form, then ask it to authorize the service."""
    with httpx.Client(base_url=hub.url, timeout=30) as browser:
        browser.get("hub/login").raise_for_status()
        xsrf = browser.cookies.get("_xsrf")
        login = browser.post(
            "hub/login", data={"username": username, "password": "x", "_xsrf": xsrf}
        )
        assert login.status_code == 302, login.text
        answer = browser.get(
            "hub/api/oauth2/authorize",
            params={
                "client_id": "service-subsidy",
                "redirect_uri": CALLBACK,
                "response_type": "code",
                "state": state,
            },
        )
    assert answer.status_code == 302, answer.text
    target = urlsplit(answer.headers["location"])
    assert target.path == CALLBACK
    query = parse_qs(target.query)
    assert query["state"] == [state]
    return query["code"][0]


def sign_in(service: Service, hub: TestHub, username: str, page: str = "admin/") -> httpx.Response:
    """The whole dance: the page sends us to the hub, the hub's code comes back to the callback."""
    start = service.http.get(page)
    assert start.status_code == 302
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    code = hub_code(hub, username, state)
    return service.http.get("oauth_callback", params={"code": code, "state": state})


def cookie_header(response: httpx.Response, name: str) -> str:
    found = [v for v in response.headers.get_list("set-cookie") if v.startswith(f"{name}=")]
    assert len(found) == 1, response.headers.get_list("set-cookie")
    return found[0].lower()


def count(service: Service, model: type) -> int:
    with service.db.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_no_session_sends_the_browser_to_the_hub(browser: Service) -> None:
    response = browser.http.get("admin/")
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert location.path == "/hub/api/oauth2/authorize"
    query = parse_qs(location.query)
    assert query["client_id"] == ["service-subsidy"]
    assert query["redirect_uri"] == [CALLBACK]
    assert query["response_type"] == ["code"]
    state_cookie = cookie_header(response, STATE_COOKIE)
    assert state_cookie.startswith(f"{STATE_COOKIE}={query['state'][0].lower()};")
    assert "httponly" in state_cookie
    assert f"path={CALLBACK}" in state_cookie
    assert "samesite=lax" in state_cookie
    # Plain http here; behind TLS the cookie is Secure.
    assert "secure" not in state_cookie
    secure = browser.http.get("admin/", headers={"X-Forwarded-Proto": "https"})
    assert "secure" in cookie_header(secure, STATE_COOKIE)


def test_hub_admin_signs_in_and_uses_the_api_with_cookie_and_csrf(
    browser: Service, jupyterhub: TestHub
) -> None:
    signed_in = sign_in(browser, jupyterhub, HUB_ADMIN)
    assert signed_in.status_code == 302, signed_in.text
    assert signed_in.headers["location"] == "/services/subsidy/admin/"
    session_cookie = cookie_header(signed_in, SESSION_COOKIE)
    assert "httponly" in session_cookie
    assert "path=/services/subsidy/" in session_cookie
    assert "samesite=lax" in session_cookie
    assert "httponly" not in cookie_header(signed_in, CSRF_COOKIE)  # the page's script reads it
    token = browser.http.cookies.get(SESSION_COOKIE)
    csrf = browser.http.cookies.get(CSRF_COOKIE)
    assert token and csrf

    page = browser.http.get("admin/")
    assert page.status_code == 200
    assert "<title>SubsidyHub admin</title>" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert token not in page.text
    assert browser.http.get("admin/static/admin.js").status_code == 200

    # Reads and writes need the CSRF header; with it the hub admin's OAuth token is an admin.
    no_header = browser.http.get("api/v1/projects")
    assert no_header.status_code == 403
    assert CSRF_HEADER in no_header.json()["message"]
    wrong = browser.http.post(
        "api/v1/projects", json={"slug": "csrf", "name": "Forged"}, headers={CSRF_HEADER: "x"}
    )
    assert wrong.status_code == 403
    assert count(browser, Project) == 0

    created = browser.http.post(
        "api/v1/projects",
        json={"slug": "web", "name": "Made on the page"},
        headers={CSRF_HEADER: csrf},
    )
    assert created.status_code == 201, created.text
    assert token not in created.text
    listed = browser.http.get("api/v1/projects", headers={CSRF_HEADER: csrf})
    assert [p["slug"] for p in listed.json()["projects"]] == ["web"]
    with browser.db.read() as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "project.create")
        ).one()
    assert entry.actor == HUB_ADMIN

    # An Authorization header works as before, cookie or not, and needs no CSRF header.
    header = browser.http.get(
        "api/v1/me", headers={"Authorization": f"token {browser.tokens['alice']}"}
    )
    assert header.status_code == 200
    assert header.json()["user"] == "alice"

    out = browser.http.get("logout")
    assert out.status_code == 302
    assert out.headers["location"] == "/hub/logout"
    assert browser.http.cookies.get(SESSION_COOKIE) is None
    assert browser.http.get("admin/").status_code == 302


def test_custom_scope_holder_is_an_admin_and_a_user_gets_a_403_page(
    browser: Service, jupyterhub: TestHub
) -> None:
    assert sign_in(browser, jupyterhub, CENTRE_ADMIN).status_code == 302
    assert browser.http.get("admin/").status_code == 200
    browser.http.cookies.clear()

    assert sign_in(browser, jupyterhub, "alice").status_code == 302
    page = browser.http.get("admin/")
    assert page.status_code == 403
    assert "Not a SubsidyHub admin" in page.text
    assert "signed in as <strong>alice</strong>" in page.text
    assert "custom:subsidy:admin" in page.text
    csrf = browser.http.cookies.get(CSRF_COOKIE)
    api = browser.http.get("api/v1/projects", headers={CSRF_HEADER: csrf})
    assert api.status_code == 403
    assert api.json()["message"].startswith("alice may not list projects")
    # The hub adds the service's access scope to its OAuth tokens for the service, which the
    # service requires of a non-admin's token: alice's session reads her own view.
    me = browser.http.get("api/v1/me", headers={CSRF_HEADER: csrf})
    assert me.status_code == 200, me.text
    assert me.json()["user"] == "alice"


def test_a_callback_that_did_not_start_here_is_refused(
    browser: Service, jupyterhub: TestHub
) -> None:
    code = hub_code(jupyterhub, HUB_ADMIN, "their-state")
    browser.http.cookies.set(STATE_COOKIE, "our-state", path=CALLBACK)
    response = browser.http.get("oauth_callback", params={"code": code, "state": "their-state"})
    assert response.status_code == 400
    assert "open the page again (usage or admin)" in response.json()["message"]
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")

    # A made-up code with a matching state: the hub refuses it, and so does the service.
    browser.http.cookies.set(STATE_COOKIE, "ours", path=CALLBACK)
    bogus = browser.http.get("oauth_callback", params={"code": "made-up", "state": "ours"})
    assert bogus.status_code == 400
    assert "JupyterHub refused the sign-in code" in bogus.json()["message"]


def test_admin_stops_a_server_charged_closed_and_audited(service: Service) -> None:
    seed(service)
    admitted = service.admit("alice", "gpu-1", "alpha")
    path = f"api/v1/sessions/{admitted['session_id']}/stop-server"
    audits = count(service, AuditEntry)

    refused = service.call("POST", path, who="bob", json={})
    assert refused.status_code == 403
    assert refused.json()["message"].startswith("bob may not stop servers")
    assert count(service, AuditEntry) == audits

    service.clock.advance(3_600_000)
    # alice has no server on the hub (admitted by hand), which the hub calls already stopped.
    too_long = service.call("POST", path, who="centre-admin", json={"note": "x" * 501})
    assert too_long.status_code == 400
    stopped = service.ok("POST", path, who="centre-admin", json={"note": "holidays"})
    assert stopped["reason"] == "admin"
    assert stopped["hub"] == "stopping"
    assert stopped["totals"]["subsidy"] == "32.48"
    with service.db.read() as session:
        row = session.get(SpawnSession, admitted["session_id"])
        assert row is not None and row.stop_reason == "admin"
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "server.stop")).one()
    assert entry.actor == "centre-admin"
    assert entry.target == "project:alpha/servers/alice/default"
    assert entry.after is not None and entry.after["note"] == "holidays"

    again = service.call("POST", path, who="centre-admin", json={})
    assert again.status_code == 409
    assert "stopped already (admin)" in again.json()["message"]
    assert count(service, AuditEntry) == audits + 1
