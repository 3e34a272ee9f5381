"""``subsidyhub up``: the whole platform on one machine, in the foreground.

Starts JupyterHub with the embedded config (which starts the proxy and the subsidy service),
seeds the demo unless ``--no-demo``, prints the URL and how to log in, and on Ctrl-C or
SIGTERM stops the hub, which stops the servers, the service and the proxy. Internal ports
(proxy API, hub API, service) are picked free at start so several stacks can run side by side
(the tests do). ``SUBSIDYHUB_KEEP_SERVERS=1`` leaves users' servers running when the hub stops,
and ``SUBSIDYHUB_HUB_API_PORT`` pins the hub API's port: together they let a restart on the same
data directory find the servers (and the GPUs they hold) again, reachable, since a server talks
to the hub API URL it was started with. The same :func:`apply_embedded_config` is what the hub
loads, so what ``up`` promises is what the hub does.
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from subsidyhub.hubplugin.config import HubPlan, configure_hub
from subsidyhub.ledger import projects
from subsidyhub.ledger.db import Database, now_ms
from subsidyhub.ledger.migrate import upgrade
from subsidyhub.money import format_money, parse_amount
from subsidyhub.netutil import free_port, wait_for
from subsidyhub.settings import DATA_DIR_ENV, Settings, config_path, load_settings

DEMO_PROJECT = "demo"
DEMO_MEMBERS = ("alice", "bob")
DEMO_ADMIN = "admin"
DEMO_AMOUNT = "500"
HUB_CONFIG = Path(__file__).with_name("jupyterhub_config.py")


def proxy_command() -> list[str]:
    """The npm configurable-http-proxy that ``make install`` puts beside the venv."""
    local = Path(sys.prefix) / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
    return [str(local)] if local.exists() else ["configurable-http-proxy"]


def apply_platform_config(c: Any, environ: Mapping[str, str]) -> tuple[Settings, Path, set[str]]:
    """The hub, proxy, spawner and login of the embedded default, without SubsidyHub's hooks.

    The benchmarks run this alone as the baseline hub that SubsidyHub's overhead is measured
    against; :func:`apply_embedded_config` adds the service, hooks, form and roles on top.
    """
    settings = load_settings(environ.get("SUBSIDYHUB_CONFIG") or None)
    data_dir = Path(environ.get("SUBSIDYHUB_DATA_DIR") or settings.resolved_data_dir()).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    ip = environ.get("SUBSIDYHUB_IP", "127.0.0.1")
    c.JupyterHub.bind_url = f"http://{ip}:{environ.get('SUBSIDYHUB_PORT', '8000')}"
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{environ.get('SUBSIDYHUB_HUB_API_PORT', '8081')}"
    c.ConfigurableHTTPProxy.api_url = (
        f"http://127.0.0.1:{environ.get('SUBSIDYHUB_PROXY_API_PORT', '8001')}"
    )
    c.ConfigurableHTTPProxy.command = proxy_command()
    c.JupyterHub.db_url = f"sqlite:///{data_dir / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(data_dir / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(data_dir / "jupyterhub.pid")
    c.JupyterHub.cleanup_servers = environ.get("SUBSIDYHUB_KEEP_SERVERS", "") not in ("1", "true")
    c.JupyterHub.spawner_class = "subsidyhub.hubplugin.spawners.LocalGPUSpawner"
    c.LocalGPUSpawner.home_dir_template = str(data_dir / "homes" / "{username}")
    c.Spawner.cmd = [str(Path(sys.executable).with_name("jupyterhub-singleuser"))]
    c.Spawner.default_url = "/lab"
    c.Spawner.start_timeout = 120
    c.Spawner.http_timeout = 120
    c.JupyterHub.authenticator_class = "shared-password"
    c.SharedPasswordAuthenticator.user_password = environ.get(
        "SUBSIDYHUB_DEMO_PASSWORD"
    ) or secrets.token_urlsafe(12)
    # Admins log in with their own, longer password (JupyterHub requires 32+ characters).
    c.SharedPasswordAuthenticator.admin_password = environ.get("SUBSIDYHUB_ADMIN_PASSWORD") or None
    c.Authenticator.allow_all = True
    admins = {a for a in environ.get("SUBSIDYHUB_ADMIN_USERS", DEMO_ADMIN).split(",") if a}
    c.Authenticator.admin_users = admins
    return settings, data_dir, admins


def apply_embedded_config(c: Any, environ: Mapping[str, str]) -> None:
    """Fill a JupyterHub config from ``SUBSIDYHUB_*`` variables and ``subsidyhub.yaml``."""
    settings, data_dir, admins = apply_platform_config(c, environ)
    plan = HubPlan(
        service_url=f"http://127.0.0.1:{environ.get('SUBSIDYHUB_SERVICE_PORT', '10101')}",
        service_token=environ.get("SUBSIDYHUB_SERVICE_TOKEN") or secrets.token_hex(32),
        config_path=str(config_path(environ.get("SUBSIDYHUB_CONFIG") or None)),
        data_dir=str(data_dir),
        subsidy_admins=tuple(sorted(admins)),
        service_environment={
            k: v
            for k, v in environ.items()
            if k.startswith("SUBSIDYHUB_") and k != "SUBSIDYHUB_SERVICE_TOKEN"
        },
    )
    configure_hub(c, settings, plan)


def seed_demo(settings: Settings, db: Database) -> bool:
    """Project ``demo`` with HK$500 at the default rate and alice and bob as members; idempotent."""
    with db.write() as session:
        if any(p.slug == DEMO_PROJECT for p in projects.list_projects(session)):
            return False
        at = now_ms()
        projects.create_project(
            session, settings, "subsidyhub-up", slug=DEMO_PROJECT, name="Demo project", at_ms=at
        )
        projects.add_allocation(
            session,
            settings,
            "subsidyhub-up",
            DEMO_PROJECT,
            amount_micro=parse_amount(DEMO_AMOUNT),
            at_ms=at,
            note="demo",
        )
        for member in DEMO_MEMBERS:
            projects.set_member(session, "subsidyhub-up", DEMO_PROJECT, member, at_ms=at)
        return True


class LaunchError(Exception):
    """The platform did not come up; the message says where to look."""


@dataclass
class Stack:
    """A running ``jupyterhub`` process and where to reach it."""

    process: subprocess.Popen[bytes]
    url: str
    config: str | None = None
    admin_password: str = ""

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def require_jupyterlab(python: str) -> None:
    """Refuse to start when ``python`` lacks JupyterLab: every server would answer 404.

    JupyterLab is the ``local`` extra (the hub image for Kubernetes does not need it).
    """
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('jupyterlab') is None)"
    if subprocess.run([python, "-c", probe], check=False).returncode != 0:
        raise LaunchError(
            "subsidyhub up runs JupyterLab servers on this machine, and JupyterLab is not "
            f"installed for {python}: pip install 'subsidyhub[local]' (make up does)"
        )


def start(
    *,
    config: str | None,
    data_dir: Path,
    port: int,
    ip: str,
    demo: bool,
    password: str,
    quiet: bool = False,
    hub_config: Path = HUB_CONFIG,
    python: str = sys.executable,
) -> Stack:
    """Migrate, seed, start the hub; returns once the hub answers (or raises).

    ``hub_config`` is the JupyterHub config file to run: the embedded default, or for the
    benchmarks' baseline one that applies :func:`apply_platform_config` alone. ``python`` is
    the interpreter that runs JupyterHub; it must have subsidyhub installed. The hub config
    takes the single-user command, the proxy and the managed service from that interpreter's
    environment, so another one (the tests use z2jh's hub pins, JupyterHub 5.5) runs the whole
    stack on its packages, while migrating and seeding stay in this process.
    """
    if len(password) < 8:
        raise LaunchError(
            f"SUBSIDYHUB_DEMO_PASSWORD is {len(password)} characters; JupyterHub needs at least 8"
        )
    admin_password = os.environ.get("SUBSIDYHUB_ADMIN_PASSWORD") or secrets.token_urlsafe(24)
    if len(admin_password) < 32 or admin_password == password:
        raise LaunchError(
            "SUBSIDYHUB_ADMIN_PASSWORD must be at least 32 characters and differ from the user password"
        )
    require_jupyterlab(python)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["SUBSIDYHUB_DATA_DIR"] = str(data_dir)  # the hub and the service inherit it
    settings = load_settings(config)
    db = Database(settings.resolved_database_url())
    upgrade(db, settings)
    if demo:
        seed_demo(settings, db)
    db.dispose()
    env = dict(os.environ) | {
        "SUBSIDYHUB_DATA_DIR": str(data_dir),
        "SUBSIDYHUB_PORT": str(port),
        "SUBSIDYHUB_IP": ip,
        "SUBSIDYHUB_HUB_API_PORT": os.environ.get("SUBSIDYHUB_HUB_API_PORT") or str(free_port()),
        "SUBSIDYHUB_PROXY_API_PORT": str(free_port()),
        "SUBSIDYHUB_SERVICE_PORT": str(free_port()),
        "SUBSIDYHUB_SERVICE_TOKEN": secrets.token_hex(32),
        "SUBSIDYHUB_DEMO_PASSWORD": password,
        "SUBSIDYHUB_ADMIN_PASSWORD": admin_password,
    }
    if config:
        env["SUBSIDYHUB_CONFIG"] = str(Path(config).resolve())
    log = None if not quiet else open(data_dir / "jupyterhub.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        [python, "-m", "jupyterhub", "-f", str(hub_config)],
        cwd=data_dir,
        env=env,
        stdout=log,
        stderr=log,
    )
    url = f"http://{'127.0.0.1' if ip in ('0.0.0.0', '') else ip}:{port}"
    stack = Stack(process, url, config, admin_password)
    try:
        wait_for(
            f"{url}/hub/api/",
            timeout=60,
            ready=lambda response: response.status_code == 200,
            alive=lambda: process.poll() is None,
            interval=0.3,
        )
    except RuntimeError:
        where = data_dir / "jupyterhub.log" if quiet else "its log above"
        raise LaunchError(
            f"JupyterHub exited with code {process.returncode} during start; see {where}"
        ) from None
    except TimeoutError:
        stack.stop()
        raise LaunchError(f"JupyterHub did not answer at {url} within 60 s") from None
    return stack


def second_shell_exports(data_dir: Path, settings: Settings, cwd: Path) -> list[str]:
    """The ``export`` line another shell needs so that admin commands find this ledger.

    Empty when the data dir is the one a command run in ``cwd`` with the same config would
    use anyway; otherwise a command run without it would look for (and refuse) a ledger in
    ``./.subsidyhub`` instead of the one the hub and the service are using.
    """
    default = (cwd / (settings.data_dir or Path(".subsidyhub"))).resolve()
    if data_dir.resolve() == default:
        return []
    return [f"export {DATA_DIR_ENV}={shlex.quote(str(data_dir.resolve()))}"]


def run_foreground(*, config: str | None, data_dir: Path, port: int, ip: str, demo: bool) -> int:
    """What ``subsidyhub up`` does: start, print how to log in, wait, stop cleanly."""
    password = os.environ.get("SUBSIDYHUB_DEMO_PASSWORD") or secrets.token_urlsafe(9)
    stack = start(config=config, data_dir=data_dir, port=port, ip=ip, demo=demo, password=password)
    settings = load_settings(config)
    print()
    print(f"SubsidyHub is running at {stack.url}/")
    print(
        f"  log in as alice, bob (project {DEMO_PROJECT}) or {DEMO_ADMIN} (hub admin)"
        if demo
        else "  log in with any user name"
    )
    print(f"  password: {password}")
    print(f"  {DEMO_ADMIN}'s password: {stack.admin_password}")
    if demo:
        print(
            f"  project {DEMO_PROJECT}: {format_money(parse_amount(DEMO_AMOUNT), settings.currency)} of subsidy"
        )
    print(f"  data: {data_dir}")
    exports = second_shell_exports(data_dir, settings, Path.cwd())
    if exports:
        print("  for subsidyhub commands in another shell, first run:")
        for line in exports:
            print(f"    {line}")
    print("Press Ctrl-C to stop.", flush=True)
    stopping = False

    def _stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stopping and stack.process.poll() is None:
        time.sleep(0.2)
    code = stack.stop()
    print("SubsidyHub stopped.")
    return 0 if stopping else (code or 1)
