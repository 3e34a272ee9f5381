"""The server extension: ``{base_url}subsidy/...`` handlers that read the subsidy service.

JupyterLab's status bar, panel and notifications call these rather than the service, so the
browser needs no token of its own: the server asks the service with its
``JUPYTERHUB_API_TOKEN`` and caches the answer (:mod:`jupyterlab_subsidy.client`).

* ``GET subsidy/me``: the service's ``GET me``, plus ``server`` (this server's user, name,
  project and profile, so the front end knows which project and session are its own);
* ``GET subsidy/profiles``: ``GET users/{user}/profiles`` (rates and hours left per profile);
* ``GET subsidy/projects/{slug}/statement``: this month's statement (project managers);
* ``GET subsidy/spending``: ``GET me/spending?days=7`` (per project, list, subsidy and co-pay
  of each of the last 7 UTC days, for the panel's plot);
* ``GET subsidy/gpu-usage``: ``GET users/{user}/gpu-usage?server_name={this server}`` (this
  GPU server's recent utilisation and idle state, for the panel's GPU use plot);
* ``POST subsidy/keep``: ``POST users/{user}/keep`` with ``{"server_name": this server}`` (Keep
  it, when this server's GPUs are idle). Never cached; it drops the cached ``me`` and
  gpu-usage answers, so the idle warning and the panel's Keep it are gone at the next poll. The browser names no server: a server only ever
  keeps itself.

Every verb is ``@tornado.web.authenticated``. Errors keep the service's status and message.
Polling is not activity: the GET handlers do not touch the server's last-activity time, or an
open tab would keep an idle server (and its charges) running past the idle culler. Keep it is
the exception: a press is a person at this server asking for it to run on, so it counts as
activity, as any other action of theirs in the lab does.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.serverapp import ServerApp
from jupyter_server.utils import url_path_join
from traitlets import Float, Unicode
from traitlets.config import Configurable

from jupyterlab_subsidy.client import Answer, ServiceClient
from jupyterlab_subsidy.location import ServiceLocation, locate_service

ROUTE = "subsidy"


class SubsidyExtension(Configurable):
    """Settings of the server extension (``c.SubsidyExtension.*``)."""

    service_url = Unicode(
        "",
        help="""URL of the subsidy service, e.g. "http://127.0.0.1:10101/services/subsidy/".
        Default: ``SUBSIDYHUB_SERVICE_URL``, which SubsidyHub sets for the servers it spawns,
        else ``services/subsidy/`` beside ``JUPYTERHUB_PUBLIC_HUB_URL``.""",
    ).tag(config=True)

    cache_seconds = Float(
        3.0,
        help="""Seconds an answer of the service is reused for every tab of this server
        (default 3: with the page's 5 s poll and the service's 1 s cache, a new warning shows
        within 10 s). Errors are cached as long, so a service that is down is not hammered.""",
    ).tag(config=True)

    timeout_seconds = Float(
        10.0, help="Seconds to wait for the subsidy service before reporting it unreachable."
    ).tag(config=True)


class SubsidyState:
    """What the handlers share: the service client and this server's identity."""

    def __init__(self, extension: SubsidyExtension, environ: dict[str, str]) -> None:
        self.extension = extension
        self.environ = environ
        self.client = ServiceClient(
            self.locate,
            cache_seconds=extension.cache_seconds,
            timeout_seconds=extension.timeout_seconds,
        )

    def locate(self) -> ServiceLocation:
        return locate_service(self.environ, self.extension.service_url)

    def user_path(self, fallback_user: str) -> str:
        """``users/{user}``: this server's user (else the signed-in one), quoted."""
        return f"users/{quote(self.server()['user'] or fallback_user, safe='')}"

    def gpu_usage_path(self, fallback_user: str) -> str:
        """The service's path of this server's GPU use."""
        name = quote(self.server()["name"], safe="")
        return f"{self.user_path(fallback_user)}/gpu-usage?server_name={name}"

    def server(self) -> dict[str, Any]:
        """This server as the front end needs it: whose, which name, project and profile."""
        return {
            "user": self.environ.get("JUPYTERHUB_USER", ""),
            "name": self.environ.get("JUPYTERHUB_SERVER_NAME", ""),
            "project": self.environ.get("SUBSIDYHUB_PROJECT") or None,
            "profile": self.environ.get("SUBSIDYHUB_PROFILE") or None,
        }


class SubsidyHandler(APIHandler):
    """Base of the handlers: the shared state and JSON replies that keep the service's status."""

    _track_activity = False  # see the module docstring: polling must not defeat idle culling

    @property
    def subsidy(self) -> SubsidyState:
        state: SubsidyState = self.settings["jupyterlab_subsidy"]
        return state

    def reply(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))

    def reply_answer(self, answer: Answer) -> None:
        self.reply(answer.status, answer.body)


class MeHandler(SubsidyHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        answer = await self.subsidy.client.get("me")
        if not answer.ok:
            self.reply_answer(answer)
            return
        self.reply(answer.status, answer.body | {"server": self.subsidy.server()})


class ProfilesHandler(SubsidyHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        user = self.subsidy.server()["user"] or self.current_user.username
        self.reply_answer(await self.subsidy.client.get(f"users/{quote(user, safe='')}/profiles"))


class StatementHandler(SubsidyHandler):
    @tornado.web.authenticated
    async def get(self, slug: str) -> None:
        # Statements change with each metering interval, not each second: a minute is fresh.
        path = f"projects/{quote(slug, safe='')}/statement"
        self.reply_answer(await self.subsidy.client.get(path, max_age=60))


class SpendingHandler(SubsidyHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        self.reply_answer(await self.subsidy.client.get("me/spending?days=7"))


class GpuUsageHandler(SubsidyHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        path = self.subsidy.gpu_usage_path(self.current_user.username)
        self.reply_answer(await self.subsidy.client.get(path))


class KeepHandler(SubsidyHandler):
    # A press of Keep it is a person asking for this server to run on: it is activity.
    _track_activity = True

    @tornado.web.authenticated
    async def post(self) -> None:
        state = self.subsidy
        user = self.current_user.username
        answer = await state.client.post(
            f"{state.user_path(user)}/keep",
            {"server_name": state.server()["name"]},
            invalidates=("me", state.gpu_usage_path(user)),
        )
        self.reply_answer(answer)


def setup_handlers(server_app: ServerApp, environ: dict[str, str] | None = None) -> SubsidyState:
    """Register the handlers under the server's base URL; returns the shared state."""
    web_app = server_app.web_app
    state = SubsidyState(
        SubsidyExtension(config=server_app.config, parent=server_app),
        dict(os.environ if environ is None else environ),
    )
    web_app.settings["jupyterlab_subsidy"] = state
    base = url_path_join(web_app.settings["base_url"], ROUTE)
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "me"), MeHandler),
            (url_path_join(base, "profiles"), ProfilesHandler),
            (url_path_join(base, "projects", r"([^/]+)", "statement"), StatementHandler),
            (url_path_join(base, "spending"), SpendingHandler),
            (url_path_join(base, "gpu-usage"), GpuUsageHandler),
            (url_path_join(base, "keep"), KeepHandler),
        ],
    )
    return state
