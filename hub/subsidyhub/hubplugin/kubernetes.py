"""Profiles → KubeSpawner settings: what a ``subsidyhub.yaml`` profile becomes as a pod.

Why a separate, pure module: the price a user pays is computed from the profile, so the pod
must get exactly that profile's resources — no more GPUs, no less memory — and that mapping
must be testable without a cluster. The builders here take settings and return plain data;
:func:`update_kubernetes` turns them into a KubeSpawner ``profile_list`` whose
``kubespawner_override`` applies when the admission form's ``profile`` option is loaded.

What a pod gets from its profile:

- CPU and memory limits equal to the profile, guarantees at ``kubernetes.guarantee_fraction``
  of them (1: Guaranteed QoS, so a node never overcommits a paid-for server);
- GPUs as an extended-resource limit of the GPU type's resource (``nvidia.com/gpu`` or a MIG
  slice such as ``nvidia.com/mig-1g.10gb``), a node selector on ``kubernetes.gpu_node_label``
  and the GPU tolerations; CPU profiles instead get an explicit ``nvidia.com/gpu: 0`` limit,
  ``NVIDIA_VISIBLE_DEVICES=void`` (CUDA images otherwise see every GPU of the node through
  the NVIDIA runtime) and no GPU toleration, so they never land on tainted GPU nodes;
- a memory-backed ``/dev/shm`` (PyTorch data loaders need more than the runtime's 64 MiB),
  sized at ``kubernetes.shm_fraction`` of the profile's memory; it counts against the limit;
- the profile's catalog image (its full pull reference), else ``kubernetes.image``.

List-valued traits (tolerations, volumes, mounts) are *added* to what the deployment (z2jh's
``singleuser`` values) already set, never replacing it: the override uses callables because
KubeSpawner merges dicts but replaces lists.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_CEILING, Decimal
from typing import Any

from subsidyhub.settings import Kubernetes, Profile, Settings

GPU_RESOURCE = "nvidia.com/gpu"
SHM_VOLUME = "subsidyhub-shm"
GIB = 1024**3
MIB = 1024**2

KUBESPAWNER_CLASS = "kubespawner.KubeSpawner"


def cpu_quantity(cores: Decimal) -> str:
    """Kubernetes CPU quantity: whole cores as "4", fractions in millicores ("500m")."""
    if cores == cores.to_integral_value():
        return str(int(cores))
    millis = (cores * 1000).to_integral_value(rounding=ROUND_CEILING)
    return f"{int(millis)}m"


def memory_bytes(gib: Decimal) -> int:
    """GiB (as written in subsidyhub.yaml) → bytes, rounded up to a whole MiB."""
    mib = (gib * 1024).to_integral_value(rounding=ROUND_CEILING)
    return int(mib) * MIB


def memory_quantity(gib: Decimal) -> str:
    """Kubernetes memory quantity in binary units: "8Gi", "1536Mi"."""
    value = memory_bytes(gib)
    return f"{value // GIB}Gi" if value % GIB == 0 else f"{value // MIB}Mi"


def gpu_resource_limits(profile: Profile, kubernetes: Kubernetes) -> dict[str, str]:
    """Extended-resource limits: the GPU type's resource × count, or ``nvidia.com/gpu: 0``."""
    if profile.gpus is None:
        return {GPU_RESOURCE: "0"}
    gpu_type = kubernetes.gpu_types.get(profile.gpus.type)
    resource = gpu_type.resource if gpu_type else GPU_RESOURCE
    return {resource: str(profile.gpus.count)}


def node_selector(profile: Profile, kubernetes: Kubernetes) -> dict[str, str]:
    """GPU profiles select their type's node pool; CPU profiles ``cpu_node_selector``."""
    if profile.gpus is None:
        return dict(kubernetes.cpu_node_selector)
    gpu_type = kubernetes.gpu_types.get(profile.gpus.type)
    if gpu_type is None or gpu_type.node_label_value is None:
        return {}
    return {kubernetes.gpu_node_label: gpu_type.node_label_value}


def tolerations(profile: Profile, kubernetes: Kubernetes) -> list[dict[str, str]]:
    """GPU tolerations in Kubernetes' camelCase form; none for CPU profiles."""
    if profile.gpus is None:
        return []
    out = []
    for toleration in kubernetes.gpu_tolerations:
        item = {"key": toleration.key, "operator": toleration.operator}
        if toleration.value is not None:
            item["value"] = toleration.value
        if toleration.effect is not None:
            item["effect"] = toleration.effect
        out.append(item)
    return out


def shm_size(profile: Profile, kubernetes: Kubernetes) -> str | None:
    """Size limit of the memory-backed /dev/shm, or None when ``shm_fraction`` is 0."""
    if kubernetes.shm_fraction == 0:
        return None
    return memory_quantity(profile.memory_gib * kubernetes.shm_fraction)


def shm_volume(profile: Profile, kubernetes: Kubernetes) -> tuple[list[dict], list[dict]]:
    """(volumes, volume mounts) for /dev/shm; empty when disabled."""
    size = shm_size(profile, kubernetes)
    if size is None:
        return [], []
    volume = {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": size}}
    mount = {"name": SHM_VOLUME, "mountPath": "/dev/shm"}
    return [volume], [mount]


def pod_settings(profile: Profile, settings: Settings) -> dict[str, Any]:
    """The KubeSpawner trait values for one profile, as plain data (the table-tested core)."""
    kubernetes = settings.kubernetes
    volumes, mounts = shm_volume(profile, kubernetes)
    guarantee = kubernetes.guarantee_fraction
    values: dict[str, Any] = {
        "image": settings.profile_image(profile) or kubernetes.image,
        "cpu_limit": float(profile.cpu),
        "cpu_guarantee": float(profile.cpu * guarantee),
        "mem_limit": memory_bytes(profile.memory_gib),
        "mem_guarantee": memory_bytes(profile.memory_gib * guarantee),
        "extra_resource_limits": gpu_resource_limits(profile, kubernetes),
        "node_selector": node_selector(profile, kubernetes),
        "tolerations": tolerations(profile, kubernetes),
        "volumes": volumes,
        "volume_mounts": mounts,
        "environment": {},
    }
    if profile.gpus is None:
        values["environment"] = {"NVIDIA_VISIBLE_DEVICES": "void"}
    return values


def _append_by_key(trait: str, items: list[dict], key: str) -> Callable[[Any], list]:
    """An override callable that adds ``items`` to the spawner's list without duplicates."""

    def merge(spawner: Any) -> list:
        ours = {item[key] for item in items}
        kept = [item for item in getattr(spawner, trait) if _item_key(item, key) not in ours]
        return [*kept, *items]

    merge.__name__ = f"append_{trait}"
    return merge


def _item_key(item: Any, key: str) -> Any:
    if isinstance(item, dict):
        return item.get(key)
    return getattr(item, key, None)


def kubespawner_override(profile: Profile, settings: Settings) -> dict[str, Any]:
    """``kubespawner_override`` for one profile; list traits are merged, not replaced."""
    values = pod_settings(profile, settings)
    override = {k: v for k, v in values.items() if k not in ("tolerations", "volumes")}
    override["volume_mounts"] = _append_by_key("volume_mounts", values["volume_mounts"], "name")
    override["volumes"] = _append_by_key("volumes", values["volumes"], "name")
    if values["tolerations"]:
        override["tolerations"] = _append_by_key("tolerations", values["tolerations"], "key")
    return override


def profile_list(settings: Settings) -> list[dict[str, Any]]:
    """KubeSpawner's ``profile_list``: one entry per profile, the first the default.

    KubeSpawner applies the entry whose slug is the ``profile`` user option — the same
    option the SubsidyHub spawn form submits and the admission hook prices.
    """
    entries = []
    for index, profile in enumerate(settings.profiles):
        entries.append(
            {
                "slug": profile.slug,
                "display_name": profile.display_name,
                "description": profile.description,
                "default": index == 0,
                "kubespawner_override": kubespawner_override(profile, settings),
            }
        )
    return entries


def update_kubernetes(c: Any, settings: Settings) -> None:
    """Select KubeSpawner and set its per-profile settings (only sets, never appends)."""
    c.JupyterHub.spawner_class = KUBESPAWNER_CLASS
    c.KubeSpawner.profile_list = profile_list(settings)
    c.KubeSpawner.image = settings.kubernetes.image
    if settings.kubernetes.namespace:
        c.KubeSpawner.namespace = settings.kubernetes.namespace


def configure_z2jh(c: Any, admins: list[str] | tuple[str, ...] = ()) -> None:
    """The z2jh ``hub.extraConfig`` entry point (see helm/jupyterhub-values.yaml).

    z2jh has already turned ``hub.services.subsidy`` into a ``c.JupyterHub.services`` entry
    with its URL and token; the service runs as its own Deployment (the subsidyhub chart), so
    the hub does not manage it. ``SUBSIDYHUB_CONFIG`` names the subsidyhub.yaml mounted from
    the subsidyhub chart's ConfigMap.
    """
    from subsidyhub.hubplugin.config import SERVICE_NAME, HubPlan, configure_hub
    from subsidyhub.settings import load_settings

    services = c.JupyterHub.services if isinstance(c.JupyterHub.services, list) else []
    entry = next((s for s in services if s.get("name") == SERVICE_NAME), None)
    if entry is None or not entry.get("url") or not entry.get("api_token"):
        raise RuntimeError(
            f"hub.services.{SERVICE_NAME} with url and apiToken is missing from the z2jh values; "
            "see helm/jupyterhub-values.yaml and docs/deploy-kubernetes.md"
        )
    settings = load_settings()
    plan = HubPlan(
        service_url=entry["url"],
        service_token=entry["api_token"],
        manage_service=False,
        subsidy_admins=tuple(admins),
    )
    configure_hub(c, settings, plan)
