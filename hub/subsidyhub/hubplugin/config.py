"""Apply SubsidyHub to a JupyterHub config object, from ``subsidyhub.yaml``.

Used by the embedded ``jupyterhub_config.py`` and by the Helm chart's ``hub.extraConfig``.
Each ``update_*`` function only sets keys (never appends to lists a deployment may own), so
calling :func:`configure_hub` twice gives the same config.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from subsidyhub.hubplugin.client import SubsidyClient
from subsidyhub.hubplugin.form import image_labels, options_from_form, render_options_form
from subsidyhub.hubplugin.hooks import SubsidyHooks
from subsidyhub.hubplugin.sso import SsoGroupSync
from subsidyhub.settings import Settings

SERVICE_NAME = "subsidy"
ADMIN_SCOPE = "custom:subsidy:admin"
HUB_ADMIN_POWER_SCOPE = "admin:users"
SERVICE_PREFIX = f"/services/{SERVICE_NAME}/"
TEMPLATES = Path(__file__).with_name("templates")


@dataclass(frozen=True)
class HubPlan:
    """Where things run; filled by ``subsidyhub up`` or by the deployment."""

    service_url: str
    service_token: str
    config_path: str | None = None
    data_dir: str | None = None
    manage_service: bool = True
    subsidy_admins: tuple[str, ...] = ()
    service_environment: dict[str, str] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return self.service_url.rstrip("/") + SERVICE_PREFIX + "api/v1/"


def _existing(value: Any, kind: type) -> Any:
    """A config value already set by the deployment, or an empty one (traitlets gives a lazy stub)."""
    return value if isinstance(value, kind) else kind()


def update_service(c: Any, plan: HubPlan) -> None:
    service: dict[str, Any] = {
        "name": SERVICE_NAME,
        "url": plan.service_url,
        "api_token": plan.service_token,
        "display": True,
        "oauth_no_confirm": True,
        # The admin page's sign-in token: the hub grants each scope only to users who hold
        # it, so an admin's token says so (service/auth.py Identity.is_admin) and a
        # non-admin's carries neither.
        "oauth_client_allowed_scopes": [ADMIN_SCOPE, HUB_ADMIN_POWER_SCOPE],
    }
    if plan.manage_service:
        environment = dict(plan.service_environment)
        if plan.config_path:
            environment["SUBSIDYHUB_CONFIG"] = plan.config_path
        if plan.data_dir:
            environment["SUBSIDYHUB_DATA_DIR"] = plan.data_dir
        service["command"] = [sys.executable, "-m", "subsidyhub.service"]
        service["environment"] = environment
    c.JupyterHub.services = [
        s for s in _existing(c.JupyterHub.services, list) if s.get("name") != SERVICE_NAME
    ] + [service]


def update_roles(c: Any, plan: HubPlan) -> None:
    """Least privilege: the service reads users and stops servers; users reach the service."""
    c.JupyterHub.custom_scopes = _existing(c.JupyterHub.custom_scopes, dict) | {
        ADMIN_SCOPE: {
            "description": "Administer SubsidyHub: projects, allocations, prices, quotas."
        }
    }
    access = f"access:services!service={SERVICE_NAME}"
    roles = {
        "subsidy-service": {
            "name": "subsidy-service",
            "description": "The subsidy service: list users and servers, stop servers.",
            "scopes": ["list:users", "read:users", "read:servers", "servers"],
            "services": [SERVICE_NAME],
        },
        # The environment notes' scope trap: a server token only gets scopes its user holds,
        # so the access scope goes on both the user and the server role.
        "user": {"name": "user", "scopes": ["self", access]},
        "server": {
            "name": "server",
            "scopes": ["users:activity!user", "access:servers!server", access],
        },
        "subsidy-admins": {
            "name": "subsidy-admins",
            "description": "Centre admins of SubsidyHub.",
            "scopes": [ADMIN_SCOPE, access],
            "users": list(plan.subsidy_admins),
        },
    }
    kept = [r for r in _existing(c.JupyterHub.load_roles, list) if r.get("name") not in roles]
    c.JupyterHub.load_roles = kept + list(roles.values())


def update_spawner(c: Any, settings: Settings, hooks: SubsidyHooks, client: SubsidyClient) -> None:
    images = image_labels(settings)

    async def options_form(spawner: Any) -> str:
        return await render_options_form(client, spawner.user.name, images)

    c.Spawner.options_form = options_form
    c.Spawner.options_from_form = lambda formdata: options_from_form(formdata)
    c.Spawner.apply_user_options = hooks.apply_user_options
    c.Spawner.pre_spawn_hook = hooks.pre_spawn
    c.Spawner.post_stop_hook = hooks.post_stop
    c.LocalGPUSpawner.profile_gpu_counts = {
        p.slug: p.gpu_count for p in settings.profiles if p.gpu_count
    }
    if settings.local.gpus is not None:
        c.LocalGPUSpawner.gpu_ids = list(settings.local.gpus)


def update_templates(c: Any) -> None:
    """The spawn page override (``templates/spawn.html``); a deployment's own paths win."""
    paths = [p for p in _existing(c.JupyterHub.template_paths, list) if p != str(TEMPLATES)]
    c.JupyterHub.template_paths = [*paths, str(TEMPLATES)]


def update_server_environment(c: Any, plan: HubPlan) -> None:
    """Tell single-user servers where the service is: jupyterlab-subsidy reads it from there.

    ``JUPYTERHUB_API_URL`` is the hub's internal API, which does not route to services, and
    ``JUPYTERHUB_PUBLIC_HUB_URL`` is empty unless ``JupyterHub.public_url`` is set; the
    service's own URL is reachable from the servers the hub starts.

    Set on ``Spawner`` and merged into every spawner class's own ``environment`` the
    deployment set: traitlets gives a subclass's section precedence over its parent's, so
    z2jh's ``c.KubeSpawner.environment`` (from ``singleuser.extraEnv``) would otherwise hide it.
    """
    ours = {"SUBSIDYHUB_SERVICE_URL": plan.service_url.rstrip("/") + SERVICE_PREFIX}
    c.Spawner.environment = _existing(c.Spawner.environment, dict) | ours
    for section in [name for name in c if name.endswith("Spawner") and name != "Spawner"]:
        if "environment" in c[section]:
            c[section].environment = _existing(c[section].environment, dict) | ours


def update_backend(c: Any, settings: Settings) -> None:
    """Apply ``backend``: ``local`` keeps the deployment's spawner (the embedded default picks
    LocalGPUSpawner), ``kubernetes`` and ``docker`` configure theirs from the profiles.

    Imported on use: KubeSpawner and DockerSpawner are optional extras.
    """
    if settings.backend == "kubernetes":
        from subsidyhub.hubplugin.kubernetes import update_kubernetes

        update_kubernetes(c, settings)
    elif settings.backend == "docker":
        from subsidyhub.hubplugin.docker import update_docker

        update_docker(c, settings)


def update_sso(c: Any, settings: Settings, client: SubsidyClient) -> None:
    """With ``sso.groups``, sync memberships from the identity provider's groups at login.

    Set on ``Authenticator`` so it applies to any authenticator class; a hook the deployment
    set there already runs first. Needs ``manage_groups`` on the authenticator (see
    docs/authentication.md); without it the hook has no groups and does nothing.
    """
    if not settings.sso.groups:
        return
    previous = c.Authenticator.post_auth_hook
    if isinstance(previous, SsoGroupSync):  # configured twice: keep the deployment's hook only
        previous = previous.previous
    c.Authenticator.post_auth_hook = SsoGroupSync(client, previous if callable(previous) else None)


def configure_hub(c: Any, settings: Settings, plan: HubPlan) -> SubsidyHooks:
    client = SubsidyClient(plan.api_url, plan.service_token)
    hooks = SubsidyHooks(settings, client)
    update_service(c, plan)
    update_roles(c, plan)
    update_spawner(c, settings, hooks, client)
    update_backend(c, settings)
    update_templates(c)
    update_server_environment(c, plan)
    update_sso(c, settings, client)
    return hooks
