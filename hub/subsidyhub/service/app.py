"""The FastAPI application of the subsidy service.

:func:`create_app` wires the ledger (``db``), the settings, token checks against the hub,
metrics and the routes into one app. Everything lives under the JupyterHub service prefix
(``/services/subsidy/``), because the hub's proxy forwards requests without stripping it:

* ``{prefix}api/v1/…``: the API (see the route modules);
* ``{prefix}metrics``: Prometheus text;
* ``{prefix}health/live`` and ``{prefix}health/ready``: unauthenticated probes;
* ``{prefix}openapi.json`` and ``{prefix}docs``: the API's description.
* ``{prefix}``: the usage page, for everyone signed in at the hub (see
  :mod:`subsidyhub.service.usage_page`);
* ``{prefix}admin/``: the admin page, signed in through the hub's OAuth (see
  :mod:`subsidyhub.service.admin_page`).

Every error is ``{"status", "message"}`` JSON (see :mod:`subsidyhub.service.errors`).
Requests are logged by method, route and status, never with query strings or headers, so no
token reaches a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from subsidyhub import shapes
from subsidyhub.ledger.db import Database, now_ms
from subsidyhub.names import API_PATH
from subsidyhub.service.admin_page import install_admin_page
from subsidyhub.service.auth import HubAuthenticator
from subsidyhub.service.browser_auth import BrowserLogin
from subsidyhub.service.context import ServiceContext
from subsidyhub.service.enforcer import Enforcer
from subsidyhub.service.errors import install_error_handlers
from subsidyhub.service.hubclient import HubClient
from subsidyhub.service.me_page import MePages
from subsidyhub.service.metrics import ServiceMetrics
from subsidyhub.service.queue_places import QueuePlaces
from subsidyhub.service.routes import (
    admissions,
    applications,
    audit,
    courses,
    health,
    idle,
    limits,
    me,
    metrics,
    prices,
    projects,
    queue,
    reservations,
    servers,
    spending,
    sso,
    statements,
    stops,
)
from subsidyhub.service.usage_page import install_usage_page
from subsidyhub.settings import Settings

access_log = logging.getLogger("subsidyhub.service.access")

API_ROUTERS = (
    me,
    stops,
    spending,
    projects,
    limits,
    prices,
    admissions,
    statements,
    audit,
    sso,
    courses,
    servers,
    queue,
    reservations,
    idle,
    applications,
)


def normalise_prefix(prefix: str) -> str:
    """``services/subsidy`` → ``/services/subsidy/``; empty → ``/``."""
    inner = prefix.strip("/")
    return f"/{inner}/" if inner else "/"


def _version() -> str:
    try:
        return version("subsidyhub")
    except PackageNotFoundError:
        return "0+unknown"


class RequestTimer:
    """ASGI middleware: latency histogram by route template, and a token-free access log."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            elapsed = time.perf_counter() - started
            # The template (/api/v1/projects/{slug}) keeps the label set small.
            route = getattr(scope.get("route"), "path", "unmatched")
            self.histogram.labels(scope["method"], route, str(status)).observe(elapsed)
            access_log.info(
                "%s %s %s %.1fms", scope["method"], scope["path"], status, elapsed * 1000
            )


def create_app(
    settings: Settings,
    db: Database,
    *,
    prefix: str,
    hub_api_url: str,
    service_token: str | None = None,
    clock: Callable[[], int] = now_ms,
    token_ttl_seconds: float = 30.0,
    enforce: bool = False,
    me_max_age_s: float = 1.0,
    browser_login: BrowserLogin | None = None,
) -> FastAPI:
    """The service app. ``db`` must already be upgraded (see ``ledger.migrate.upgrade``).

    With ``enforce`` (what a deployed service runs), the app's lifespan runs the
    :class:`~subsidyhub.service.enforcer.Enforcer`: metering, stops and reconciliation,
    talking to the hub with ``service_token``. ``me_max_age_s`` bounds how old a ``GET me``
    answer served again may be (see :class:`~subsidyhub.service.me_page.MePages`; 0: never).
    ``browser_login`` says how the admin page signs in at the hub (default: a managed service
    on the hub's own origin; see :mod:`subsidyhub.service.browser_auth`).
    """
    prefix = normalise_prefix(prefix)
    service_metrics = ServiceMetrics(db, settings, clock)
    me_pages = MePages(db, max_age_s=me_max_age_s)
    authenticator = HubAuthenticator(
        hub_api_url,
        service_token=service_token,
        ttl_seconds=token_ttl_seconds,
        on_hub_check=lambda result: service_metrics.hub_token_checks.labels(result).inc(),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        background: asyncio.Task[None] | None = None
        # Also what the admin page's Stop button asks the hub with (routes/servers.py).
        hub = HubClient(hub_api_url, service_token) if service_token else None
        app.state.hub = hub
        if enforce:
            if hub is None:
                raise ValueError("enforcement needs the service's hub token")
            enforcer = Enforcer(settings, db, hub, service_metrics, clock)
            app.state.enforcer = enforcer
            background = asyncio.create_task(enforcer.run(), name="subsidyhub-enforcer")
        try:
            yield
        finally:
            if background is not None:
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
            if hub is not None:
                await hub.aclose()
            await authenticator.aclose()
            me_pages.close()

    app = FastAPI(
        title="SubsidyHub service",
        version=_version(),
        description="Balances, admissions, allocations, prices and statements of SubsidyHub.",
        openapi_url=f"{prefix}openapi.json",
        docs_url=f"{prefix}docs",
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        lifespan=lifespan,
    )
    app.state.subsidy = ServiceContext(
        settings=settings,
        db=db,
        authenticator=authenticator,
        metrics=service_metrics,
        clock=clock,
        me_pages=me_pages,
        queue_places=QueuePlaces(settings),
    )
    install_error_handlers(app)
    for module in API_ROUTERS:
        app.include_router(
            module.router, prefix=f"{prefix}{API_PATH}", responses=shapes.ERROR_RESPONSES
        )
    app.include_router(metrics.router, prefix=prefix.rstrip("/"), responses=shapes.ERROR_RESPONSES)
    app.include_router(health.router, prefix=prefix.rstrip("/"))
    app.state.hub = None
    login = browser_login or BrowserLogin.for_service(
        prefix=prefix, hub_api_url=hub_api_url, client_secret=service_token or ""
    )
    install_admin_page(app, prefix, login)
    install_usage_page(app, prefix, login)
    app.add_middleware(RequestTimer, histogram=service_metrics.request_seconds)
    return app
