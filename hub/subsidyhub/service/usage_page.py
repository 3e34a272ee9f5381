"""The usage page: ``{prefix}``, what "Services → subsidy" in the hub's menu opens, for everyone.

Like the admin page (:mod:`subsidyhub.service.admin_page`) it is a static page shipped in the
package (``static/usage/``) whose script reads the service's own API with the session cookie:
``GET me`` (projects, balances, running servers, recent stops, quotas and use: the same
figures JupyterLab's panel shows), ``GET me/spending`` and, for a project's managers, its
members' use. So it shows nothing the API would not tell the same person; a course's student
gets no money figures from the API, so the page has none to show. This module only decides
who gets it: no session, or one the hub no longer accepts → sign in at the hub and come back.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from subsidyhub.service.admin_page import PAGE_HEADERS
from subsidyhub.service.auth import Unauthenticated
from subsidyhub.service.browser_auth import (
    SESSION_COOKIE,
    BrowserLogin,
    ensure_csrf_cookie,
    start_login,
)
from subsidyhub.service.context import Context

STATIC = Path(__file__).with_name("static") / "usage"


def install_usage_page(app: FastAPI, prefix: str, login: BrowserLogin) -> None:
    """The page at ``{prefix}`` and its static files at ``{prefix}static/``.

    The sign-in routes come with the admin page (:func:`admin_page.install_admin_page`).
    """
    router = APIRouter(include_in_schema=False)

    @router.get(prefix)
    async def usage_page(request: Request, context: Context) -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return start_login(request, login, prefix)
        try:
            await context.authenticator.identify(token)
        except Unauthenticated:
            return start_login(request, login, prefix)
        response = FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)
        ensure_csrf_cookie(response, request, prefix)
        return response

    app.include_router(router)
    app.mount(f"{prefix}static", StaticFiles(directory=STATIC), name="usage-static")
