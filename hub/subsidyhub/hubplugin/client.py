"""The hub's client for the subsidy service: spawn offers, admissions, stops, SSO groups.

Runs inside the JupyterHub process, so it is asynchronous and never blocks the hub's event
loop. It tells two failures apart, because they lead to different answers for the user: the
service *refused* (a 4xx with its message, shown as is) or the service is *unreachable*
(connection error, timeout, 5xx), which fails closed unless ``fail_open`` is configured.

Every call waits at most ``timeout`` seconds in all (``hub.service_timeout_seconds``). An
admission also tells the service that instant as its deadline, and the service refuses one
it could not commit by then, so the two sides agree on a spawn the hub gave up on; the hub
waits :data:`ANSWER_GRACE_S` more for an answer committed just before the deadline.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import httpx

from subsidyhub.netutil import tls_context
from subsidyhub.timeutil import iso

# How long past an admission's deadline the hub still waits for an answer in flight.
ANSWER_GRACE_S = 1.0


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
                verify=tls_context(),
            )
        return self._client

    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        wait_s: float | None = None,
    ) -> dict[str, Any]:
        wait_s = self._timeout if wait_s is None else wait_s
        try:
            async with asyncio.timeout(wait_s):
                response = await self.client.request(method, path, json=body, timeout=wait_s)
        except TimeoutError:
            raise ServiceUnavailable(f"{method} {path}: no answer within {wait_s:g} s") from None
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

    async def recent_stops(self, user: str) -> list[dict[str, Any]]:
        """The user's server stops of the last week, newest first, each with why."""
        return list((await self._call("GET", f"users/{quote(user, safe='')}/stops"))["stops"])

    @staticmethod
    def _spawn(user: str, server_name: str, profile: str, project: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"user": user, "server_name": server_name, "profile": profile}
        if project:
            body["project"] = project
        return body

    async def admit(
        self,
        user: str,
        server_name: str,
        profile: str,
        project: str | None,
        gpu_devices: list[str] | None = None,
        pod: str | None = None,
    ) -> dict[str, Any]:
        """Admit a spawn, by a deadline ``timeout`` from now (see the module's docstring).

        ``gpu_devices`` (the host GPUs it was given) or ``pod`` tell the service where to read
        the server's GPU utilisation."""
        deadline_ms = time.time_ns() // 1_000_000 + int(self._timeout * 1000)
        body = self._spawn(user, server_name, profile, project)
        body["deadline"] = iso(deadline_ms, exact=True)
        if gpu_devices:
            body["gpu_devices"] = gpu_devices
        if pod:
            body["pod"] = pod
        return await self._call("POST", "admissions", body, wait_s=self._timeout + ANSWER_GRACE_S)

    async def check_admission(
        self, user: str, server_name: str, profile: str, project: str | None
    ) -> dict[str, Any]:
        """The policy's verdict on a spawn, writing nothing; a refusal is ``ServiceRefused``."""
        return await self._call(
            "POST", "admissions/dry-run", self._spawn(user, server_name, profile, project)
        )

    async def stop_server(self, user: str, server_name: str, reason: str, stopped_ms: int) -> None:
        """Tell the service a server stopped at ``stopped_ms`` (as the hub saw it)."""
        await self._call(
            "POST",
            "servers/stop",
            {
                "user": user,
                "server_name": server_name,
                "reason": reason,
                "stopped_at": iso(stopped_ms, exact=True),
            },
        )

    async def queue_places(self, user: str) -> dict[str, Any]:
        """The user's places in GPU queues (``{"places": [...]}``)."""
        return await self._call("GET", f"queue?user={quote(user, safe='')}")

    async def join_queue(
        self, user: str, server_name: str, profile: str, project: str | None
    ) -> dict[str, Any]:
        return await self._call("POST", "queue", self._spawn(user, server_name, profile, project))

    async def leave_queue(self, user: str, server_name: str) -> dict[str, Any]:
        return await self._call("POST", "queue/leave", {"user": user, "server_name": server_name})

    async def sync_sso_groups(self, user: str, groups: list[str]) -> dict[str, Any]:
        """Make the user's SSO memberships what their identity-provider groups imply."""
        return await self._call(
            "PUT", f"users/{quote(user, safe='')}/sso-groups", {"groups": groups}
        )
