"""Helpers of the service tests: a movable clock, uvicorn in a thread, a client, a seed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from subsidyhub.ledger.db import Database
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


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on a free port; yields its base URL."""
    # host/port rather than a pre-bound socket: uvicorn's accepted connections from a passed
    # socket answer keep-alive requests ~40 ms late (Nagle and delayed ACKs).
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


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

    def ok_text(self, path: str, *, who: str) -> str:
        """GET a non-JSON resource (metrics, CSV) that must answer 200."""
        response = self.call("GET", path, who=who)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.text


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
