"""The hub's client for the subsidy service: spawn offers, admissions, stops, SSO groups.

Runs inside the JupyterHub process, so it is asynchronous and never blocks the hub's event
loop. It tells two failures apart, because they lead to different answers for the user: the
service *refused* (a 4xx with its message, shown as is) or the service is *unreachable*
(connection error, timeout, 5xx), which fails closed unless ``fail_open`` is configured.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx


class ServiceRefused(Exception):
    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason


class ServiceUnavailable(Exception):
    """The service could not be asked; the detail is for the log, not for users."""


class SubsidyClient:
    def __init__(self, api_url: str, token: str, *, timeout: float = 10.0) -> None:
        self.api_url = api_url.rstrip("/") + "/"
        self._token = token
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        # Created lazily, inside the hub's running event loop.
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.api_url,
                headers={"Authorization": f"token {self._token}"},
                timeout=self._timeout,
            )
        return self._client

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        try:
            response = await self.client.request(method, path, json=body)
        except httpx.HTTPError as error:
            raise ServiceUnavailable(f"{method} {path}: {type(error).__name__}: {error}") from None
        if response.status_code >= 500:
            raise ServiceUnavailable(f"{method} {path}: HTTP {response.status_code}")
        try:
            payload = response.json()
        except ValueError:
            raise ServiceUnavailable(
                f"{method} {path}: HTTP {response.status_code}, not JSON"
            ) from None
        if response.status_code >= 400:
            raise ServiceRefused(
                response.status_code,
                str(payload.get("message") or f"HTTP {response.status_code}"),
                str(payload.get("reason") or "refused"),
            )
        return payload

    async def offers(self, user: str) -> dict[str, Any]:
        return await self._call("GET", f"users/{user}/profiles")

    async def admit(
        self, user: str, server_name: str, profile: str, project: str | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"user": user, "server_name": server_name, "profile": profile}
        if project:
            body["project"] = project
        return await self._call("POST", "admissions", body)

    async def stop_server(self, user: str, server_name: str, reason: str) -> dict[str, Any] | None:
        """Tell the service a server stopped; ``None`` when it never admitted that server."""
        try:
            return await self._call(
                "POST", "servers/stop", {"user": user, "server_name": server_name, "reason": reason}
            )
        except ServiceRefused as refusal:
            if refusal.status == 404:
                return None
            raise

    async def sync_sso_groups(self, user: str, groups: list[str]) -> dict[str, Any]:
        """Make the user's SSO memberships what their identity-provider groups imply."""
        return await self._call(
            "PUT", f"users/{quote(user, safe='')}/sso-groups", {"groups": groups}
        )
