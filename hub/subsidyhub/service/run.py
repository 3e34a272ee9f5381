"""Run the service the way JupyterHub runs a managed service: configured by environment.

JupyterHub starts ``python -m subsidyhub.service`` with

* ``JUPYTERHUB_SERVICE_URL``: where to listen (``http://127.0.0.1:10101``);
* ``JUPYTERHUB_SERVICE_PREFIX``: the URL prefix the proxy forwards (``/services/subsidy/``);
* ``JUPYTERHUB_API_URL`` and ``JUPYTERHUB_API_TOKEN``: the hub's API and the service's token;
* ``JUPYTERHUB_CLIENT_ID``, ``JUPYTERHUB_OAUTH_CALLBACK_URL``, ``JUPYTERHUB_HOST`` and
  ``JUPYTERHUB_BASE_URL``: how the admin page signs in through the hub's OAuth;

and SubsidyHub adds ``SUBSIDYHUB_CONFIG`` (the ``subsidyhub.yaml`` in force; the embedded
default when unset) and ``SUBSIDYHUB_REQUIRE_POSTGRESQL`` (set by the Helm chart: refuse a ledger
that is not PostgreSQL). As the hub's managed service, the hub plugin also sets
``SUBSIDYHUB_HUB_PID``, and the process ends with that hub (:mod:`subsidyhub.service.lifeline`).
At start the database schema is brought up to date and the config's prices are loaded, so a
fresh database is ready before the first request. A missing variable or a bad config stops the
start with one line saying what to set.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import uvicorn

from subsidyhub.ledger.db import Database
from subsidyhub.ledger.migrate import upgrade
from subsidyhub.names import OAUTH_CLIENT_ID, SERVICE_PREFIX
from subsidyhub.service.app import create_app
from subsidyhub.service.browser_auth import BrowserLogin
from subsidyhub.service.lifeline import NoHub, follow_hub
from subsidyhub.settings import ConfigError, load_settings

REQUIRED = ("JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN")
REQUIRE_POSTGRESQL = "SUBSIDYHUB_REQUIRE_POSTGRESQL"


class EnvironmentProblem(Exception):
    """The process was started without what a JupyterHub managed service is given."""


@dataclass(frozen=True)
class ServiceEnvironment:
    host: str
    port: int
    prefix: str
    hub_api_url: str
    api_token: str
    browser_login: BrowserLogin

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ServiceEnvironment:
        missing = [name for name in REQUIRED if not environ.get(name)]
        if missing:
            raise EnvironmentProblem(
                f"{', '.join(missing)} not set; JupyterHub sets these for a managed service "
                "(c.JupyterHub.services with 'url' and 'command'), or set them yourself to "
                "run the service on its own."
            )
        url = urlsplit(environ["JUPYTERHUB_SERVICE_URL"])
        if url.scheme not in ("http", "https") or not url.hostname:
            raise EnvironmentProblem(
                f"JUPYTERHUB_SERVICE_URL {environ['JUPYTERHUB_SERVICE_URL']!r} is not an "
                "http URL; give one such as http://127.0.0.1:10101"
            )
        prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX") or SERVICE_PREFIX
        return cls(
            host=url.hostname,
            port=url.port or (443 if url.scheme == "https" else 80),
            prefix=prefix,
            hub_api_url=environ["JUPYTERHUB_API_URL"],
            api_token=environ["JUPYTERHUB_API_TOKEN"],
            browser_login=BrowserLogin.for_service(
                prefix=prefix,
                hub_api_url=environ["JUPYTERHUB_API_URL"],
                client_secret=environ["JUPYTERHUB_API_TOKEN"],
                client_id=environ.get("JUPYTERHUB_CLIENT_ID") or OAUTH_CLIENT_ID,
                hub_host=environ.get("JUPYTERHUB_HOST", ""),
                hub_base_url=environ.get("JUPYTERHUB_BASE_URL") or "/",
                callback_url=environ.get("JUPYTERHUB_OAUTH_CALLBACK_URL") or None,
            ),
        )


def check_database_url(url: str, environ: Mapping[str, str]) -> None:
    """Refuse a ledger that is not PostgreSQL when ``SUBSIDYHUB_REQUIRE_POSTGRESQL`` is set.

    The Helm chart sets it (docs/decisions/kubernetes-database.md): on Kubernetes the ledger,
    the centre's money record, would otherwise be SQLite on the pod's disk, lost with the pod
    and not shared by replicas or by the old and new pods of a rolling update. The chart checks
    the URL it renders itself, but not one in an operator's Secret, hence this check at start.
    Only the URL's scheme is shown: the rest may hold the database password.
    """
    if environ.get(REQUIRE_POSTGRESQL, "").strip().lower() in ("", "0", "false", "no"):
        return
    scheme = urlsplit(url).scheme
    if scheme.split("+", 1)[0] == "postgresql":
        return
    raise EnvironmentProblem(
        f"{REQUIRE_POSTGRESQL} is set (the Helm chart sets it) but the ledger's database URL is "
        f"{f'{scheme}:…' if scheme else 'not a URL'}, not PostgreSQL: put a "
        "postgresql+psycopg://USER:PASSWORD@HOST/DB URL in SUBSIDYHUB_DATABASE_URL (the key "
        "database-url of the chart's Secret); SQLite on a pod's disk loses the ledger with the pod "
        "and cannot be shared by replicas."
    )


# How long an idle keep-alive connection stays open. configurable-http-proxy reuses idle
# connections with no idle timeout of its own; uvicorn's default (5 s) closes them while the
# proxy may be sending on one, which it answers with 503 "socket hang up" (seen in the suite).
# Closing only after ten idle minutes makes that race rare.
KEEP_ALIVE_S = 600


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s"
    )
    try:
        follow_hub(os.environ)  # first: a service whose hub is gone must not start metering
        environment = ServiceEnvironment.from_environ(os.environ)
        settings = load_settings()
        check_database_url(settings.resolved_database_url(), os.environ)
    except (NoHub, EnvironmentProblem, ConfigError) as problem:
        print(f"subsidyhub service: {problem}", file=sys.stderr)
        raise SystemExit(2) from None
    db = Database(settings.resolved_database_url())
    upgrade(db, settings)
    app = create_app(
        settings,
        db,
        prefix=environment.prefix,
        hub_api_url=environment.hub_api_url,
        service_token=environment.api_token,
        enforce=True,
        browser_login=environment.browser_login,
    )
    # Everything alive now (modules, metadata, settings) lives as long as the process: keep it
    # out of the garbage collector's full scans, which otherwise recur during every tick.
    gc.freeze()
    # The hub stops a managed service with SIGINT first (LocalProcessSpawner), as Ctrl-C does:
    # uvicorn shuts down cleanly and then raises the signal again; with the default action
    # the process ends there, not in asyncio's KeyboardInterrupt with a cancelled lifespan's
    # traceback in the hub's log.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # uvicorn's own access log would print query strings; the app logs requests itself.
    uvicorn.run(
        app,
        host=environment.host,
        port=environment.port,
        access_log=False,
        log_config=None,
        timeout_keep_alive=KEEP_ALIVE_S,
    )
