"""Profiles → KubeSpawner settings, as tables: the pure builders in hubplugin.kubernetes."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

from subsidyhub.hubplugin import kubernetes as k8s
from subsidyhub.hubplugin.config import update_backend
from subsidyhub.settings import ConfigError, parse_settings

BASE = {
    "prices": {"gpu": {"h800": 36, "a100": 24, "l40s": 10}},
    "kubernetes": {
        "gpu_types": {
            "h800": {"node_label_value": "NVIDIA-H800"},
            "a100": {"resource": "nvidia.com/mig-1g.10gb", "node_label_value": "NVIDIA-A100"},
            "l40s": {},
        },
        "cpu_node_selector": {"pool": "cpu"},
    },
    "profiles": [
        {"slug": "cpu", "display_name": "CPU", "cpu": 0.5, "memory_gib": 1.5},
        {
            "slug": "h800-2",
            "display_name": "2 × H800",
            "cpu": 16,
            "memory_gib": 128,
            "gpus": {"type": "h800", "count": 2},
            "image": "pytorch:2.14-cuda13.0",
        },
        {
            "slug": "mig",
            "display_name": "MIG",
            "cpu": 2,
            "memory_gib": 10,
            "gpus": {"type": "a100", "count": 1},
        },
        {
            "slug": "l40s",
            "display_name": "L40S",
            "cpu": 4,
            "memory_gib": 32,
            "gpus": {"type": "l40s"},
        },
    ],
}


def settings(**kubernetes):
    data = {**BASE, "backend": "kubernetes"}
    data["kubernetes"] = {**BASE["kubernetes"], **kubernetes}
    return parse_settings(data, "test.yaml")


@pytest.mark.parametrize(
    ("cores", "expected"),
    [
        (Decimal("0.5"), "500m"),
        (Decimal(4), "4"),
        (Decimal("0.1"), "100m"),
        (Decimal("1.25"), "1250m"),
    ],
)
def test_cpu_quantity(cores, expected):
    assert k8s.cpu_quantity(cores) == expected


@pytest.mark.parametrize(
    ("gib", "expected_bytes", "expected"),
    [
        (Decimal(8), 8 * 2**30, "8Gi"),
        (Decimal("1.5"), 1536 * 2**20, "1536Mi"),
        (Decimal("0.0001"), 2**20, "1Mi"),  # rounded up to a whole MiB, never down
    ],
)
def test_memory(gib, expected_bytes, expected):
    assert k8s.memory_bytes(gib) == expected_bytes
    assert k8s.memory_quantity(gib) == expected


@pytest.mark.parametrize(
    ("slug", "limits", "selector", "tolerated"),
    [
        ("cpu", {"nvidia.com/gpu": "0"}, {"pool": "cpu"}, False),
        ("h800-2", {"nvidia.com/gpu": "2"}, {"nvidia.com/gpu.product": "NVIDIA-H800"}, True),
        ("mig", {"nvidia.com/mig-1g.10gb": "1"}, {"nvidia.com/gpu.product": "NVIDIA-A100"}, True),
        ("l40s", {"nvidia.com/gpu": "1"}, {}, True),
    ],
)
def test_gpu_limits_selector_tolerations(slug, limits, selector, tolerated):
    s = settings()
    values = k8s.pod_settings(s.profile(slug), s)
    assert values["extra_resource_limits"] == limits
    assert values["node_selector"] == selector
    expected = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert values["tolerations"] == (expected if tolerated else [])
    hidden = values["environment"].get("NVIDIA_VISIBLE_DEVICES")
    assert hidden == (None if tolerated else "void")


def test_configurable_label_and_tolerations():
    s = settings(
        gpu_node_label="cloud.example.org/accelerator",
        gpu_tolerations=[{"key": "gpu", "operator": "Equal", "value": "true", "effect": None}],
    )
    values = k8s.pod_settings(s.profile("h800-2"), s)
    assert values["node_selector"] == {"cloud.example.org/accelerator": "NVIDIA-H800"}
    assert values["tolerations"] == [{"key": "gpu", "operator": "Equal", "value": "true"}]


@pytest.mark.parametrize(
    ("fraction", "slug", "cpu_guarantee", "mem_guarantee"),
    [
        ("1", "h800-2", 16.0, 128 * 2**30),
        ("0.5", "h800-2", 8.0, 64 * 2**30),
        ("0.25", "cpu", 0.125, 384 * 2**20),
    ],
)
def test_guarantees_and_limits(fraction, slug, cpu_guarantee, mem_guarantee):
    s = settings(guarantee_fraction=fraction)
    profile = s.profile(slug)
    values = k8s.pod_settings(profile, s)
    assert values["cpu_limit"] == float(profile.cpu)
    assert values["mem_limit"] == k8s.memory_bytes(profile.memory_gib)
    assert values["cpu_guarantee"] == cpu_guarantee
    assert values["mem_guarantee"] == mem_guarantee


@pytest.mark.parametrize(
    ("fraction", "slug", "size"),
    [("0.5", "h800-2", "64Gi"), ("0.5", "cpu", "768Mi"), ("0", "cpu", None)],
)
def test_shm(fraction, slug, size):
    s = settings(shm_fraction=fraction)
    volumes, mounts = k8s.shm_volume(s.profile(slug), s.kubernetes)
    if size is None:
        assert (volumes, mounts) == ([], [])
    else:
        assert volumes == [
            {"name": k8s.SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": size}}
        ]
        assert mounts == [{"name": k8s.SHM_VOLUME, "mountPath": "/dev/shm"}]


@pytest.mark.parametrize(
    ("slug", "image"),
    [
        ("h800-2", "ghcr.io/subsidyhub/pytorch:2.14-cuda13.0"),
        ("cpu", "quay.io/jupyter/base-notebook:latest"),
    ],
)
def test_image(slug, image):
    s = settings()
    assert k8s.pod_settings(s.profile(slug), s)["image"] == image


def test_profile_list_first_is_default_and_lists_merge():
    s = settings()
    entries = k8s.profile_list(s)
    assert [e["slug"] for e in entries] == ["cpu", "h800-2", "mig", "l40s"]
    assert [e["default"] for e in entries] == [True, False, False, False]

    spawner = SimpleNamespace(  # what z2jh already set: its own toleration and the home volume
        tolerations=[{"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user"}],
        volumes=[{"name": "home"}, {"name": k8s.SHM_VOLUME, "emptyDir": {}}],
    )

    override = entries[1]["kubespawner_override"]
    assert [t["key"] for t in override["tolerations"](spawner)] == [
        "hub.jupyter.org/dedicated",
        "nvidia.com/gpu",
    ]
    assert [v["name"] for v in override["volumes"](spawner)] == ["home", k8s.SHM_VOLUME]
    assert "tolerations" not in entries[0]["kubespawner_override"]


def test_kubernetes_backend_needs_every_gpu_type():
    data = {**BASE, "backend": "kubernetes", "kubernetes": {"gpu_types": {}}}
    with pytest.raises(ConfigError) as error:
        parse_settings(data, "test.yaml")
    assert error.value.key == "profiles[1].gpus.type"
    assert "kubernetes.gpu_types" in error.value.message


@pytest.mark.parametrize(
    ("kubernetes", "key"),
    [
        ({"gpu_types": {"h800": {"resorce": "x"}}}, "kubernetes.gpu_types.h800.resorce"),
        ({"gpu_types": {"h800": {"resource": "no slash"}}}, "kubernetes.gpu_types.h800.resource"),
        ({"shm_fraction": 2}, "kubernetes.shm_fraction"),
        ({"guarantee_fraction": 0}, "kubernetes.guarantee_fraction"),
        (
            {"gpu_tolerations": [{"key": "k", "operator": "Maybe"}]},
            "kubernetes.gpu_tolerations[0].operator",
        ),
    ],
)
def test_bad_kubernetes_settings_name_the_key(kubernetes, key):
    with pytest.raises(ConfigError) as error:
        parse_settings({"kubernetes": kubernetes}, "test.yaml")
    assert error.value.key == key


def test_update_backend_selects_kubespawner():
    from traitlets.config import Config

    c = Config()
    update_backend(c, settings(namespace="users"))
    assert c.JupyterHub.spawner_class == "kubespawner.KubeSpawner"
    assert c.KubeSpawner.namespace == "users"
    assert len(c.KubeSpawner.profile_list) == 4
    local = Config()
    update_backend(local, parse_settings({}, "x"))
    assert "spawner_class" not in local.JupyterHub
