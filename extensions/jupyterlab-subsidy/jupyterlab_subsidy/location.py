"""Where the subsidy service is and who is asking, from the single-user server's environment.

JupyterHub gives every server ``JUPYTERHUB_API_TOKEN`` (the server's own token, which the hub
grants ``access:services!service=subsidy``), ``JUPYTERHUB_USER`` and ``JUPYTERHUB_SERVER_NAME``;
SubsidyHub adds ``SUBSIDYHUB_SERVICE_URL`` (the service's own URL, reachable from servers,
which ``JUPYTERHUB_API_URL`` is not: that is the hub's internal API), ``SUBSIDYHUB_PROJECT``
and ``SUBSIDYHUB_PROFILE``. Without ``SUBSIDYHUB_SERVICE_URL`` the service is looked for
through the proxy beside the hub's public URL, as a browser would reach it. Kernels inherit
the same environment, so the ipywidgets side reads the same place. Pure: no I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SERVICE_NAME = "subsidy"


class NotConfigured(Exception):
    """The environment does not say where the service is or how to authenticate."""


@dataclass(frozen=True)
class ServiceLocation:
    """The service's base URL (ending in ``/``) and the identity of this server."""

    url: str
    token: str
    user: str
    server_name: str = ""
    project: str | None = None
    profile: str | None = None

    def api(self, path: str) -> str:
        """The URL of ``api/v1/PATH``."""
        return f"{self.url}api/v1/{path.lstrip('/')}"


def service_url_from(environ: Mapping[str, str]) -> str | None:
    """The service URL the environment gives, normalised to end in ``/``; ``None`` if none."""
    explicit = environ.get("SUBSIDYHUB_SERVICE_URL", "").strip()
    if explicit:
        return explicit.rstrip("/") + "/"
    # JUPYTERHUB_PUBLIC_HUB_URL is ``https://host/prefix/hub/`` when the hub's public_url is set.
    public_hub = environ.get("JUPYTERHUB_PUBLIC_HUB_URL", "").strip()
    if public_hub:
        root = public_hub.rstrip("/").removesuffix("/hub")
        return f"{root}/services/{SERVICE_NAME}/"
    return None


def locate_service(environ: Mapping[str, str], url: str = "", token: str = "") -> ServiceLocation:
    """Read the location from ``environ``; ``url``/``token`` (from config) win when given.

    Raises :class:`NotConfigured` with what to set when a piece is missing.
    """
    found_url = url.rstrip("/") + "/" if url else service_url_from(environ)
    if not found_url:
        raise NotConfigured(
            "jupyterlab-subsidy does not know where the subsidy service is: SubsidyHub sets "
            "SUBSIDYHUB_SERVICE_URL for the servers it spawns; set it (or "
            "c.SubsidyExtension.service_url) to the service's URL, e.g. "
            "http://hub.example.org/services/subsidy/"
        )
    found_token = token or environ.get("JUPYTERHUB_API_TOKEN", "")
    if not found_token:
        raise NotConfigured(
            "jupyterlab-subsidy has no token for the subsidy service: JUPYTERHUB_API_TOKEN is "
            "not set, so this server was not started by JupyterHub"
        )
    return ServiceLocation(
        url=found_url,
        token=found_token,
        user=environ.get("JUPYTERHUB_USER", ""),
        server_name=environ.get("JUPYTERHUB_SERVER_NAME", ""),
        project=environ.get("SUBSIDYHUB_PROJECT") or None,
        profile=environ.get("SUBSIDYHUB_PROFILE") or None,
    )
