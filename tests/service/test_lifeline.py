"""A managed service ends with the hub that started it, with real processes.

A stand-in hub (a Python process) starts a child that follows it as the service does, the
stand-in is killed with SIGKILL, and the child must be gone within seconds: through Linux's
parent death signal (:func:`follow_hub`), and through the portable fallback watcher.
``python -m subsidyhub.service`` told a hub pid that is not its parent (a hub that died before
the service could ask) refuses to start, before touching the ledger. The whole chain, a real
``subsidyhub up`` hub killed with SIGKILL, is tests/hub/test_hub_crash.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from subsidyhub.names import HUB_PID_ENV

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

STAND_IN_HUB = """
import subprocess, sys
subprocess.Popen([sys.executable, "-c", sys.argv[1]]).wait()
"""
FOLLOWS_WITH_DEATH_SIGNAL = f"""
import os, time
from subsidyhub.service.lifeline import follow_hub
assert follow_hub({{"{HUB_PID_ENV}": str(os.getppid())}})
print(os.getpid(), flush=True)
time.sleep(60)
"""
FOLLOWS_WITH_WATCHER = """
import os, threading, time
from subsidyhub.service.lifeline import watch_parent
threading.Thread(target=watch_parent, args=(os.getppid(), 0.1), daemon=True).start()
print(os.getpid(), flush=True)
time.sleep(60)
"""


def running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize(
    "child",
    [
        pytest.param(
            FOLLOWS_WITH_DEATH_SIGNAL,
            id="death-signal",
            marks=pytest.mark.skipif(sys.platform != "linux", reason="prctl is Linux's"),
        ),
        pytest.param(FOLLOWS_WITH_WATCHER, id="watcher"),
    ],
)
def test_a_follower_ends_when_its_hub_is_killed(child: str) -> None:
    hub = subprocess.Popen([sys.executable, "-c", STAND_IN_HUB, child], stdout=subprocess.PIPE)
    assert hub.stdout is not None
    pid = int(hub.stdout.readline())
    try:
        time.sleep(0.5)
        assert running(pid), "the follower ended while its hub lives"
        hub.kill()
        hub.wait(10)
        killed = time.monotonic()
        while running(pid):
            assert time.monotonic() - killed < 3, "the follower outlived its hub by 3 s"
            time.sleep(0.05)
    finally:
        if hub.poll() is None:
            hub.kill()
        hub.wait(10)
        hub.stdout.close()
        if running(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_service_whose_hub_is_gone_does_not_start(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(10)  # a hub that exited: its pid is not the service's parent
    ledger = tmp_path / "ledger.sqlite"
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JUPYTERHUB_", "SUBSIDYHUB_"))
    } | {
        "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:10101",
        "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api",
        "JUPYTERHUB_API_TOKEN": "secret-token-value",
        "SUBSIDYHUB_DATABASE_URL": f"sqlite:///{ledger}",
        HUB_PID_ENV: str(gone.pid),
    }
    result = subprocess.run(
        [sys.executable, "-m", "subsidyhub.service"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert f"the hub that started this service (pid {gone.pid}) is not its parent" in (
        result.stderr
    )
    assert not ledger.exists()
