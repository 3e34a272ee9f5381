"""SubsidyHub installs into z2jh 4.4's hub image without changing any package the image pins.

The hub image (quay.io/jupyterhub/k8s-hub:4.4.0) is a frozen set of packages: JupyterHub 5.5,
KubeSpawner 7, SQLAlchemy 2.0 and the rest of its ``requirements.txt``. images/hub/Dockerfile
adds ``subsidyhub[kubernetes]`` on top; if that pulled in another JupyterHub or SQLAlchemy, the
hub would no longer be the one z2jh tested. Real components: the image's requirements file
(``SUBSIDYHUB_Z2JH_HUB_REQUIREMENTS``), the ``.venv/k8s-hub`` environment built from it
(``make k8s-hub-venv``, the interpreter tests/hub run JupyterHub 5.5 with) and pip's resolver.
Proves that every pin is installed there at its version with this checkout's subsidyhub, and
that pip, given ``subsidyhub[kubernetes]`` without any constraints, would install subsidyhub
alone: no pinned package is upgraded, downgraded or added to satisfy it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.upstream import ROOT, hub_requirements, k8s_hub_python

# What the interpreter reports installed: normalised name -> version, and where subsidyhub is.
INSTALLED = """
import importlib.metadata as m, json, subsidyhub
print(json.dumps({
    "versions": {d.metadata["Name"]: d.version for d in m.distributions()},
    "subsidyhub": subsidyhub.__file__,
}))
"""


def pins(requirements: Path) -> dict[str, Version]:
    """``name==version`` lines of a pip-compile output, by normalised (PEP 503) name."""
    pinned = {}
    for raw in requirements.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        [specifier] = requirement.specifier
        assert specifier.operator == "==", f"{requirements}: {line!r} is not an exact pin"
        pinned[canonicalize_name(requirement.name)] = Version(specifier.version)
    return pinned


def test_the_k8s_hub_venv_holds_every_pin_and_this_checkouts_subsidyhub() -> None:
    pinned = pins(hub_requirements())
    assert canonicalize_name("jupyterhub") in pinned, "the requirements file pins no JupyterHub"
    result = subprocess.run(
        [str(k8s_hub_python()), "-c", INSTALLED],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(result.stdout)
    installed = {canonicalize_name(n): Version(v) for n, v in report["versions"].items()}

    wrong = [
        f"{name} {installed.get(name, 'missing')} (pinned {version})"
        for name, version in sorted(pinned.items())
        if installed.get(name) != version
    ]
    assert not wrong, f".venv/k8s-hub differs from the hub image's pins: {', '.join(wrong)}"
    assert "subsidyhub" in installed
    assert Path(report["subsidyhub"]).is_relative_to(ROOT / "hub"), (
        f".venv/k8s-hub imports subsidyhub from {report['subsidyhub']}, not this checkout"
    )


@pytest.mark.slow
def test_installing_subsidyhub_kubernetes_changes_no_pinned_package(tmp_path: Path) -> None:
    pinned = pins(hub_requirements())
    report_path = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_CONSTRAINT", "PIP_UPGRADE")}
    result = subprocess.run(
        [
            str(k8s_hub_python()),
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--report",
            str(report_path),
            "--quiet",
            "--disable-pip-version-check",
            f"{ROOT}[kubernetes]",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"pip could not resolve subsidyhub[kubernetes]: {result.stderr}"
    would_install = {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in json.loads(report_path.read_text(encoding="utf-8"))["install"]
    }

    assert "subsidyhub" in would_install, f"pip would not install subsidyhub: {would_install}"
    changed = [
        f"{name} {version} (pinned {pinned[name]})"
        if name in pinned
        else f"{name} {version} (not a pin of the image)"
        for name, version in sorted(would_install.items())
        if name != "subsidyhub"
    ]
    assert not changed, (
        f"installing subsidyhub[kubernetes] would also install: {', '.join(changed)}"
    )
