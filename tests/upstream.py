"""Where the real upstream artefacts are: the z2jh chart and the hub environment of its image.

The tests that judge SubsidyHub against Zero to JupyterHub 4.4 (tests/k8s, and the JupyterHub 5.5
runs of tests/hub) need an unmodified z2jh chart and a virtualenv installed from its hub image's
frozen requirements (``make k8s-hub-venv``). Both are found through environment variables so a
user elsewhere can point at ``helm pull jupyterhub/jupyterhub --version 4.4.0 --untar`` output:

* ``SUBSIDYHUB_Z2JH_CHART``: the chart folder (holding ``Chart.yaml`` and ``files/hub``);
* ``SUBSIDYHUB_Z2JH_HUB_REQUIREMENTS``: the hub image's ``requirements.txt``, from which the
  Makefile builds ``.venv/k8s-hub``.

Unset, the tests that need them are skipped and say which variable to set; set but missing or
unbuilt, they fail. ``.ci/run`` sets both, so in CI a missing chart is a failure, not a skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
CHART_ENV = "SUBSIDYHUB_Z2JH_CHART"
REQUIREMENTS_ENV = "SUBSIDYHUB_Z2JH_HUB_REQUIREMENTS"
K8S_HUB_VENV = ROOT / ".venv" / "k8s-hub"
Z2JH_VERSION = "4.4.0"


def _configured(variable: str, what: str) -> Path:
    value = os.environ.get(variable)
    if not value:
        pytest.skip(f"{variable} is not set: point it at {what} to run this test (.ci/run does)")
    path = Path(value)
    if not path.exists():
        pytest.fail(f"{variable}={value} does not exist ({what})")
    return path


def z2jh_chart() -> Path:
    """The unmodified z2jh chart folder; checks that it is the version SubsidyHub targets."""
    chart = _configured(CHART_ENV, f"an unpacked z2jh {Z2JH_VERSION} chart")
    metadata = chart / "Chart.yaml"
    if not metadata.is_file():
        pytest.fail(f"{CHART_ENV}={chart} holds no Chart.yaml")
    version = next(
        (
            line.split(":", 1)[1].strip().strip("\"'")
            for line in metadata.read_text().splitlines()
            if line.startswith("version:")
        ),
        "",
    )
    if version != Z2JH_VERSION:
        pytest.fail(f"{CHART_ENV}={chart} is z2jh {version or '?'}, not {Z2JH_VERSION}")
    return chart


def hub_requirements() -> Path:
    """The frozen requirements of the k8s-hub image."""
    return _configured(REQUIREMENTS_ENV, f"the requirements.txt of k8s-hub {Z2JH_VERSION}")


def k8s_hub_python() -> Path:
    """The interpreter of ``.venv/k8s-hub``: z2jh's hub pins plus subsidyhub[kubernetes]."""
    hub_requirements()
    python = K8S_HUB_VENV / "bin" / "python"
    if not (K8S_HUB_VENV / ".installed").exists():
        pytest.fail(f"{K8S_HUB_VENV} is not built: run `make k8s-hub-venv`")
    return python
