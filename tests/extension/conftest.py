"""Fixtures of the jupyterlab-subsidy tests: a real subsidy service and a real Jupyter server.

The session's ``jupyterhub`` (tests/conftest.py) is the real JupyterHub that answers the
service's token checks; ``service`` serves the subsidy service's real app (SQLite, clock
fixed at a month start) with uvicorn in a thread, seeded with projects ``alpha`` (alice
member, bob manager, HK$500) and ``beta`` (carol, HK$100). ``jp_fetch`` (pytest-jupyter) then
calls the server extension inside a real ``jupyter_server`` configured as JupyterHub
configures a single-user server: alice's token in ``JUPYTERHUB_API_TOKEN``, the service's
URL, the project in ``SUBSIDYHUB_PROJECT``.

pytest-jupyter's fixtures are imported here rather than registered as a plugin for the whole
run: they bring an autouse event loop that only these tests should have. Tests are plain
functions that run the server's coroutines on that loop (``fetch``), so pytest-asyncio, which
the rest of the suite uses, does not claim them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403  (jp_fetch and what it needs)
from tornado.httpclient import HTTPResponse

from subsidyhub.ledger.db import Database
from subsidyhub.settings import Settings
from subsidyhub.testing.hub import TestHub
from tests.conftest import SqliteTemplates
from tests.service.helpers import Service, running_service, seed

Fetch = Callable[..., HTTPResponse]


@pytest.fixture
def service(
    tmp_path_factory: pytest.TempPathFactory,
    settings: Settings,
    sqlite_templates: SqliteTemplates,
    jupyterhub: TestHub,
    tokens: dict[str, str],
) -> Iterator[Service]:
    """The subsidy service on a fresh SQLite ledger (a migrated copy), seeded, at ``T0``."""
    db = Database(
        sqlite_templates.copy(settings, tmp_path_factory.mktemp("ledger") / "ledger.sqlite")
    )
    try:
        with running_service(
            db, settings, jupyterhub.api_url, jupyterhub.service_token, tokens
        ) as running:
            seed(running)
            yield running
    finally:
        db.dispose()


@pytest.fixture
def server_environment(
    service: Service, monkeypatch: pytest.MonkeyPatch, tokens: dict[str, str]
) -> dict[str, str]:
    """What JupyterHub and SubsidyHub put in alice's server's environment."""
    environment = {
        "JUPYTERHUB_API_TOKEN": tokens["alice"],
        "JUPYTERHUB_USER": "alice",
        "JUPYTERHUB_SERVER_NAME": "",
        "SUBSIDYHUB_SERVICE_URL": str(service.http.base_url),
        "SUBSIDYHUB_PROJECT": "alpha",
        "SUBSIDYHUB_PROFILE": "cpu-small",
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    return environment


@pytest.fixture
def extension_config() -> dict[str, Any]:
    """``c.SubsidyExtension`` for the test; a test overrides it to change the cache or URL."""
    return {}


@pytest.fixture
def jp_server_config(
    server_environment: dict[str, str], extension_config: dict[str, Any]
) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"jupyterlab_subsidy": True}},
        "SubsidyExtension": extension_config,
    }


@pytest.fixture
def fetch(jp_fetch: Any, jp_asyncio_loop: asyncio.AbstractEventLoop) -> Fetch:
    """``jp_fetch`` run to completion; errors come back as responses, not exceptions."""

    def run(*parts: str, **kwargs: Any) -> HTTPResponse:
        kwargs.setdefault("raise_error", False)
        response: HTTPResponse = jp_asyncio_loop.run_until_complete(jp_fetch(*parts, **kwargs))
        return response

    return run


def body(response: HTTPResponse) -> Any:
    return json.loads(response.body)
