"""A throwaway Docker engine for tests: Debian's ``dockerd`` with its own sockets and storage.

Why: the Docker backend must be tested against a real engine, but a test must not touch a
Docker the machine may already run, nor need a network it does not have. This daemon keeps
everything in one temporary directory (data root, exec root, socket, pid file) and runs with
``--bridge=none --iptables=false``: no bridge, no NAT rules, so containers use the host's
network (``network_mode: host``), which is also how the single-host deployment runs them when
the host has no Docker bridge. It needs root, as ``dockerd`` does; :func:`unavailable` says
why it cannot start, for a test's skip reason.

The directory sits under ``/tmp`` with a short name because containerd's socket lives in the
exec root and a Unix socket path may not exceed 107 bytes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

import docker
from subsidyhub.testing.rootfs import image_config, write_singleuser_rootfs


def unavailable() -> str | None:
    """Why no throwaway engine can run here, or ``None`` when one can."""
    if shutil.which("dockerd") is None:
        return "dockerd is not installed (Debian: apt-get install docker.io; .ci/run does)"
    if os.geteuid() != 0:
        return "dockerd needs root, and the tests do not run as root"
    return None


class ThrowawayDockerd:
    """One private ``dockerd``; :meth:`close` stops it and removes all it stored."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="shd-", dir="/tmp"))
        self.socket = self.root / "docker.sock"
        self.url = f"unix://{self.socket}"
        self._log = (self.root / "dockerd.log").open("wb")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Self:
        self._process = subprocess.Popen(
            [
                "dockerd",
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                f"--data-root={self.root / 'data'}",
                f"--exec-root={self.root / 'x'}",
                f"--pidfile={self.root / 'dockerd.pid'}",
                f"--host={self.url}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"dockerd exited at start:\n{self.log_tail()}")
            try:
                with self.client() as client:
                    client.ping()
                return self
            except docker.errors.DockerException as error:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"dockerd not ready in {timeout} s:\n{self.log_tail()}"
                    ) from error
                time.sleep(0.2)

    def client(self) -> contextlib.closing[docker.DockerClient]:
        return contextlib.closing(docker.DockerClient(base_url=self.url, timeout=120))

    def import_singleuser_image(self, repository: str) -> str:
        """Build ``repository:local`` from this machine's Python (see :mod:`.rootfs`)."""
        tar = self.root / "rootfs.tar"
        write_singleuser_rootfs(tar)
        with self.client() as client:
            client.api.import_image_from_file(
                str(tar), repository=repository, tag="local", changes=image_config()
            )
        tar.unlink()
        return f"{repository}:local"

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = (self.root / "dockerd.log").read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            with self.client() as client:
                for container in client.containers.list(all=True):
                    container.remove(force=True)
            self._process.terminate()
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()
        _unmount_below(self.root)
        shutil.rmtree(self.root, ignore_errors=True)


def _unmount_below(root: Path) -> None:
    """Lazily unmount what the engine left mounted under ``root`` (its network namespace)."""
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        points = [line.split()[1] for line in mounts]
    for point in sorted(points, reverse=True):
        if Path(point).is_relative_to(root):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
