"""The test hub grants what production grants: its roles, scopes and service are production's.

The config file :class:`~subsidyhub.testing.hub.TestHub` writes is loaded the way JupyterHub
loads it and compared with what ``subsidyhub up``
(:func:`subsidyhub.launcher.apply_embedded_config`) and the z2jh overlay
(:func:`subsidyhub.hubplugin.z2jh.configure_z2jh`) produce for the same port, token and admins.
Only the harness service and role may be extra, and only the service's URL, command and
environment may differ (and its OAuth settings, for a token-only test hub, which has no URL).
A test hub that drifted once (no ``read:servers`` for the service, no access scope for the
subsidy admins) fails here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from subsidyhub.hubplugin.z2jh import configure_z2jh
from subsidyhub.launcher import apply_embedded_config
from subsidyhub.names import ACCESS_SCOPE, ADMINS_ROLE, HUB_PID_ENV, SERVICE_NAME, SERVICE_ROLE
from subsidyhub.netutil import free_port
from subsidyhub.settings import DEFAULT_CONFIG
from subsidyhub.testing.hub import CENTRE_ADMIN, HARNESS_SERVICE, TestHub

SERVICE_COMMAND = [sys.executable, "-m", "subsidyhub.service"]
# What a deployment may set differently for the same service: where it is and how it runs.
PLACEMENT = {"url", "command", "environment"}


def loaded(hub: TestHub) -> Config:
    """The test hub's generated config file, loaded as JupyterHub loads it."""
    hub.root.mkdir(parents=True, exist_ok=True)
    path = hub.root / "jupyterhub_config.py"
    path.write_text(hub.config_text(), encoding="utf-8")
    return PyFileConfigLoader(path.name, path=str(hub.root)).load_config()


def by_name(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in entries}


def subsidy_service(c: Config, ignore: set[str] = PLACEMENT) -> dict[str, Any]:
    entry = by_name(c.JupyterHub.services)[SERVICE_NAME]
    return {key: value for key, value in entry.items() if key not in ignore}


def assert_same_grants(
    test_hub: Config, production: Config, placement: set[str] = PLACEMENT
) -> None:
    test_roles = by_name(test_hub.JupyterHub.load_roles)
    assert test_roles.pop(HARNESS_SERVICE)["services"] == [HARNESS_SERVICE]
    assert test_roles == by_name(production.JupyterHub.load_roles)
    assert test_hub.JupyterHub.custom_scopes == production.JupyterHub.custom_scopes
    assert subsidy_service(test_hub, placement) == subsidy_service(production, placement)
    services = {entry["name"] for entry in test_hub.JupyterHub.services}
    assert services == {SERVICE_NAME, HARNESS_SERVICE}


@pytest.fixture
def managed_hub(tmp_path: Path) -> TestHub:
    """A test hub as tests/service starts it: the hub runs the service behind its URL."""
    return TestHub(
        root=tmp_path / "hub",
        service_url=f"http://127.0.0.1:{free_port()}",
        service_command=SERVICE_COMMAND,
        service_environment={"SUBSIDYHUB_DATA_DIR": str(tmp_path / "service-data")},
    )


def test_the_test_hub_grants_what_subsidyhub_up_grants(
    managed_hub: TestHub, tmp_path: Path
) -> None:
    assert managed_hub.service_url is not None
    production = Config()
    apply_embedded_config(
        production,
        {
            "SUBSIDYHUB_CONFIG": str(DEFAULT_CONFIG),
            "SUBSIDYHUB_DATA_DIR": str(tmp_path / "up"),
            "SUBSIDYHUB_ADMIN_USERS": CENTRE_ADMIN,
            "SUBSIDYHUB_SERVICE_PORT": str(urlsplit(managed_hub.service_url).port),
            "SUBSIDYHUB_SERVICE_TOKEN": managed_hub.service_token,
        },
    )
    test_hub = loaded(managed_hub)

    assert_same_grants(test_hub, production)
    # Same port and command: only the environment (paths) tells the two services apart.
    assert subsidy_service(test_hub, {"environment"}) == subsidy_service(
        production, {"environment"}
    )
    # The scopes the hand-written copy once lacked.
    roles = by_name(test_hub.JupyterHub.load_roles)
    assert "read:servers" in roles[SERVICE_ROLE]["scopes"]
    assert ACCESS_SCOPE in roles[ADMINS_ROLE]["scopes"]
    assert roles[ADMINS_ROLE]["users"] == [CENTRE_ADMIN]
    # A managed service ends with the hub process that loaded the config (service/lifeline.py).
    for config in (test_hub, production):
        environment = by_name(config.JupyterHub.services)[SERVICE_NAME]["environment"]
        assert environment[HUB_PID_ENV] == str(os.getpid())


def test_a_token_only_test_hub_grants_what_the_z2jh_overlay_grants(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = TestHub(root=tmp_path / "hub")
    monkeypatch.setenv("SUBSIDYHUB_CONFIG", str(DEFAULT_CONFIG))
    production = Config()
    production.JupyterHub.services = [{"name": SERVICE_NAME, "api_token": hub.service_token}]
    configure_z2jh(production, {"admins": [CENTRE_ADMIN]})
    test_hub = loaded(hub)

    # Token-only: no URL to route or wait for, so no OAuth client, and nothing to start.
    token_only = {"url", "oauth_no_confirm", "oauth_client_allowed_scopes", "command"}
    assert_same_grants(test_hub, production, token_only)
    assert not token_only & by_name(test_hub.JupyterHub.services)[SERVICE_NAME].keys()
    # The Kubernetes Deployment is no child of the hub: it is never told to end with it.
    for config in (test_hub, production):
        assert "environment" not in by_name(config.JupyterHub.services)[SERVICE_NAME]
