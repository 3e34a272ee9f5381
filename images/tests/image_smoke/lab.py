"""The SubsidyHub JupyterLab extension is installed and enabled, front end and server side.

Asks Jupyter itself (``jupyter labextension list``, ``jupyter server extension list``) rather
than looking for files, so a disabled or broken extension fails here instead of showing users
a lab without their balance.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

from image_smoke import Result

LAB_EXTENSION = "jupyterlab-subsidy"
SERVER_EXTENSION = "jupyterlab_subsidy"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _jupyter(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return _ANSI.sub("", done.stdout + done.stderr)


def check_lab() -> Result:
    if importlib.util.find_spec("jupyterlab") is None:
        return Result("lab", "fail", "JupyterLab is not installed in this Python")
    labs = _jupyter("labextension", "list")
    front = re.search(rf"^\s*{LAB_EXTENSION} v(\S+) (enabled|disabled)\s+(\S+)", labs, re.M)
    servers = _jupyter("server", "extension", "list")
    server = re.search(rf"^\s*{SERVER_EXTENSION} (enabled|disabled)", servers, re.M)
    problems = []
    if front is None:
        problems.append(f"lab extension {LAB_EXTENSION} is not installed")
    elif front.group(2) != "enabled" or front.group(3) != "OK":
        problems.append(f"lab extension {LAB_EXTENSION} is {front.group(2)}, {front.group(3)}")
    if server is None:
        problems.append(f"server extension {SERVER_EXTENSION} is not installed")
    elif server.group(1) != "enabled":
        problems.append(f"server extension {SERVER_EXTENSION} is disabled")
    if problems:
        return Result("lab", "fail", "; ".join(problems))
    return Result(
        "lab",
        "pass",
        f"{LAB_EXTENSION} v{front.group(1) if front else '?'} enabled (lab and server)",
    )
