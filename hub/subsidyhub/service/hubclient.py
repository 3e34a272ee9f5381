"""The service's client for JupyterHub's REST API: stop a server, list running servers.

Uses the service's own token, whose role grants ``list:users``, ``read:users``,
``read:servers`` and ``servers`` and nothing more. Listing is paginated (``state=active``,
pages of ``page_size``) so reconciling a hub with thousands of users never asks for all of
them in one response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

import httpx

from subsidyhub.netutil import tls_context
from subsidyhub.timeutil import to_ms

PAGINATION = "application/jupyterhub-pagination+json"


class HubUnavailable(Exception):
    """The hub could not be asked; try again on the next round."""


@dataclass(frozen=True, slots=True)
class HubServer:
    user: str
    name: str
    started_ms: int | None
    pending: str | None
    ready: bool
    profile: str | None
    project: str | None


def _server_path(user: str, server_name: str) -> str:
    base = f"users/{quote(user, safe='')}"
    return f"{base}/servers/{quote(server_name, safe='')}" if server_name else f"{base}/server"


def _parse_time(text: str | None) -> int | None:
    if not text:
        return None
    return to_ms(datetime.fromisoformat(text.replace("Z", "+00:00")))


class HubClient:
    def __init__(
        self, api_url: str, token: str, *, page_size: int = 200, timeout: float = 10.0
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=api_url.rstrip("/") + "/",
            headers={"Authorization": f"token {token}"},
            timeout=timeout,
            verify=tls_context(),
        )
        self.page_size = page_size

    async def aclose(self) -> None:
        await self._client.aclose()

    async def stop_server(self, user: str, server_name: str) -> bool:
        """Ask the hub to stop a server; True once it is stopping or already gone."""
        try:
            response = await self._client.delete(_server_path(user, server_name))
        except httpx.HTTPError as error:
            raise HubUnavailable(f"DELETE {user}/{server_name}: {error}") from None
        if response.status_code in (202, 204, 404):
            return True
        if response.status_code == 400 and "not running" in response.text:
            return True
        raise HubUnavailable(f"DELETE {user}/{server_name}: HTTP {response.status_code}")

    async def active_servers(self) -> AsyncIterator[HubServer]:
        """Every server the hub has running or starting, page by page."""
        offset = 0
        while True:
            try:
                response = await self._client.get(
                    "users",
                    params={"state": "active", "offset": offset, "limit": self.page_size},
                    headers={"Accept": PAGINATION},
                )
            except httpx.HTTPError as error:
                raise HubUnavailable(f"GET users: {error}") from None
            if response.status_code != 200:
                raise HubUnavailable(f"GET users: HTTP {response.status_code}")
            page = response.json()
            items = page["items"] if isinstance(page, dict) else page
            for user in items:
                for name, server in (user.get("servers") or {}).items():
                    options = server.get("user_options") or {}
                    yield HubServer(
                        user=user["name"],
                        name=name,
                        started_ms=_parse_time(server.get("started")),
                        pending=server.get("pending"),
                        ready=bool(server.get("ready")),
                        profile=options.get("profile"),
                        project=options.get("project"),
                    )
            following = page.get("_pagination", {}).get("next") if isinstance(page, dict) else None
            if not following or not items:
                return
            offset = int(following["offset"])
