"""A real JupyterHub for tests and benchmarks, started throwaway and stopped without leftovers.

:class:`TestHub` writes a ``jupyterhub_config.py`` into a temporary directory and runs
``python -m jupyterhub`` with the npm ``configurable-http-proxy``, a SQLite hub database and
free loopback ports. The generated file imports SubsidyHub and calls
:func:`configure_test_hub`, which grants what production grants through the very functions
``subsidyhub up`` and the z2jh overlay use (:func:`subsidyhub.hubplugin.config.configure_access`):
the service ``subsidy`` and its role, ``access:services!service=subsidy`` on the ``user`` and
``server`` roles, and the custom scope ``custom:subsidy:admin`` with the ``subsidy-admins`` role.
A hand-written copy of those once drifted from production, so tests passed with permissions no
deployment had; tests/unit/test_test_hub.py checks that only these differ:

* ports, paths, the dummy authenticator and the users ``alice``, ``bob``, ``carol``,
  ``centre-admin`` (the one subsidy admin) and the hub admin ``admin``;
* the service is managed (started by the hub) only with ``service_command``, and is token-only
  (no URL for the hub to route and wait for at start, no OAuth) without ``service_url``;
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
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from subsidyhub.hubplugin.config import HubPlan, configure_access
from subsidyhub.names import SERVICE_NAME, SERVICE_PREFIX
from subsidyhub.netutil import free_port, tls_context, wait_for

HARNESS_SERVICE = "test-harness"
HUB_ADMIN = "admin"
CENTRE_ADMIN = "centre-admin"
USERS = ("alice", "bob", "carol", CENTRE_ADMIN)
# A token-only service has no URL for the hub to route and wait for at start, hence no OAuth
# client either (JupyterHub needs a redirect URI, derived from the URL, for one).
WITHOUT_URL = ("url", "oauth_no_confirm", "oauth_client_allowed_scopes")


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


@dataclass(frozen=True)
class TestHubSetup:
    """What one test hub differs in from production; plain values, written into its config."""

    __test__ = False  # not a pytest test class, despite the name

    root: str
    port: int
    hub_port: int
    proxy_api_port: int
    proxy_command: str
    proxy_auth_token: str
    users: tuple[str, ...]
    service_token: str
    harness_token: str
    service_url: str | None = None
    service_command: tuple[str, ...] | None = None
    service_environment: dict[str, str] = field(default_factory=dict)


def configure_test_hub(c: Any, setup: TestHubSetup) -> None:
    """Fill a JupyterHub config for one test hub: production's service, roles and scopes."""
    root = Path(setup.root)
    c.JupyterHub.bind_url = f"http://127.0.0.1:{setup.port}/"
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{setup.hub_port}"
    c.JupyterHub.db_url = f"sqlite:///{root / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(root / "cookie_secret")
    c.JupyterHub.pid_file = str(root / "jupyterhub.pid")
    c.JupyterHub.authenticator_class = "dummy"
    c.Authenticator.allowed_users = set(setup.users)
    c.Authenticator.admin_users = {HUB_ADMIN}
    c.ConfigurableHTTPProxy.command = [setup.proxy_command]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{setup.proxy_api_port}"
    c.ConfigurableHTTPProxy.auth_token = setup.proxy_auth_token
    c.ConfigurableHTTPProxy.pid_file = str(root / "proxy.pid")

    plan = HubPlan(
        service_url=setup.service_url or "",
        service_token=setup.service_token,
        manage_service=setup.service_command is not None,
        subsidy_admins=(CENTRE_ADMIN,),
        service_environment=dict(setup.service_environment),
    )
    configure_access(c, plan)
    [service] = [s for s in c.JupyterHub.services if s["name"] == SERVICE_NAME]
    if setup.service_command is not None:
        service["command"] = list(setup.service_command)
    if setup.service_url is None:
        for key in WITHOUT_URL:
            del service[key]
    c.JupyterHub.services.append({"name": HARNESS_SERVICE, "api_token": setup.harness_token})
    c.JupyterHub.load_roles.append(
        {
            "name": HARNESS_SERVICE,
            "scopes": ["admin:users", "tokens", "admin:servers", "list:services"],
            "services": [HARNESS_SERVICE],
        }
    )


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
        """``service_url`` routes the service prefix to it; with ``service_command`` too
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
        self.service_prefix = SERVICE_PREFIX
        self.service_url = service_url
        self.service_token = secrets.token_hex(32)
        self.harness_token = secrets.token_hex(32)
        self._proxy_auth_token = secrets.token_hex(32)
        self._service_command = tuple(service_command) if service_command else None
        self._service_environment = dict(service_environment or {})
        self._extra_config = extra_config
        self._process: subprocess.Popen[bytes] | None = None
        self._children: list[tuple[int, str]] = []
        self.log_path = self.root / "jupyterhub.log"

    # -- configuration ------------------------------------------------------------------

    def setup(self) -> TestHubSetup:
        return TestHubSetup(
            root=str(self.root),
            port=self.port,
            hub_port=self.hub_port,
            proxy_api_port=self.proxy_api_port,
            proxy_command=proxy_command(),
            proxy_auth_token=self._proxy_auth_token,
            users=self.users,
            service_token=self.service_token,
            harness_token=self.harness_token,
            service_url=self.service_url,
            service_command=self._service_command,
            service_environment=self._service_environment,
        )

    def config_text(self) -> str:
        return (
            "# Generated by subsidyhub.testing.hub for one test run.\n"
            "from subsidyhub.testing.hub import TestHubSetup, configure_test_hub\n\n"
            "c = get_config()  # noqa\n"
            f"configure_test_hub(c, TestHubSetup(**{asdict(self.setup())!r}))\n"
            f"{self._extra_config}\n"
        )

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
            method,
            f"{self.api_url}/{path.lstrip('/')}",
            headers=headers,
            timeout=30,
            verify=tls_context(),
            **kwargs,
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
