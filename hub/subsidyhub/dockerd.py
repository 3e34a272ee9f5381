"""A private Docker engine on a kept data root, shared by whoever needs it at the time.

Why: the notebook images are built with ``make images`` and then run by the tests, on machines
(this one, CI) where no Docker daemon runs. Debian's ``dockerd`` can run privately: its data
root, exec root, socket and pid file are ours, and it runs with ``--bridge=none
--iptables=false`` (no bridge, no NAT rules), so containers use the host's network, which is
also how the single-host deployment runs them when the host has no Docker bridge.

The data root is kept (the image cache): images built once are there for the next build and
for the tests, layers and all. Several processes may need the engine at once (the builder,
pytest-xdist workers), and one daemon owns a data root, so they share a running one through a
lock file: each user holds a shared ``flock`` while it works; the first starts the daemon,
detached; the last out stops it. Starting and stopping happen under a second, exclusive lock,
so a user joining never waits for the others to finish. A daemon left by a killed process is reused, not doubled.

The socket and exec root sit under ``/tmp`` with a short name: containerd's socket lives in
the exec root and a Unix socket path may not exceed 107 bytes. It needs root, as ``dockerd``
does; :func:`unavailable` says why it cannot start, for a skip reason or an error.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Self

import docker.errors

import docker


def unavailable() -> str | None:
    """Why no private engine can run here, or ``None`` when one can."""
    if shutil.which("dockerd") is None:
        return "dockerd is not installed (Debian: apt-get install docker.io; .ci/run does)"
    if os.geteuid() != 0:
        return "dockerd needs root, and this process does not run as root"
    return None


class PrivateDockerd:
    """The engine for ``data_root``; :meth:`start` joins or starts it, :meth:`close` leaves."""

    def __init__(self, data_root: Path) -> None:
        self.data_root = data_root.resolve()
        digest = hashlib.sha256(str(self.data_root).encode()).hexdigest()[:12]
        self.run = Path("/tmp") / f"shd-{digest}"
        self.socket = self.run / "docker.sock"
        self.url = f"unix://{self.socket}"
        self.log = self.run / "dockerd.log"
        self._lock: IO[str] | None = None

    def start(self, timeout: float = 60.0) -> Self:
        self.data_root.mkdir(parents=True, exist_ok=True)
        self.run.mkdir(exist_ok=True)
        with self._starting():
            if not self._answers():
                self._spawn(timeout)
            users = (self.run / "users.lock").open("w")
            fcntl.flock(users, fcntl.LOCK_SH)  # never waits: see close
        self._lock = users
        return self

    @contextlib.contextmanager
    def _starting(self) -> Iterator[None]:
        """Held to start or stop the daemon; users hold only ``users.lock``, shared."""
        with (self.run / "start.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def client(self) -> contextlib.closing[docker.DockerClient]:
        return contextlib.closing(docker.DockerClient(base_url=self.url, timeout=600))

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        """Leave; the last user out stops the daemon (its images stay in the data root).

        Under the start lock nobody joins meanwhile, so "no other user" stays true until the
        daemon is stopped; a user holding its shared lock makes the exclusive try fail.
        """
        if self._lock is None:
            return
        users, self._lock = self._lock, None
        with self._starting():
            fcntl.flock(users, fcntl.LOCK_UN)
            try:
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # someone else still uses it and will stop it
            else:
                self._stop()
            finally:
                users.close()

    def _answers(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            with self.client() as client:
                client.ping()
        except docker.errors.DockerException:
            return False
        return True

    def _spawn(self, timeout: float) -> None:
        self._stop()  # a dead daemon's pid file, mounts and socket
        with self.log.open("ab") as log:
            process = subprocess.Popen(
                [
                    "dockerd",
                    "--bridge=none",
                    "--iptables=false",
                    "--ip6tables=false",
                    f"--data-root={self.data_root}",
                    f"--exec-root={self.run / 'x'}",
                    f"--pidfile={self.run / 'dockerd.pid'}",
                    f"--host={self.url}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives the process that started it
            )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if process.poll() is not None:
                raise RuntimeError(f"dockerd exited at start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"dockerd not ready in {timeout} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def _stop(self) -> None:
        pidfile = self.run / "dockerd.pid"
        with contextlib.suppress(FileNotFoundError, ValueError):
            pid = int(pidfile.read_text().strip())
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 30
                while process_alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
                if process_alive(pid):
                    os.kill(pid, signal.SIGKILL)
        _unmount_below(self.run)
        _unmount_below(self.data_root)
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()


def process_alive(pid: int) -> bool:
    """Running, not a zombie (a daemon we started stays our child until reaped)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _unmount_below(root: Path) -> None:
    """Lazily unmount what the engine left mounted under ``root`` (its network namespace)."""
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        points = [line.split()[1] for line in mounts]
    for point in sorted(points, reverse=True):
        if Path(point).is_relative_to(root):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
