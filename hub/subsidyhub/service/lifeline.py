"""A managed service ends with the hub that started it, however the hub ends.

JupyterHub starts a managed service in a session of its own and stops it when the hub shuts
down cleanly. A hub that is killed (SIGKILL, the OOM killer, a crash) stops nothing: the
service would live on as an orphan whose token the next hub still accepts, and after a restart
two services would meter one ledger. So the hub plugin puts the hub's process id in a managed
service's environment (``SUBSIDYHUB_HUB_PID``; never for the Kubernetes Deployment, which the
hub does not start), and at start the service

* asks Linux to send it SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``);
* then checks that its parent is still that hub: one that died before the call left the
  service to another parent, and the service stops at once;
* where there is no ``prctl``, watches its parent from a thread and sends itself SIGTERM when
  the parent changes.

SIGTERM is the service's clean shutdown: uvicorn finishes the requests in flight and the app's
lifespan stops the enforcer, so a hub's death ends metering as ``subsidyhub up``'s Ctrl-C does.
The service must be the hub's direct child (the plugin's command is the interpreter itself).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping

from subsidyhub.names import HUB_PID_ENV

log = logging.getLogger("subsidyhub.lifeline")

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCH_INTERVAL_S = 0.5


class NoHub(Exception):
    """The hub that started this managed service is gone, or was not named right."""


def follow_hub(environ: Mapping[str, str]) -> bool:
    """End this process with the hub named in ``SUBSIDYHUB_HUB_PID``; raises :class:`NoHub`.

    Returns False, doing nothing, when the variable is unset: not the hub's managed service.
    """
    value = environ.get(HUB_PID_ENV, "").strip()
    if not value:
        return False
    if not value.isdigit():
        raise NoHub(f"{HUB_PID_ENV} is {value!r}, not a process id; the hub plugin sets it")
    hub_pid = int(value)
    death_signal = set_parent_death_signal(signal.SIGTERM)
    # After the call, so a hub that died just before it is noticed here.
    if os.getppid() != hub_pid:
        raise NoHub(
            f"the hub that started this service (pid {hub_pid}) is not its parent: it has "
            "exited, or the service was not started by it directly; stopping"
        )
    if not death_signal:
        threading.Thread(
            target=watch_parent, args=(hub_pid,), name="subsidyhub-lifeline", daemon=True
        ).start()
    return True


def set_parent_death_signal(signum: signal.Signals) -> bool:
    """Linux: have the kernel send ``signum`` when the parent dies; False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def watch_parent(parent_pid: int, interval_s: float = WATCH_INTERVAL_S) -> None:
    """Wait until this process's parent is no longer ``parent_pid``, then SIGTERM ourselves."""
    while os.getppid() == parent_pid:
        time.sleep(interval_s)
    log.warning("The hub (pid %d) has exited; stopping the service", parent_pid)
    os.kill(os.getpid(), signal.SIGTERM)
