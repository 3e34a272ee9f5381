"""The admin web page: ``{prefix}admin/``, for service admins, signed in through the hub.

The page is static HTML, CSS and JavaScript shipped in the package (``static/admin/``: no
build step, nothing from a CDN); everything it shows and changes goes through the service's
own API with the session cookie, so the page can do nothing the API would not let the same
admin do, and every change is validated and audited there. This module only decides who
gets the page: no session → sign in at the hub; a session whose token the hub no longer
accepts → sign in again; signed in but not an admin → a 403 page saying what is needed.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from subsidyhub.names import ADMINS_ROLE
from subsidyhub.service.auth import ADMINS, Unauthenticated
from subsidyhub.service.browser_auth import (
    SESSION_COOKIE,
    BrowserLogin,
    ensure_csrf_cookie,
    oauth_router,
    start_login,
)
from subsidyhub.service.context import Context

STATIC = Path(__file__).with_name("static") / "admin"
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def forbidden_page(name: str, hub_home: str, logout: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Not an admin · SubsidyHub</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="static/admin.css"></head>
<body><main class="sh-narrow"><section class="sh-card sh-denied" id="sh-forbidden">
<h1>403 · Not a SubsidyHub admin</h1>
<p>You are signed in as <strong>{escape(name)}</strong>. The admin page needs {escape(ADMINS)}.</p>
<p>Ask the centre's admins for the role <code>{ADMINS_ROLE}</code> if you should have it.</p>
<p><a class="sh-button" href="{escape(hub_home)}">Back to the hub</a>
<a class="sh-link" href="{escape(logout)}">Sign out</a></p>
</section></main></body></html>
"""


def install_admin_page(app: FastAPI, prefix: str, login: BrowserLogin) -> None:
    """The page at ``{prefix}admin/``, its static files, and the sign-in routes."""
    landing = f"{prefix}admin/"
    router = APIRouter(include_in_schema=False)

    @router.get(f"{prefix}admin")
    async def admin_without_slash() -> Response:
        return RedirectResponse(landing, status_code=302)

    @router.get(landing)
    async def admin_page(request: Request, context: Context) -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return start_login(request, login, landing)
        try:
            identity = await context.authenticator.identify(token)
        except Unauthenticated:
            return start_login(request, login, landing)
        if not identity.is_admin:
            hub_home = login.hub_logout_url.removesuffix("logout") + "home"
            page = forbidden_page(identity.actor, hub_home, f"{prefix}logout")
            return HTMLResponse(page, status_code=403, headers=PAGE_HEADERS)
        response = FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)
        ensure_csrf_cookie(response, request, prefix)
        return response

    app.include_router(router)
    # One sign-in for both of the service's pages: it ends where it started (usage_page.py).
    app.include_router(oauth_router(prefix, login, landing, pages=(landing, prefix)))
    app.mount(f"{landing}static", StaticFiles(directory=STATIC), name="admin-static")
