"""SubsidyHub in a Zero to JupyterHub (z2jh) hub: the overlay's ``hub.extraConfig`` entry point.

Why a module of its own: it joins z2jh's values to
:func:`~subsidyhub.hubplugin.config.configure_hub`, which selects the Kubernetes builders of
:mod:`subsidyhub.hubplugin.kubernetes`; kept apart, those builders stay pure (settings in,
plain data out) and no module has to import another lazily to avoid a cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from subsidyhub.hubplugin.config import HubPlan, configure_hub
from subsidyhub.names import SERVICE_NAME
from subsidyhub.settings import load_settings

# The hub's working directory in z2jh's hub image, where its database's volume is mounted
# (hub.db.type sqlite-pvc): the stop outbox survives a hub pod's restart there.
Z2JH_HUB_DIR = "/srv/jupyterhub"


def configure_z2jh(c: Any, custom: Mapping[str, Any] | None = None) -> None:
    """The z2jh ``hub.extraConfig`` entry point (see helm/jupyterhub-values.yaml).

    ``custom`` is z2jh's ``custom.subsidyhub``: ``fullname`` and ``port`` of the subsidyhub
    chart's Service (default ``subsidyhub``, 8000; same namespace) and ``admins``. z2jh has
    already turned ``hub.services.subsidy`` into a ``c.JupyterHub.services`` entry with the
    token it generated (and publishes in its hub Secret, where the subsidyhub chart reads it);
    the service runs as its own Deployment, so the hub does not manage it.
    ``SUBSIDYHUB_CONFIG`` names the subsidyhub.yaml mounted from the subsidyhub chart's ConfigMap.
    """
    custom = dict(custom or {})
    services = c.JupyterHub.services if isinstance(c.JupyterHub.services, list) else []
    entry = next((s for s in services if s.get("name") == SERVICE_NAME), None)
    if entry is None or not entry.get("api_token"):
        raise RuntimeError(
            f"hub.services.{SERVICE_NAME} is missing from the z2jh values (it may be empty: z2jh "
            "generates its token); see helm/jupyterhub-values.yaml and docs/deploy-kubernetes.md"
        )
    service_url = f"http://{custom.get('fullname') or 'subsidyhub'}:{custom.get('port') or 8000}"
    settings = load_settings()
    plan = HubPlan(
        service_url=service_url,
        service_token=entry["api_token"],
        data_dir=Z2JH_HUB_DIR,
        manage_service=False,
        subsidy_admins=tuple(custom.get("admins") or ()),
    )
    configure_hub(c, settings, plan)
