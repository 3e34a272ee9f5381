"""The real KubeSpawner turns every profile into a pod that strict Kubernetes schemas accept.

No cluster: a dummy kubeconfig and ``KubeSpawner(_mock=True)``. The hub config comes from the
z2jh overlay's ``hub.extraConfig`` run against a real traitlets ``Config`` — the same code the
hub runs — and quantities are asserted, because kubernetes-validate does not check them.
"""

from __future__ import annotations

import sys
import types
from decimal import Decimal
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubespawner import KubeSpawner
from traitlets.config import Config

from subsidyhub.hubplugin.kubernetes import SHM_VOLUME, memory_bytes
from tests.k8s.conftest import K8S_VERSIONS, OVERLAY, quantity, run_async
from tests.k8s.test_profiles import BASE

SERVICE_URL = "http://subsidyhub:8000"


@pytest.fixture
def hub_config(tmp_path, monkeypatch, kubeconfig) -> tuple[Config, Any]:
    """Run the overlay's extraConfig as z2jh's jupyterhub_config.py would."""
    from subsidyhub.settings import parse_settings

    path = tmp_path / "subsidyhub.yaml"
    path.write_text(yaml.safe_dump({**BASE, "backend": "kubernetes"}))
    monkeypatch.setenv("SUBSIDYHUB_CONFIG", str(path))
    values = yaml.safe_load(OVERLAY.read_text())
    c = Config()
    # What z2jh's own config does with hub.services before extraConfig runs.
    c.JupyterHub.services = [
        {"name": "subsidy", "url": SERVICE_URL, "api_token": "t" * 32, "display": True}
    ]
    z2jh = types.ModuleType("z2jh")
    z2jh.get_config = lambda key, default=None: (  # type: ignore[attr-defined]
        values["custom"]["subsidyhub"]["admins"] if key == "custom.subsidyhub.admins" else default
    )
    monkeypatch.setitem(sys.modules, "z2jh", z2jh)
    for name, code in values["hub"]["extraConfig"].items():
        exec(compile(code, f"extraConfig.{name}", "exec"), {"c": c})
    return c, parse_settings({**BASE, "backend": "kubernetes"}, "test")


def manifest(c: Config, profile: str) -> dict:
    async def build() -> dict:
        spawner = KubeSpawner(_mock=True, config=c)
        spawner.user_options = {"profile": profile, "project": "p1"}
        await spawner.load_user_options()
        pod = await spawner.get_pod_manifest()
        return spawner.api.api_client.sanitize_for_serialization(pod)

    return run_async(build())


def test_overlay_wires_the_plugin(hub_config):
    c, _ = hub_config
    assert c.JupyterHub.spawner_class == "kubespawner.KubeSpawner"
    [subsidy] = [s for s in c.JupyterHub.services if s["name"] == "subsidy"]
    assert subsidy["url"] == SERVICE_URL and "command" not in subsidy  # its own Deployment
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    access = "access:services!service=subsidy"
    assert access in roles["user"]["scopes"] and access in roles["server"]["scopes"]
    assert c.Spawner.pre_spawn_hook is not None


@pytest.mark.parametrize("slug", [p["slug"] for p in BASE["profiles"]])
def test_every_profile_gives_a_strictly_valid_pod(hub_config, slug):
    c, settings = hub_config
    profile = settings.profile(slug)
    pod = manifest(c, slug)
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(pod, version, strict=True)

    [container] = pod["spec"]["containers"]
    resources = container["resources"]
    assert quantity(resources["limits"]["cpu"]) == profile.cpu
    assert quantity(resources["requests"]["cpu"]) == profile.cpu
    assert quantity(resources["limits"]["memory"]) == memory_bytes(profile.memory_gib)
    assert quantity(resources["requests"]["memory"]) == memory_bytes(profile.memory_gib)
    gpu_limits = {k: v for k, v in resources["limits"].items() if k.startswith("nvidia.com/")}
    tolerations = [t["key"] for t in pod["spec"].get("tolerations") or []]
    if profile.gpus is None:
        assert gpu_limits == {"nvidia.com/gpu": "0"}
        assert "nvidia.com/gpu" not in tolerations
        assert pod["spec"]["nodeSelector"] == {"pool": "cpu"}
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["NVIDIA_VISIBLE_DEVICES"] == "void"
    else:
        resource = settings.kubernetes.gpu_types[profile.gpus.type].resource
        assert gpu_limits == {resource: str(profile.gpus.count)}
        assert "nvidia.com/gpu" in tolerations
    [shm] = [v for v in pod["spec"]["volumes"] if v["name"] == SHM_VOLUME]
    assert shm["emptyDir"]["medium"] == "Memory"
    assert quantity(shm["emptyDir"]["sizeLimit"]) == memory_bytes(profile.memory_gib / 2)
    assert {"name": SHM_VOLUME, "mountPath": "/dev/shm"} in container["volumeMounts"]


def test_gpu_pod_details(hub_config):
    c, _ = hub_config
    pod = manifest(c, "h800-2")
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H800"}
    assert pod["spec"]["containers"][0]["image"] == "ghcr.io/subsidyhub/pytorch:2.14-cuda13.0"
    mig = manifest(c, "mig")["spec"]["containers"][0]["resources"]["limits"]
    assert mig["nvidia.com/mig-1g.10gb"] == "1" and "nvidia.com/gpu" not in mig


def test_strict_validation_rejects_an_unknown_field(hub_config):
    """The check above can fail: a misspelt field is caught on every version."""
    c, _ = hub_config
    pod = manifest(c, "cpu")
    pod["spec"]["containers"][0]["resource"] = {}
    for version in K8S_VERSIONS:
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(pod, version, strict=True)


def test_quantity_parser():
    assert quantity("500m") == Decimal("0.5")
    assert quantity("8Gi") == 8 * 2**30
    assert quantity(2) == 2
