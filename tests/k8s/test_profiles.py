"""Profiles → KubeSpawner settings, as tables: the pure builders in hubplugin.kubernetes."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

from subsidyhub.catalog import minimum_driver_major
from subsidyhub.hubplugin import kubernetes as k8s
from subsidyhub.hubplugin.config import update_backend
from subsidyhub.hubplugin.resources import memory_bytes
from subsidyhub.settings import ConfigError, parse_settings

BASE = {
    "prices": {"gpu": {"h800": 36, "a100": 24}},
    "kubernetes": {
        "gpu_types": {
            "h800": {"node_label_value": "NVIDIA-H800"},
            "a100": {"resource": "nvidia.com/mig-1g.10gb", "node_label_value": "NVIDIA-A100"},
        },
        "cpu_node_selector": {"pool": "cpu"},
    },
    "profiles": [
        {
            "slug": "cpu",
            "display_name": "CPU",
            "cpu": 0.5,
            "memory_gib": 1.5,
            "image": "base:2026.12",
        },
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
            "image": "pytorch:2.14-cuda13.0",
        },
        {
            "slug": "h800-1",
            "display_name": "1 × H800",
            "cpu": 4,
            "memory_gib": 32,
            "gpus": {"type": "h800"},
            "image": "base:2026.12",
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
    assert memory_bytes(gib) == expected_bytes
    assert k8s.memory_quantity(gib) == expected


@pytest.mark.parametrize(
    ("slug", "limits", "selector", "tolerated"),
    [
        ("cpu", {}, {"pool": "cpu"}, False),
        ("h800-2", {"nvidia.com/gpu": "2"}, {"nvidia.com/gpu.product": "NVIDIA-H800"}, True),
        ("mig", {"nvidia.com/mig-1g.10gb": "1"}, {"nvidia.com/gpu.product": "NVIDIA-A100"}, True),
        ("h800-1", {"nvidia.com/gpu": "1"}, {"nvidia.com/gpu.product": "NVIDIA-H800"}, True),
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


@pytest.mark.parametrize(
    ("slug", "driver_label", "expected"),
    [
        ("cpu", None, [{"key": "nvidia.com/gpu.product", "operator": "DoesNotExist"}]),
        ("cpu", "drv", [{"key": "nvidia.com/gpu.product", "operator": "DoesNotExist"}]),
        ("h800-2", None, []),
        # CUDA 13 images need the R580 driver branch: "greater than 579".
        ("h800-2", "drv", [{"key": "drv", "operator": "Gt", "values": ["579"]}]),
    ],
)
def test_node_requirements(slug, driver_label, expected):
    s = settings(driver_major_label=driver_label)
    assert k8s.node_requirements(s.profile(slug), s) == expected


@pytest.mark.parametrize(("cuda", "driver"), [("13.0", 580), ("12.8", 525), ("13", 580)])
def test_minimum_driver(cuda, driver):
    assert minimum_driver_major(cuda) == driver


def test_unknown_cuda_has_no_minimum_driver():
    with pytest.raises(ValueError, match=r"CUDA 11\.8 has no known minimum driver"):
        minimum_driver_major("11.8")


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
    assert values["mem_limit"] == memory_bytes(profile.memory_gib)
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


def test_image_is_the_catalog_reference():
    s = settings()
    assert (
        k8s.pod_settings(s.profile("h800-2"), s)["image"]
        == "ghcr.io/subsidyhub/pytorch:2.14-cuda13.0"
    )


def test_profile_list_first_is_default():
    entries = k8s.profile_list(settings())
    assert [e["slug"] for e in entries] == ["cpu", "h800-2", "mig", "h800-1"]
    assert [e["default"] for e in entries] == [True, False, False, False]


Z2JH_TOLERATION = {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user"}
PURPOSE = {"key": "hub.jupyter.org/node-purpose", "operator": "In", "values": ["user"]}


def deployment_spawner(volumes):
    """Trait values as a deployment (z2jh) set them: volumes dict- or list-valued."""
    return SimpleNamespace(
        tolerations=[Z2JH_TOLERATION],
        volumes=volumes,
        volume_mounts={"home": {"name": "home", "mountPath": "/home/jovyan"}},
        node_affinity_required=[{"matchExpressions": [PURPOSE]}],
    )


def apply(override, spawner):
    """KubeSpawner's rule: callables are called; dicts merged into dicts, None removes a key."""
    for trait, value in override.items():
        if callable(value):
            value = value(spawner)
        current = getattr(spawner, trait, None)
        if isinstance(value, dict) and isinstance(current, dict):
            for key, item in value.items():
                if item is None:
                    current.pop(key, None)
                else:
                    current[key] = item
        else:
            setattr(spawner, trait, value)


@pytest.mark.parametrize(
    "volumes",
    [
        {"home": {"name": "home", "persistentVolumeClaim": {"claimName": "claim-a"}}},
        [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-a"}}],
    ],
    ids=["z2jh-dict", "list"],
)
def test_overrides_keep_the_deployments_values_and_replace_only_ours(volumes):
    s = settings()
    entries = {e["slug"]: e["kubespawner_override"] for e in k8s.profile_list(s)}
    spawner = deployment_spawner(volumes)
    spawner.extra_resource_limits, spawner.node_selector, spawner.environment = {}, {}, {"TZ": "x"}

    def names(trait):
        return [v["name"] for v in (trait.values() if isinstance(trait, dict) else trait)]

    apply(entries["h800-2"], spawner)
    assert spawner.tolerations == [
        Z2JH_TOLERATION,
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    ]
    assert names(spawner.volumes) == ["home", k8s.SHM_VOLUME]
    assert names(spawner.volume_mounts) == ["home", k8s.SHM_VOLUME]
    assert spawner.node_affinity_required == [{"matchExpressions": [PURPOSE]}]
    assert spawner.extra_resource_limits == {"nvidia.com/gpu": "2"}
    assert spawner.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H800"}

    # The same spawner object retried with a CPU profile keeps nothing of the GPU one.
    apply(entries["cpu"], spawner)
    assert spawner.tolerations == [Z2JH_TOLERATION]
    assert names(spawner.volumes) == ["home", k8s.SHM_VOLUME]
    assert spawner.extra_resource_limits == {}
    assert spawner.node_selector == {"pool": "cpu"}
    assert spawner.environment == {"TZ": "x", "NVIDIA_VISIBLE_DEVICES": "void"}
    cpu_only = {"key": "nvidia.com/gpu.product", "operator": "DoesNotExist"}
    # ANDed into z2jh's term (terms are ORed), not a term of its own.
    assert spawner.node_affinity_required == [{"matchExpressions": [PURPOSE, cpu_only]}]
    apply(entries["cpu"], spawner)  # idempotent
    assert spawner.node_affinity_required == [{"matchExpressions": [PURPOSE, cpu_only]}]
    assert spawner.tolerations == [Z2JH_TOLERATION]


def test_cpu_requirement_without_deployment_terms_is_a_term_of_its_own():
    s = settings()
    [cpu] = [e["kubespawner_override"] for e in k8s.profile_list(s) if e["slug"] == "cpu"]
    spawner = SimpleNamespace(node_affinity_required=[])
    assert cpu["node_affinity_required"](spawner) == [
        {"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "DoesNotExist"}]}
    ]


def test_kubernetes_backend_needs_every_gpu_type():
    data = {**BASE, "backend": "kubernetes", "kubernetes": {"gpu_types": {}}}
    with pytest.raises(ConfigError) as error:
        parse_settings(data, "test.yaml")
    assert error.value.key == "profiles[1].gpus.type"
    assert "kubernetes.gpu_types" in error.value.message


def test_kubernetes_backend_needs_a_catalog_image_for_every_profile():
    profiles = [dict(p) for p in BASE["profiles"]]
    del profiles[2]["image"]
    with pytest.raises(ConfigError) as error:
        parse_settings({**BASE, "backend": "kubernetes", "profiles": profiles}, "test.yaml")
    assert error.value.key == "profiles[2].image"
    assert "catalog image" in error.value.message


def test_a_gpu_type_needs_its_node_label_value():
    data = {"kubernetes": {"gpu_types": {"h800": {"resource": "nvidia.com/gpu"}}}}
    with pytest.raises(ConfigError) as error:
        parse_settings(data, "test.yaml")
    assert error.value.key == "kubernetes.gpu_types.h800.node_label_value"


@pytest.mark.parametrize(
    ("kubernetes", "key"),
    [
        (
            {"gpu_types": {"h800": {"node_label_value": "x", "resorce": "x"}}},
            "kubernetes.gpu_types.h800.resorce",
        ),
        (
            {"gpu_types": {"h800": {"node_label_value": "x", "resource": "no slash"}}},
            "kubernetes.gpu_types.h800.resource",
        ),
        (
            {"gpu_types": {"h800": {"node_label_value": "a b"}}},
            "kubernetes.gpu_types.h800.node_label_value",
        ),
        ({"image": "x"}, "kubernetes.image"),
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
    assert "image" not in c.KubeSpawner  # every profile names its own catalog image
    local = Config()
    update_backend(local, parse_settings({}, "x"))
    assert "spawner_class" not in local.JupyterHub
