"""SSO group mapping's config and login hook: errors name the key; logins survive a down service.

A real HTTP client talks to a loopback port where nothing listens (the service is down); no
fake stands in for the service. The config is a real traitlets ``Config``.
"""

from __future__ import annotations

from typing import Any

import pytest
from traitlets.config import Config

from subsidyhub.hubplugin.client import SubsidyClient
from subsidyhub.hubplugin.config import update_sso
from subsidyhub.hubplugin.sso import SsoGroupSync
from subsidyhub.netutil import free_port
from subsidyhub.settings import ConfigError, parse_settings

from ..conftest import TEST_CONFIG

SSO = {"groups": [{"group": "physics-ml", "project": "physics-ml"}]}


@pytest.mark.parametrize(
    ("sso", "key", "message"),
    [
        (
            {"groups": [{"group": "a", "project": "p", "role": "owner"}]},
            "sso.groups[0].role",
            "'member' or 'manager'",
        ),
        (
            {"groups": [{"group": "a", "project": "Physics ML"}]},
            "sso.groups[0].project",
            "Physics ML",
        ),
        ({"groups": [{"project": "p"}]}, "sso.groups[0].group", "Field required"),
        (
            {"groups": [{"group": "a", "project": "p", "roles": "manager"}]},
            "sso.groups[0].roles",
            "allowed here: group, project, role",
        ),
        ({"remove_unlisted": "sometimes"}, "sso.remove_unlisted", "valid boolean"),
    ],
)
def test_config_errors_name_the_file_and_key(sso: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_settings(TEST_CONFIG | {"sso": sso}, "subsidyhub.yaml")
    assert (error.value.source, error.value.key) == ("subsidyhub.yaml", key)
    assert message in error.value.message


def down_client() -> SubsidyClient:
    return SubsidyClient(f"http://127.0.0.1:{free_port()}/services/subsidy/api/v1/", "t", timeout=2)


async def test_a_down_service_lets_the_login_through_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = {"name": "erin", "admin": False, "groups": ["physics-ml"]}
    assert await SsoGroupSync(down_client())(None, None, dict(model)) == model
    assert "Could not sync erin's SSO groups" in caplog.text
    assert "previous login" in caplog.text


async def test_without_groups_nothing_is_asked(caplog: pytest.LogCaptureFixture) -> None:
    model = {"name": "erin", "admin": False}
    assert await SsoGroupSync(down_client())(None, None, dict(model)) == model
    assert "Could not sync" not in caplog.text


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_the_deployments_hook_runs_first(asynchronous: bool) -> None:
    seen: list[dict[str, Any]] = []

    def drop_groups(_authenticator: Any, _handler: Any, model: dict[str, Any]) -> dict[str, Any]:
        seen.append(dict(model))
        return {key: value for key, value in model.items() if key != "groups"}

    async def drop_groups_async(*args: Any) -> dict[str, Any]:
        return drop_groups(*args)

    hook = SsoGroupSync(down_client(), drop_groups_async if asynchronous else drop_groups)
    result = await hook(None, None, {"name": "erin", "groups": ["x"]})
    assert seen == [{"name": "erin", "groups": ["x"]}]
    assert result == {"name": "erin"}


def test_the_hook_is_configured_only_with_a_mapping_and_chains_once() -> None:
    client = down_client()
    c = Config()
    update_sso(c, parse_settings(TEST_CONFIG, "test"), client)
    assert "post_auth_hook" not in c.Authenticator

    def deployment_hook(*_args: Any) -> None:
        return None

    c.Authenticator.post_auth_hook = deployment_hook
    settings = parse_settings(TEST_CONFIG | {"sso": SSO}, "test")
    update_sso(c, settings, client)
    update_sso(c, settings, client)
    hook = c.Authenticator.post_auth_hook
    assert isinstance(hook, SsoGroupSync)
    assert hook.previous is deployment_hook
