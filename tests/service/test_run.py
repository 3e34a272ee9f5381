"""Starting the service: the environment JupyterHub provides, and an unreachable hub."""

from __future__ import annotations

import httpx
import pytest

from subsidyhub.ledger.db import Database
from subsidyhub.service.app import create_app
from subsidyhub.service.run import EnvironmentProblem, ServiceEnvironment
from subsidyhub.settings import Settings
from subsidyhub.testing.postgres import free_port

from .helpers import PREFIX, serve

HUB_ENV = {
    "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:10101",
    "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api",
    "JUPYTERHUB_API_TOKEN": "secret-token-value",
}


def test_environment_of_a_managed_service() -> None:
    found = ServiceEnvironment.from_environ(
        {**HUB_ENV, "JUPYTERHUB_SERVICE_PREFIX": "/services/subsidy/"}
    )
    assert (found.host, found.port, found.prefix) == ("127.0.0.1", 10101, "/services/subsidy/")
    assert found.hub_api_url == "http://127.0.0.1:8081/hub/api"
    assert ServiceEnvironment.from_environ(HUB_ENV).prefix == "/services/subsidy/"


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        ({"JUPYTERHUB_API_TOKEN": ""}, "JUPYTERHUB_API_TOKEN not set"),
        ({"JUPYTERHUB_SERVICE_URL": "", "JUPYTERHUB_API_URL": ""}, "JUPYTERHUB_SERVICE_URL, "),
        ({"JUPYTERHUB_SERVICE_URL": "127.0.0.1:10101"}, "is not an http URL"),
    ],
)
def test_a_bad_environment_says_what_to_set(change: dict[str, str], phrase: str) -> None:
    with pytest.raises(EnvironmentProblem) as problem:
        ServiceEnvironment.from_environ({**HUB_ENV, **change})
    assert phrase in str(problem.value)
    assert "secret-token-value" not in str(problem.value)


def test_unreachable_hub_is_503_without_the_token(ledger_db: Database, settings: Settings) -> None:
    app = create_app(
        settings, ledger_db, prefix=PREFIX, hub_api_url=f"http://127.0.0.1:{free_port()}/hub/api"
    )
    with serve(app) as base:
        response = httpx.get(
            f"{base}{PREFIX}api/v1/me", headers={"Authorization": "token secret-token-value"}
        )
    assert response.status_code == 503
    assert response.json()["status"] == 503
    assert "could not reach JupyterHub" in response.json()["message"]
    assert "secret-token-value" not in response.text
