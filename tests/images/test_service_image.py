"""The service image's Dockerfile and lock fit the chart that runs it.

No registry base image can be pulled here, so the image is not built in the suite; what can
drift silently is checked: the hashed lock covers every dependency subsidyhub declares, the
Dockerfile installs it with ``--require-hashes``, and it runs as the user and command the
chart's Deployment expects.
"""

from __future__ import annotations

import re
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.images.conftest import IMAGES
from tests.upstream import ROOT

SERVICE = IMAGES / "service"


def locked() -> dict[str, list[str]]:
    """name → hashes of each pinned requirement in the lock."""
    entries: dict[str, list[str]] = {}
    name = None
    for line in (SERVICE / "requirements.lock").read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9._-]+)==\S+", line):
            name = canonicalize_name(match.group(1))
            entries[name] = []
        elif name and (match := re.search(r"--hash=sha256:([0-9a-f]{64})", line)):
            entries[name].append(match.group(1))
    return entries


def test_the_lock_pins_every_dependency_with_hashes():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    entries = locked()
    assert declared - set(entries) == set()
    assert [name for name, hashes in entries.items() if not hashes] == []


def test_the_dockerfile_runs_what_the_chart_expects():
    dockerfile = (SERVICE / "Dockerfile").read_text()
    assert "--require-hashes" in dockerfile
    values = yaml.safe_load((ROOT / "helm" / "subsidyhub" / "values.yaml").read_text())
    user = values["securityContext"]["runAsUser"]
    assert re.search(rf"^USER {user}:", dockerfile, re.M)
    deployment = (ROOT / "helm" / "subsidyhub" / "templates" / "deployment.yaml").read_text()
    command = re.search(r"^CMD (\[.*\])$", dockerfile, re.M)
    assert command and f"command: {command.group(1)}" in deployment
