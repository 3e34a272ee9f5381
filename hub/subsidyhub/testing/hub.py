"""A real JupyterHub for tests and benchmarks, started throwaway and stopped without leftovers.

:class:`TestHub` writes a ``jupyterhub_config.py`` into a temporary directory and runs
``python -m jupyterhub`` with the npm ``configurable-http-proxy``, a SQLite hub database and
free loopback ports. The hub is set up the way SubsidyHub deploys it:

* the service ``subsidy`` (optionally a managed one, started by the hub with a command), with
  an API token and only the scopes it needs (``list:users``, ``read:users``, ``servers``);
* the custom scope ``custom:subsidy:admin``, granted to the user ``centre-admin``;
* ``access:services!service=subsidy`` on both the ``user`` and the ``server`` role (a server
  token only gets scopes its user holds, so the server role alone would be silently dropped);
* users ``alice``, ``bob``, ``carol``, ``centre-admin`` and the hub admin ``admin``;
* a second service, ``test-harness``, whose token can create tokens for any user, so a test
  can act as any of them (:meth:`TestHub.token_for`).

Use it as a context manager (``with TestHub(root=tmp) as hub:``); other test layers usually
wrap it in a session-scoped pytest fixture, since a hub takes ~5 s to start. :meth:`stop`
sends SIGTERM (the hub then stops the proxy and its managed services) and, should anything
the hub started outlive it, ends those processes by their ids.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from subsidyhub.testing.postgres import free_port

SERVICE_NAME = "subsidy"
HARNESS_SERVICE = "test-harness"
ADMIN_SCOPE = "custom:subsidy:admin"
HUB_ADMIN = "admin"
CENTRE_ADMIN = "centre-admin"
USERS = ("alice", "bob", "carol", CENTRE_ADMIN)
# What the subsidy service needs of the hub: list users and their servers, stop servers.
SERVICE_SCOPES = ("list:users", "read:users", "servers")


def proxy_command() -> str:
    """The npm configurable-http-proxy that ``make install`` puts beside the virtualenv."""
    installed = Path(sys.prefix) / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
    if installed.exists():
        return str(installed)
    found = shutil.which("configurable-http-proxy")
    if found:
        return found
    raise FileNotFoundError(
        f"configurable-http-proxy is not installed at {installed} nor on PATH; run "
        "`make install` (npm install --prefix <venv>/node configurable-http-proxy@5)"
    )


def wait_for(
    url: str,
    *,
    timeout: float,
    ready: Callable[[httpx.Response], bool] = lambda r: r.status_code < 500,
    alive: Callable[[], bool] = lambda: True,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """Poll ``url`` until ``ready(response)``; raise ``TimeoutError`` or when ``alive()`` fails."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the process behind {url} exited while waiting for it")
        try:
            response = httpx.get(url, headers=dict(headers or {}), timeout=2)
            if ready(response):
                return response
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as error:
            last = type(error).__name__
        time.sleep(0.1)
    raise TimeoutError(f"{url} was not ready after {timeout:.0f} s (last: {last})")


class TestHub:
    """One JupyterHub process with the SubsidyHub roles and services; see the module doc."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        *,
        root: Path | None = None,
        users: Sequence[str] = USERS,
        service_url: str | None = None,
        service_command: Sequence[str] | None = None,
        service_environment: Mapping[str, str] | None = None,
        extra_config: str = "",
    ) -> None:
        """``service_url`` routes ``/services/subsidy/`` to it; with ``service_command`` too
        the hub starts the service itself (a managed service) with ``service_environment``.
        ``extra_config`` is Python appended to the generated config (``c`` is in scope)."""
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="subsidyhub-hub-")) if root is None else root
        self.users = tuple(users)
        self.port = free_port()
        self.hub_port = free_port()
        self.proxy_api_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.api_url = f"http://127.0.0.1:{self.hub_port}/hub/api"
        self.service_prefix = f"/services/{SERVICE_NAME}/"
        self.service_url = service_url
        self.service_token = secrets.token_hex(32)
        self.harness_token = secrets.token_hex(32)
        self._service_command = list(service_command) if service_command else None
        self._service_environment = dict(service_environment or {})
        self._extra_config = extra_config
        self._process: subprocess.Popen[bytes] | None = None
        self._children: list[tuple[int, str]] = []
        self.log_path = self.root / "jupyterhub.log"

    # -- configuration ------------------------------------------------------------------

    def config_text(self) -> str:
        subsidy: dict[str, Any] = {"name": SERVICE_NAME, "api_token": self.service_token}
        if self.service_url:
            # OAuth as hubplugin/config.py sets it, so the admin page's sign-in can be tested
            # (the hub derives the redirect URI from the service's URL).
            subsidy |= {
                "url": self.service_url,
                "oauth_no_confirm": True,
                "oauth_client_allowed_scopes": [ADMIN_SCOPE, "admin:users"],
            }
        if self._service_command:
            subsidy["command"] = self._service_command
            subsidy["environment"] = self._service_environment
        services = [subsidy, {"name": HARNESS_SERVICE, "api_token": self.harness_token}]
        access = f"access:services!service={SERVICE_NAME}"
        roles = [
            {"name": "user", "scopes": ["self", access]},
            {"name": "server", "scopes": ["users:activity!user", "access:servers!server", access]},
            {"name": "subsidy-service", "scopes": list(SERVICE_SCOPES), "services": [SERVICE_NAME]},
            {"name": "subsidy-admins", "scopes": [ADMIN_SCOPE], "users": [CENTRE_ADMIN]},
            {
                "name": "test-harness",
                "scopes": ["admin:users", "tokens", "admin:servers", "list:services"],
                "services": [HARNESS_SERVICE],
            },
        ]
        settings: dict[str, Any] = {
            "JupyterHub.bind_url": self.url,
            "JupyterHub.hub_bind_url": f"http://127.0.0.1:{self.hub_port}",
            "JupyterHub.db_url": f"sqlite:///{self.root / 'jupyterhub.sqlite'}",
            "JupyterHub.cookie_secret_file": str(self.root / "cookie_secret"),
            "JupyterHub.pid_file": str(self.root / "jupyterhub.pid"),
            "JupyterHub.authenticator_class": "dummy",
            "JupyterHub.services": services,
            "JupyterHub.load_roles": roles,
            "JupyterHub.custom_scopes": {
                ADMIN_SCOPE: {"description": "Administer the subsidy service (tests)."}
            },
            "Authenticator.allowed_users": set(self.users),
            "Authenticator.admin_users": {HUB_ADMIN},
            "ConfigurableHTTPProxy.command": [proxy_command()],
            "ConfigurableHTTPProxy.api_url": f"http://127.0.0.1:{self.proxy_api_port}",
            "ConfigurableHTTPProxy.auth_token": secrets.token_hex(32),
            "ConfigurableHTTPProxy.pid_file": str(self.root / "proxy.pid"),
        }
        lines = [
            "# Generated by subsidyhub.testing.hub for one test run.",
            "c = get_config()  # noqa",
        ]
        lines += [f"c.{key} = {value!r}" for key, value in settings.items()]
        return "\n".join(lines) + "\n" + self._extra_config + "\n"

    # -- life cycle ---------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> Self:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "jupyterhub_config.py"
        config.write_text(self.config_text(), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
        with self.log_path.open("ab") as log:
            # A new session makes the hub the leader of a group holding only its children.
            self._process = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(config)],
                cwd=self.root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            # Through the proxy, so both are up; the proxy alone answers 404 until routed.
            wait_for(
                f"{self.url}hub/api/",
                timeout=timeout,
                ready=lambda response: response.status_code == 200,
                alive=self.is_running,
            )
        except (TimeoutError, RuntimeError) as problem:
            self.stop()
            raise RuntimeError(f"JupyterHub did not start: {problem}\n{self.log_tail()}") from None
        # Remembered now so that they are found even if the hub dies without cleaning up.
        self._children = _descendants(self._process.pid)
        return self

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        process, self._process = self._process, None
        if process is not None:
            # The proxy and managed services run in sessions of their own (so that they can
            # outlive a hub restart); note them now to end any the hub fails to stop.
            started = sorted(set(self._children) | set(_descendants(process.pid)))
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
            _end(started)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no hub log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- the hub's REST API ---------------------------------------------------------------

    def api(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """A request to the hub's API (``path`` after ``/hub/api``), as the harness by default."""
        headers = {"Authorization": f"token {token or self.harness_token}"}
        return httpx.request(
            method, f"{self.api_url}/{path.lstrip('/')}", headers=headers, timeout=30, **kwargs
        )

    def token_for(
        self,
        username: str,
        *,
        scopes: Sequence[str] | None = None,
        expires_in: int | None = None,
        note: str = "subsidyhub tests",
    ) -> str:
        """A new API token of ``username``: with the user's own permissions, or ``scopes``."""
        body: dict[str, Any] = {"note": note}
        if scopes is not None:
            body["scopes"] = list(scopes)
        if expires_in is not None:
            body["expires_in"] = expires_in
        response = self.api("POST", f"users/{username}/tokens", json=body)
        if response.status_code != 201:
            raise RuntimeError(
                f"the hub refused a token for {username}: {response.status_code} {response.text}"
            )
        return str(response.json()["token"])


def _process_stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/PID/stat`` after the command name (state first), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, start time) of every live descendant of ``pid``; empty where there is no /proc."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    parent_of: dict[int, tuple[int, str]] = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            fields = _process_stat(int(entry.name))
            if fields is not None and fields[0] != "Z":
                parent_of[int(entry.name)] = (int(fields[1]), fields[19])
    found: list[tuple[int, str]] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, start) in parent_of.items():
            if ppid == parent:
                found.append((child, start))
                frontier.append(child)
    return found


def _alive(pid: int, start: str) -> bool:
    """Still the same process (the start time guards against a reused pid) and not a zombie."""
    fields = _process_stat(pid)
    return fields is not None and fields[0] != "Z" and fields[19] == start


def _end(processes: list[tuple[int, str]], grace: float = 5.0) -> None:
    """TERM, then KILL after ``grace``, whichever of these processes are still running."""
    for signal_number in (signal.SIGTERM, signal.SIGKILL):
        left = [(pid, start) for pid, start in processes if _alive(pid, start)]
        if not left:
            return
        for pid, _start in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal_number)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(p, s) for p, s in left):
            time.sleep(0.1)
