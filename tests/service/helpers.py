"""Helpers of the service tests: a movable clock, uvicorn in a thread, a client, a seed.

:func:`serve` gives each test its app on a real uvicorn server. Starting and stopping uvicorn
cost ~0.2 s a test (its shutdown polls and sleeps in 0.1 s steps), so the servers outlive the
tests: each runs in a thread of its own, and :func:`serve` plugs the test's app into an idle
one, running the app's lifespan as uvicorn would (startup before the first request, shutdown
after the last), then unplugs it. A test never shares a server with another running test.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Receive, Scope, Send
from uvicorn.lifespan.on import LifespanOn

from subsidyhub.ledger.db import Database
from subsidyhub.netutil import tls_context
from subsidyhub.service.app import create_app
from subsidyhub.service.enforcer import Enforcer
from subsidyhub.service.hubclient import HubClient
from subsidyhub.settings import Settings
from subsidyhub.testing.postgres import free_port

PREFIX = "/services/subsidy/"
# 2026-12-01T00:00Z: a month start keeps statement arithmetic predictable.
T0 = 1_796_083_200_000
HOUR = 3_600_000


class Clock:
    """The service's notion of now, in epoch ms; tests move it."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


class _PluggableServer:
    """uvicorn on a free loopback port, in a thread, serving the app :meth:`plugged` in."""

    def __init__(self) -> None:
        # host/port rather than a pre-bound socket: uvicorn's accepted connections from a
        # passed socket answer keep-alive requests ~40 ms late (Nagle and delayed ACKs).
        self.port = free_port()
        config = uvicorn.Config(
            self._dispatch,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            interface="asgi3",  # uvicorn does not recognise a bound method as ASGI 3
            lifespan="off",  # each plugged app's own lifespan runs in plugged()
            proxy_headers=False,  # the plugged app is wrapped as uvicorn wraps it
        )
        self._server = uvicorn.Server(config)
        self._app: Any = None
        self._state: dict[str, Any] = {}
        loop_factory = config.get_loop_factory()
        self._loop = loop_factory() if loop_factory else asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._server.serve(),), daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on port {self.port}")
            time.sleep(0.005)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            raise RuntimeError(f"a request reached port {self.port} while no app is plugged in")
        if "state" in scope:  # what uvicorn hands each request: a copy of the lifespan state
            scope["state"] = self._state.copy()
        await self._app(scope, receive, send)

    def _run[T](self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    async def _requests_finished(self) -> None:
        """Wait for requests in flight, as uvicorn's shutdown does before the lifespan's."""
        if tasks := set(self._server.server_state.tasks):
            await asyncio.wait(tasks)

    @contextmanager
    def plugged(self, app: FastAPI) -> Iterator[str]:
        # The app wrapped as uvicorn.run(app) would wrap it (proxy headers, ASGI version).
        config = uvicorn.Config(app, log_level="warning", access_log=False)
        lifespan = LifespanOn(config)
        self._run(lifespan.startup())
        if lifespan.should_exit:
            raise RuntimeError("the app's lifespan startup failed (see the log)")
        self._app, self._state = config.loaded_app, lifespan.state
        try:
            yield f"http://127.0.0.1:{self.port}"
        finally:
            self._app, self._state = None, {}
            self._run(self._requests_finished())
            self._run(lifespan.shutdown())

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)


_idle_servers: list[_PluggableServer] = []
_servers_lock = threading.Lock()


@atexit.register
def _close_servers() -> None:
    with _servers_lock:
        for server in _idle_servers:
            server.close()


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yields its base URL."""
    with _servers_lock:
        server = _idle_servers.pop() if _idle_servers else None
    if server is None:
        server = _PluggableServer()
    try:
        with server.plugged(app) as base_url:
            yield base_url
    finally:
        with _servers_lock:
            _idle_servers.append(server)


@dataclass
class Service:
    """A running service and the tokens to call it as anyone."""

    http: httpx.Client
    tokens: dict[str, str]
    hub_token: str
    clock: Clock
    db: Database
    settings: Settings
    app: FastAPI

    def call(
        self, method: str, path: str, *, who: str | None, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """``who``: a user name, ``"hub"`` for the service's own token, or None for no token."""
        if token is None and who is not None:
            token = self.hub_token if who == "hub" else self.tokens[who]
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"token {token}"
        return self.http.request(method, path, headers=headers, **kwargs)

    def ok(self, method: str, path: str, *, who: str, status: int = 200, **kwargs: Any) -> Any:
        """A call that must succeed with ``status``; returns the JSON body (None for 204)."""
        response = self.call(method, path, who=who, **kwargs)
        assert response.status_code == status, (method, path, response.status_code, response.text)
        return response.json() if response.content else None

    def admit(self, user: str, profile: str, project: str, server_name: str = "") -> Any:
        """The hub's admission of ``user``'s server, as its spawn hook asks: must answer 201."""
        body = {"user": user, "profile": profile, "server_name": server_name, "project": project}
        return self.ok("POST", "api/v1/admissions", who="hub", status=201, json=body)

    def ok_text(self, path: str, *, who: str) -> str:
        """GET a non-JSON resource (metrics, CSV) that must answer 200."""
        response = self.call("GET", path, who=who)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.text


@contextmanager
def running_service(
    db: Database, settings: Settings, hub_api_url: str, hub_token: str, tokens: dict[str, str]
) -> Iterator[Service]:
    """The service's real app on ``db``, served by uvicorn, its clock at ``T0``; tokens are
    checked by the hub at ``hub_api_url``."""
    clock = Clock(T0)
    app = create_app(
        settings,
        db,
        prefix=PREFIX,
        hub_api_url=hub_api_url,
        service_token=hub_token,
        clock=clock,
    )
    with (
        serve(app) as base_url,
        httpx.Client(base_url=base_url + PREFIX, timeout=30, verify=tls_context()) as http,
    ):
        yield Service(http, tokens, hub_token, clock, db, settings, app)


def seed(service: Service) -> None:
    """Projects alpha (bob manages, alice is a member; 500.00) and beta (carol; 100.00)."""
    for slug, amount, members in (
        ("alpha", "500.00", {"bob": "manager", "alice": "member"}),
        ("beta", "100.00", {"carol": "member"}),
    ):
        service.ok(
            "POST",
            "api/v1/projects",
            who="centre-admin",
            status=201,
            json={"slug": slug, "name": slug.title()},
        )
        service.ok(
            "POST",
            f"api/v1/projects/{slug}/allocations",
            who="centre-admin",
            status=201,
            json={"amount": amount, "note": "grant"},
        )
        for username, role in members.items():
            service.ok(
                "PUT",
                f"api/v1/projects/{slug}/members/{username}",
                who="centre-admin",
                json={"role": role},
            )


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text as {(sample name, sorted labels): value}."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def enforce_once(service: Service, hub_api_url: str) -> None:
    """One round of the service's enforcer (tick, stops, reconciliation) against the real hub.

    The ``service`` fixture runs without the background loop so tests control time; this
    runs the same :class:`Enforcer` code once, at the service clock's now, feeding the app's
    metrics.
    """
    client = HubClient(hub_api_url, service.hub_token)
    context = service.app.state.subsidy
    enforcer = Enforcer(service.settings, service.db, client, context.metrics, service.clock)
    try:
        await enforcer.round()
    finally:
        await client.aclose()
