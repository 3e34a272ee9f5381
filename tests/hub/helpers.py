"""Driving a real ``subsidyhub up`` stack from tests: start it, act as its users, clean up.

:class:`HubStack` starts the platform through :func:`subsidyhub.launcher.start`, the code
behind ``subsidyhub up``: JupyterHub with the embedded config, the npm
configurable-http-proxy, the subsidy service as a managed service and ``LocalGPUSpawner``.
:class:`HubUser` logs in through the hub's login form and calls the hub's REST API with the
session cookie and the XSRF token, as JupyterHub's own pages do. A single-user server's process
is found through the spawner state in the hub's SQLite database and inspected through
``/proc`` (Linux). Every process a stack started, servers included, is remembered by id and
start time and ended when the stack closes, so no test leaves processes behind.
:meth:`HubStack.admin` runs ``subsidyhub admin`` in a process of its own, forked from one that
imported the CLI once (:mod:`subsidyhub.testing.cli_fork`).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Self

import httpx
import pytest
import yaml

from subsidyhub import launcher
from subsidyhub.ledger.db import Database
from subsidyhub.netutil import free_port, tls_context
from subsidyhub.testing.cli_fork import CliForkServer

SERVICE_API = "/services/subsidy/api/v1"
# (pid, start time in clock ticks since boot): the start time tells a reused pid apart.
ProcessRef = tuple[int, str]
# This venv's `subsidyhub`, for every stack's admin commands.
ADMIN_CLI = CliForkServer()
atexit.register(ADMIN_CLI.close)


def poll[T](
    check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.2
) -> T:
    """Call ``check`` until it returns a value other than ``None``/``False``; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


# -- processes ---------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/PID/stat`` after the command name (state first), or ``None``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def process_ref(pid: int) -> ProcessRef | None:
    fields = _stat(pid)
    return None if fields is None or fields[0] == "Z" else (pid, fields[19])


def is_alive(ref: ProcessRef) -> bool:
    """The same process (not a reused pid) is still running and not a zombie."""
    return process_ref(ref[0]) == ref


def descendants(pid: int) -> set[ProcessRef]:
    """Every live descendant of ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[ProcessRef] = set()
    frontier = [pid]
    while frontier:
        for child in children.get(frontier.pop(), []):
            ref = process_ref(child)
            if ref is not None:
                found.add(ref)
                frontier.append(child)
    return found


def end_processes(refs: set[ProcessRef], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace``, whichever of these processes still run."""
    for signal_number in (signal.SIGTERM, signal.SIGKILL):
        left = [ref for ref in refs if is_alive(ref)]
        if not left:
            return
        for pid, _start in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal_number)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(is_alive(ref) for ref in left):
            time.sleep(0.1)


def command_line(pid: int) -> list[str]:
    """A process's arguments, from ``/proc/PID/cmdline``; empty once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def process_environment(pid: int) -> dict[str, str]:
    """The environment a process was started with, from ``/proc/PID/environ``."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {key.decode(): value.decode(errors="replace") for key, value in pairs}


# -- the stack ---------------------------------------------------------------------------


class HubStack:
    """One ``subsidyhub up`` platform in ``root``.

    ``python`` is the interpreter that runs JupyterHub, and with it the proxy, the subsidy
    service and the servers (:func:`subsidyhub.launcher.start`): this venv's, or z2jh's hub
    environment to run the stack on JupyterHub 5.5. :meth:`stop_hub` then :meth:`start`
    restarts the hub on the same data directory and ports.
    """

    def __init__(
        self,
        root: Path,
        config: dict[str, Any],
        *,
        keep_servers: bool = False,
        python: str = sys.executable,
    ) -> None:
        self.root = root
        self.python = python
        self.data_dir = root / "data"
        self.config_path = root / "subsidyhub.yaml"
        self.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.password = secrets.token_urlsafe(12)
        self.keep_servers = keep_servers
        # Kept across restarts, as a restarted `subsidyhub up --port` keeps its port; servers
        # that outlive the hub (keep_servers) reach it again at the same hub API URL.
        self.port = free_port()
        self.hub_api_port = free_port()
        self._stack: launcher.Stack | None = None
        self._started: set[ProcessRef] = set()

    @property
    def url(self) -> str:
        assert self._stack is not None, "the stack is not running"
        return self._stack.url

    @property
    def admin_password(self) -> str:
        """The hub admin's (``admin``) own password, which ``launcher.start`` picked."""
        assert self._stack is not None, "the stack is not running"
        return self._stack.admin_password

    @property
    def log_path(self) -> Path:
        return self.data_dir / "jupyterhub.log"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no hub log)"
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> Self:
        """``launcher.start``; the process environment it changes is put back after."""
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SUBSIDYHUB_DATA_DIR", str(self.data_dir))
            patch.setenv("SUBSIDYHUB_HUB_API_PORT", str(self.hub_api_port))
            if self.keep_servers:
                patch.setenv("SUBSIDYHUB_KEEP_SERVERS", "1")
            else:
                patch.delenv("SUBSIDYHUB_KEEP_SERVERS", raising=False)
            patch.delenv("SUBSIDYHUB_CONFIG", raising=False)
            self._stack = launcher.start(
                config=str(self.config_path),
                data_dir=self.data_dir,
                port=self.port,
                ip="127.0.0.1",
                demo=True,
                password=self.password,
                quiet=True,
                python=self.python,
            )
        self.remember_processes()
        return self

    def remember_processes(self) -> None:
        """Note what the hub runs now (proxy, service, servers) so :meth:`close` can end it."""
        if self._stack is not None and self._stack.process.poll() is None:
            self._started |= descendants(self._stack.process.pid)

    def jupyterhub_version(self) -> str:
        """The version of the JupyterHub that answers, from ``GET /hub/api/``."""
        response = httpx.get(f"{self.url}/hub/api/", timeout=10, verify=tls_context())
        response.raise_for_status()
        return str(response.json()["version"])

    @property
    def hub_running(self) -> bool:
        return self._stack is not None and self._stack.process.poll() is None

    def stop_hub(self) -> int:
        """SIGTERM the hub only; it stops the proxy and the service, and servers unless kept."""
        assert self._stack is not None
        self.remember_processes()
        return self._stack.stop()

    def kill_hub(self) -> None:
        """SIGKILL the hub, as a crash or the OOM killer would: it stops nothing it started."""
        assert self._stack is not None
        self.remember_processes()
        self._stack.process.kill()
        self._stack.process.wait(10)

    def service_processes(self) -> set[ProcessRef]:
        """Every running subsidy service of this stack (by its data directory), whoever its
        parent is now: an orphan outliving its hub counts."""
        found: set[ProcessRef] = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
                if b"subsidyhub.service" not in command:
                    continue
                data_dir = process_environment(int(entry.name)).get("SUBSIDYHUB_DATA_DIR")
            except OSError:  # ended meanwhile, or not ours
                continue
            ref = process_ref(int(entry.name))
            if ref is not None and data_dir == str(self.data_dir.resolve()):
                found.add(ref)
        return found

    def close(self) -> None:
        """Stop the hub and end anything it started that outlived it."""
        if self._stack is not None:
            self.stop_hub()
        end_processes(self._started)

    # -- state the hub keeps ------------------------------------------------------------

    def spawner_state(self, username: str, server_name: str = "") -> dict[str, Any]:
        """The spawner's saved state (``pid``, ``gpus``) from the hub's SQLite database."""
        uri = f"{(self.data_dir / 'jupyterhub.sqlite').as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
            row = db.execute(
                "SELECT s.state FROM spawners s JOIN users u ON u.id = s.user_id "
                "WHERE u.name = ? AND s.name = ?",
                (username, server_name),
            ).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    def server_process(self, username: str) -> ProcessRef:
        """The running single-user server of ``username``; remembered for :meth:`close`."""
        pid = self.spawner_state(username).get("pid")
        assert pid, f"the hub's state holds no pid for {username}'s server"
        ref = process_ref(int(pid))
        assert ref is not None, f"{username}'s server (pid {pid}) is not running"
        self._started.add(ref)
        return ref

    def service_process(self) -> ProcessRef:
        """The subsidy service the hub manages (``python -m subsidyhub.service``), found in the
        hub's process tree; remembered for :meth:`close`."""
        assert self._stack is not None and self.hub_running, "the hub is not running"
        found = [
            ref
            for ref in descendants(self._stack.process.pid)
            if "subsidyhub.service" in command_line(ref[0])
        ]
        assert len(found) == 1, f"one managed subsidy service expected, found {found}"
        self._started.add(found[0])
        return found[0]

    @property
    def outbox(self) -> Path:
        """Where the hub keeps stop notices the service has not received (the default)."""
        return self.data_dir / "subsidy-stop-outbox"

    # -- the ledger, through the admin CLI ----------------------------------------------

    def admin(self, *args: str) -> str:
        """``subsidyhub admin ARGS --config FILE`` on this stack's ledger; fails on non-zero exit."""
        return self.cli("admin", *args)

    def ledger(self) -> Database:
        """The stack's own ledger (SQLite in its data directory), read directly in tests."""
        return Database(f"sqlite:///{self.data_dir / 'subsidyhub.sqlite'}")

    def cli(self, *args: str) -> str:
        """``subsidyhub ARGS --config FILE`` on this stack's ledger; fails on non-zero exit."""
        env = os.environ | {
            "SUBSIDYHUB_DATA_DIR": str(self.data_dir),
            "SUBSIDYHUB_ACTOR": "tests-hub",
        }
        result = ADMIN_CLI.run([*args, "--config", str(self.config_path)], env=env, timeout=60)
        assert result.returncode == 0, (
            f"{' '.join(args)} exited {result.returncode}: {result.stderr}"
        )
        return result.stdout


# -- users -------------------------------------------------------------------------------


class HubUser:
    """A person using the hub in a browser-like session: logged in through the login form."""

    def __init__(self, stack: HubStack, name: str) -> None:
        self.stack = stack
        self.name = name
        self.http = httpx.Client(
            base_url=stack.url, follow_redirects=True, timeout=30, verify=tls_context()
        )
        self.http.get("/hub/login").raise_for_status()
        response = self.http.post(
            "/hub/login",
            data={"username": name, "password": stack.password, "_xsrf": self.xsrf},
        )
        assert response.status_code == 200 and "/hub/login" not in str(response.url), (
            f"login as {name} failed: {response.status_code} at {response.url}"
        )

    @property
    def xsrf(self) -> str:
        value = self.http.cookies.get("_xsrf", path="/hub/")
        assert value, "the hub set no _xsrf cookie"
        return str(value)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The hub's REST API (``/hub/api/PATH``) with the session cookie and XSRF token."""
        headers = {"X-XSRFToken": self.xsrf} | kwargs.pop("headers", {})
        return self.http.request(method, f"/hub/api/{path.lstrip('/')}", headers=headers, **kwargs)

    def new_token(self, note: str = "tests/hub") -> str:
        response = self.api("POST", f"users/{self.name}/tokens", json={"note": note})
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    def server(self) -> dict[str, Any] | None:
        """The hub's model of the default server, ``None`` when there is none."""
        response = self.api("GET", f"users/{self.name}")
        response.raise_for_status()
        server: dict[str, Any] | None = response.json()["servers"].get("")
        return server

    def start_server(self, profile: str, project: str | None = None) -> httpx.Response:
        """``POST /hub/api/users/NAME/server`` with the profile (and project) as user options."""
        options = {"profile": profile} | ({"project": project} if project else {})
        return self.api("POST", f"users/{self.name}/server", json=options)

    def wait_ready(self, timeout: float = 90) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            server = self.server()
            if server is None:
                raise AssertionError(
                    f"{self.name}'s spawn failed: {self.spawn_failure()}\n{self.stack.log_tail()}"
                )
            return server if server["ready"] else None

        return poll(ready, timeout=timeout, what=f"{self.name}'s server ready", interval=0.3)

    def spawn_failure(self) -> str:
        """The message of the last failed spawn, from the hub's progress event stream."""
        response = self.api("GET", f"users/{self.name}/server/progress", timeout=10)
        events = [
            json.loads(line.removeprefix("data:"))
            for line in response.text.splitlines()
            if line.startswith("data:")
        ]
        failed = [event for event in events if event.get("failed")]
        return str(failed[-1]["message"]) if failed else f"no failure event in {events}"

    def stop_server(self, timeout: float = 60) -> None:
        """Stop the default server if there is one and wait until the hub has none."""
        if self.server() is None:
            return
        response = self.api("DELETE", f"users/{self.name}/server")
        assert response.status_code in (202, 204), response.text
        poll(
            lambda: self.server() is None,
            timeout=timeout,
            what=f"{self.name}'s server stopped",
        )

    def close(self) -> None:
        self.http.close()


def signed_in(stack: HubStack, name: str) -> Iterator[HubUser]:
    """``name`` logged in to ``stack`` for one test (a fixture's body): its server is stopped
    after the test while the hub still runs, and its client closed."""
    user = HubUser(stack, name)
    try:
        yield user
    finally:
        try:
            if stack.hub_running:
                user.stop_server()
        finally:
            user.close()


def release(users: Iterable[HubUser]) -> None:
    """Stop each user's server and close its client; one that fails to stop (the test may have
    left the hub unable to) does not keep the others running."""
    for user in users:
        with contextlib.suppress(Exception):
            user.stop_server()
        user.close()


def service_get(stack: HubStack, path: str, token: str) -> httpx.Response:
    """A request to the subsidy service through the hub's proxy, as a notebook would make it."""
    return httpx.get(
        f"{stack.url}{SERVICE_API}/{path.lstrip('/')}",
        headers={"Authorization": f"token {token}"},
        timeout=30,
        verify=tls_context(),
    )
