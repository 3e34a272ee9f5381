"""The subsidy service as a notebook kernel reaches it: synchronous, standard library only.

A kernel inherits its server's environment (``JUPYTERHUB_API_TOKEN``,
``SUBSIDYHUB_SERVICE_URL``, ``SUBSIDYHUB_PROJECT``), so it asks the service directly with the
same token the server extension uses; no extra package is needed in the kernel's environment
besides ipywidgets for the widget. Errors carry the service's own message.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from jupyterlab_subsidy.figures import CostEstimate, currency_of, estimate_cost
from jupyterlab_subsidy.location import NotConfigured, ServiceLocation, locate_service


class SubsidyError(Exception):
    """The service refused or could not be reached; ``str()`` is its message for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class KernelClient:
    """GETs of the service's ``api/v1/`` paths with this server's token."""

    def __init__(self, location: ServiceLocation, timeout: float = 10.0) -> None:
        self.location = location
        self.timeout = timeout

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> KernelClient:
        try:
            return cls(locate_service(os.environ if environ is None else environ))
        except NotConfigured as problem:
            raise SubsidyError(503, str(problem)) from None

    def get(self, path: str) -> dict[str, Any]:
        request = urllib.request.Request(
            self.location.api(path),
            headers={
                "Authorization": f"token {self.location.token}",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body: dict[str, Any] = json.load(response)
                return body
        except urllib.error.HTTPError as error:
            try:
                message = json.load(error).get("message")
            except (ValueError, AttributeError):
                message = None
            raise SubsidyError(
                error.code, message or f"The subsidy service answered HTTP {error.code}."
            ) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise SubsidyError(
                503, f"The subsidy service is not reachable ({reason}); try again in a minute."
            ) from None

    def me(self) -> dict[str, Any]:
        return self.get("me")

    def profiles(self) -> dict[str, Any]:
        user = self.location.user
        if not user:
            raise SubsidyError(503, "JUPYTERHUB_USER is not set, so the user is unknown.")
        return self.get(f"users/{quote(user, safe='')}/profiles")

    def cost(self, profile: str, hours: Any, project: str | None = None) -> CostEstimate:
        """What ``hours`` of ``profile`` would cost, in ``project`` or this server's project."""
        offers = self.profiles()
        slugs = {p["slug"] for p in offers.get("projects", [])}
        own = self.location.project if self.location.project in slugs else None
        wanted = project or own
        return estimate_cost(offers, profile, hours, wanted, currency_of(self.me()))
