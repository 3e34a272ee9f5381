"""Apply SubsidyHub to a JupyterHub config object, from ``subsidyhub.yaml``.

Used by the embedded ``jupyterhub_config.py`` (``subsidyhub up``), by the z2jh overlay
(:mod:`subsidyhub.hubplugin.z2jh`) and, for its service, roles and scopes
(:func:`configure_access`), by the test hub (:mod:`subsidyhub.testing.hub`), so tests run
against the permissions production grants. Each ``update_*`` function only sets keys (never
appends to lists a deployment may own), so calling :func:`configure_hub` twice gives the same
config.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from subsidyhub.hubplugin.client import SubsidyClient
from subsidyhub.hubplugin.form import image_labels, options_from_form, render_options_form
from subsidyhub.hubplugin.hooks import SubsidyHooks
from subsidyhub.hubplugin.kubernetes import update_kubernetes
from subsidyhub.hubplugin.outbox import StopOutbox
from subsidyhub.hubplugin.queue_handler import PATH as QUEUE_PATH
from subsidyhub.hubplugin.queue_handler import QueueHandler
from subsidyhub.hubplugin.sso import SsoGroupSync
from subsidyhub.hubplugin.stop_notes import StopNotes
from subsidyhub.names import (
    ACCESS_SCOPE,
    ADMIN_SCOPE,
    ADMINS_ROLE,
    API_PATH,
    HUB_ADMIN_POWER_SCOPE,
    HUB_PID_ENV,
    SERVICE_NAME,
    SERVICE_PREFIX,
    SERVICE_ROLE,
)
from subsidyhub.settings import Settings

TEMPLATES = Path(__file__).with_name("templates")


@dataclass(frozen=True)
class HubPlan:
    """Where things run; filled by ``subsidyhub up`` or by the deployment."""

    service_url: str
    service_token: str
    config_path: str | None = None
    # The hub's data directory: the managed service's too, and where the stop outbox lives
    # unless hub.outbox_dir says otherwise. None: the hub's working directory.
    data_dir: str | None = None
    manage_service: bool = True
    subsidy_admins: tuple[str, ...] = ()
    service_environment: dict[str, str] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"{self.service_url.rstrip('/')}{SERVICE_PREFIX}{API_PATH}/"


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
        # The config is loaded by the hub process that starts the service: the service ends
        # with it, even when it is killed (service/lifeline.py).
        environment[HUB_PID_ENV] = str(os.getpid())
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
    roles = {
        SERVICE_ROLE: {
            "name": SERVICE_ROLE,
            "description": "The subsidy service: list users and servers, stop servers.",
            "scopes": ["list:users", "read:users", "read:servers", "servers"],
            "services": [SERVICE_NAME],
        },
        # The environment notes' scope trap: a server token only gets scopes its user holds,
        # so the access scope goes on both the user and the server role.
        "user": {"name": "user", "scopes": ["self", ACCESS_SCOPE]},
        "server": {
            "name": "server",
            "scopes": ["users:activity!user", "access:servers!server", ACCESS_SCOPE],
        },
        ADMINS_ROLE: {
            "name": ADMINS_ROLE,
            "description": "Centre admins of SubsidyHub.",
            "scopes": [ADMIN_SCOPE, ACCESS_SCOPE],
            "users": list(plan.subsidy_admins),
        },
    }
    kept = [r for r in _existing(c.JupyterHub.load_roles, list) if r.get("name") not in roles]
    c.JupyterHub.load_roles = kept + list(roles.values())


def update_spawner(c: Any, settings: Settings, hooks: SubsidyHooks, client: SubsidyClient) -> None:
    images = image_labels(settings)

    async def options_form(spawner: Any) -> str:
        return await render_options_form(client, spawner, images)

    c.Spawner.options_form = options_form
    handlers = [h for h in _existing(c.JupyterHub.extra_handlers, list) if h[0] != QUEUE_PATH]
    c.JupyterHub.extra_handlers = [*handlers, (QUEUE_PATH, QueueHandler, {"client": client})]
    c.Spawner.options_from_form = lambda formdata: options_from_form(formdata)
    c.Spawner.apply_user_options = hooks.apply_user_options
    c.Spawner.pre_spawn_hook = hooks.pre_spawn
    c.Spawner.post_stop_hook = hooks.post_stop
    c.LocalGPUSpawner.profile_gpu_counts = {
        p.slug: p.gpu_count for p in settings.profiles if p.gpu_count
    }
    if settings.local.gpus is not None:
        c.LocalGPUSpawner.gpu_ids = list(settings.local.gpus)


def update_templates(c: Any, stop_notes: StopNotes | None = None) -> None:
    """The page overrides (``templates/``); a deployment's own paths win. With
    ``stop_notes``, the home and spawn pages say why the user's server last stopped
    (``subsidy_stop``, called with the page's user)."""
    paths = [p for p in _existing(c.JupyterHub.template_paths, list) if p != str(TEMPLATES)]
    c.JupyterHub.template_paths = [*paths, str(TEMPLATES)]
    if stop_notes is not None:
        c.JupyterHub.template_vars = _existing(c.JupyterHub.template_vars, dict) | {
            "subsidy_stop": stop_notes
        }


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

    The Docker backend is imported on use: DockerSpawner is an optional extra.
    """
    if settings.backend == "kubernetes":
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


def configure_access(c: Any, plan: HubPlan) -> None:
    """The service, its role, the users' access to it and the admin scope: what any hub in
    front of the subsidy service grants, test hubs included."""
    update_service(c, plan)
    update_roles(c, plan)


def outbox_dir(settings: Settings, plan: HubPlan) -> Path:
    """Where undelivered stop notices are kept: ``hub.outbox_dir``, else in the data directory."""
    if settings.hub.outbox_dir is not None:
        return settings.hub.outbox_dir.resolve()
    return (Path(plan.data_dir or ".") / "subsidy-stop-outbox").resolve()


def configure_hub(c: Any, settings: Settings, plan: HubPlan) -> SubsidyHooks:
    client = SubsidyClient(
        plan.api_url, plan.service_token, timeout=settings.hub.service_timeout_seconds
    )
    outbox = StopOutbox(outbox_dir(settings, plan), client)
    # JupyterHub loads its config inside its event loop: notices kept across a restart are
    # delivered from the start.
    outbox.start()
    hooks = SubsidyHooks(settings, client, outbox)
    hooks.stop_notes = StopNotes(client)
    configure_access(c, plan)
    update_spawner(c, settings, hooks, client)
    update_backend(c, settings)
    update_templates(c, hooks.stop_notes)
    update_server_environment(c, plan)
    update_sso(c, settings, client)
    return hooks
