"""``/hub/subsidy/queue``: the spawn page's way into the GPU queue, for the signed-in user.

The spawn page is served by the hub, so it asks the hub: this handler checks the person's
hub login (and JupyterHub's XSRF token on a POST) and calls the subsidy service with the
hub's own token, for that person only. GET answers their places (the spawn page polls it
each second; the service keeps each queue's places for a second); POST ``{"profile", "project", "server_name"}`` takes a place (what "Join the
queue" does), ``{"action": "leave", "server_name"}`` gives it up. The service's refusals
come back as ``{"status", "message"}`` with its status, so the page shows the sentence.
"""

from __future__ import annotations

import json
from typing import Any

from jupyterhub.handlers import BaseHandler
from tornado import web

from subsidyhub.hubplugin.client import ServiceRefused, ServiceUnavailable, SubsidyClient

PATH = r"/subsidy/queue"


class QueueHandler(BaseHandler):  # type: ignore[misc]
    def initialize(self, client: SubsidyClient) -> None:
        self.client = client

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))

    async def _relay(self, call: Any) -> None:
        try:
            self._answer(200, await call)
        except ServiceRefused as refused:
            self._answer(
                refused.status,
                {"status": refused.status, "message": refused.message, "reason": refused.reason},
            )
        except ServiceUnavailable:
            self._answer(
                503,
                {
                    "status": 503,
                    "message": "The subsidy service is not reachable now; your place, if you "
                    "have one, is kept. Try again in a minute.",
                },
            )

    @web.authenticated
    async def get(self) -> None:
        await self._relay(self.client.queue_places(self.current_user.name))

    @web.authenticated
    async def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._answer(400, {"status": 400, "message": "Send a JSON object."})
            return
        user = self.current_user.name
        server_name = str(body.get("server_name") or "")
        if body.get("action") == "leave":
            await self._relay(self.client.leave_queue(user, server_name))
            return
        profile = str(body.get("profile") or "")
        project = str(body.get("project") or "") or None
        await self._relay(self.client.join_queue(user, server_name, profile, project))
