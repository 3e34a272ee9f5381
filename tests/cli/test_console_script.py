"""The installed ``subsidyhub`` console script: entry point, exit codes, and the config's place.

These run the real executable in a subprocess, as an admin's shell would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(sys.executable).with_name("subsidyhub")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "SUBSIDYHUB_CONFIG"}
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=base | {"SUBSIDYHUB_ACTOR": "script"} | (env or {}),
        check=False,
    )


@pytest.fixture(scope="module", autouse=True)
def script_is_installed() -> None:
    assert SCRIPT.is_file(), f"{SCRIPT} is missing; install the package (pip install -e .)"


def test_console_script_round_trip_and_exit_codes(config_file: Path) -> None:
    config = str(config_file)
    no_ledger = run("admin", "project", "create", "demo", "--name", "Demo", "--config", config)
    assert no_ledger.returncode == 1
    assert no_ledger.stderr.startswith("error: no SubsidyHub ledger at ")
    assert no_ledger.stderr.count("\n") == 1
    assert run("db", "upgrade", "--config", config).returncode == 0
    created = run("admin", "project", "create", "demo", "--name", "Demo", "--config", config)
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("Created project demo")

    allocated = run("--config", config, "admin", "allocate", "demo", "12.50")
    assert allocated.returncode == 0, allocated.stderr

    shown = run("admin", "project", "show", "demo", "--json", f"--config={config}")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["balance"] == "12.50"

    negative = run("admin", "allocate", "demo", "-5", "--config", config)
    assert negative.returncode == 2
    assert negative.stderr.startswith("error: amount -5.00 is negative")
    assert negative.stderr.count("\n") == 1
    assert "Traceback" not in negative.stderr

    unknown = run("admin", "allocate", "nope", "5", "--config", config)
    assert unknown.returncode == 1
    assert unknown.stderr == "error: No such project: nope. Projects include: demo\n"

    usage = run("admin", "allocate", "--config", config)
    assert usage.returncode == 2
    assert "Traceback" not in usage.stderr

    audit = run("admin", "audit", "--json", "--config", config)
    assert [e["actor"] for e in json.loads(audit.stdout)][:2] == ["cli:script", "cli:script"]


def test_config_from_the_environment(config_file: Path) -> None:
    assert run("db", "upgrade", env={"SUBSIDYHUB_CONFIG": str(config_file)}).returncode == 0
    created = run(
        "admin", "project", "create", "demo", "--name", "Demo",
        env={"SUBSIDYHUB_CONFIG": str(config_file)},
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    listed = run("admin", "project", "list", "--json", "--config", str(config_file))
    assert [p["slug"] for p in json.loads(listed.stdout)] == ["demo"]
