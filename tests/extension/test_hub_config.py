"""The hub side of the extension: servers learn the service's URL, the hub loads the spawn page.

Pure config tests on a traitlets ``Config``, as JupyterHub loads it: applying SubsidyHub twice
gives the same config, and a deployment's own template paths and server environment are kept
(its templates first, so a deployment can still override SubsidyHub's spawn page).
"""

from __future__ import annotations

from traitlets.config import Config

from subsidyhub.hubplugin.config import (
    TEMPLATES,
    HubPlan,
    update_server_environment,
    update_templates,
)

PLAN = HubPlan(service_url="http://127.0.0.1:10101", service_token="x" * 64)


def test_servers_get_the_service_url_and_keep_the_deployments_environment() -> None:
    c = Config()
    c.Spawner.environment = {"TZ": "Asia/Hong_Kong"}

    update_server_environment(c, PLAN)
    update_server_environment(c, PLAN)

    assert c.Spawner.environment == {
        "TZ": "Asia/Hong_Kong",
        "SUBSIDYHUB_SERVICE_URL": "http://127.0.0.1:10101/services/subsidy/",
    }


def test_the_spawn_page_template_comes_after_the_deployments_own() -> None:
    c = Config()
    c.JupyterHub.template_paths = ["/srv/branding"]

    update_templates(c)
    update_templates(c)

    assert c.JupyterHub.template_paths == ["/srv/branding", str(TEMPLATES)]
    assert (TEMPLATES / "spawn.html").is_file()
