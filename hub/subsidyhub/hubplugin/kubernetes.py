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
  slice such as ``nvidia.com/mig-1g.10gb``), a node selector ``{gpu_node_label:
  node_label_value}``, the GPU tolerations and, with ``driver_major_label``, a required driver
  new enough for the image's CUDA;
- CPU profiles no GPU resource at all — not even ``nvidia.com/gpu: 0``, which the
  ExtendedResourceToleration admission plugin would answer with a toleration of the GPU taint —
  but a required node affinity on nodes *without* ``gpu_node_label``, no GPU toleration and
  ``NVIDIA_VISIBLE_DEVICES=void`` (CUDA images otherwise see every GPU of the node through the
  NVIDIA runtime);
- a memory-backed ``/dev/shm`` (PyTorch data loaders need more than the runtime's 64 MiB),
  sized at ``kubernetes.shm_fraction`` of the profile's memory; it counts against the limit;
- the profile's catalog image (its full pull reference); backend kubernetes requires one.

The deployment's own values (z2jh's ``singleuser``: volumes, tolerations, node affinity,
environment) are kept: list-valued traits get callables that replace only what SubsidyHub
owns, whether the deployment set them as lists or, as z2jh does for volumes and mounts, as
dicts keyed by name; dict-valued traits are merged by KubeSpawner, and keys SubsidyHub owns but
this profile does not use are set to ``None``, which KubeSpawner removes. So an override is
idempotent and a retried spawn with another profile inherits nothing from the first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import ROUND_CEILING, Decimal
from typing import Any

from subsidyhub.catalog import minimum_driver_major
from subsidyhub.hubplugin.resources import GIB, MIB, memory_bytes
from subsidyhub.settings import Kubernetes, Profile, Settings

GPU_RESOURCE = "nvidia.com/gpu"
SHM_VOLUME = "subsidyhub-shm"

KUBESPAWNER_CLASS = "kubespawner.KubeSpawner"


def cpu_quantity(cores: Decimal) -> str:
    """Kubernetes CPU quantity: whole cores as "4", fractions in millicores ("500m")."""
    if cores == cores.to_integral_value():
        return str(int(cores))
    millis = (cores * 1000).to_integral_value(rounding=ROUND_CEILING)
    return f"{int(millis)}m"


def memory_quantity(gib: Decimal) -> str:
    """Kubernetes memory quantity in binary units: "8Gi", "1536Mi"."""
    value = memory_bytes(gib)
    return f"{value // GIB}Gi" if value % GIB == 0 else f"{value // MIB}Mi"


def gpu_resources(kubernetes: Kubernetes) -> set[str]:
    """Every extended resource SubsidyHub requests GPUs as (removed from CPU pods)."""
    return {GPU_RESOURCE} | {gpu_type.resource for gpu_type in kubernetes.gpu_types.values()}


def gpu_resource_limits(profile: Profile, kubernetes: Kubernetes) -> dict[str, str]:
    """Extended-resource limits: the GPU type's resource × count; none for CPU profiles."""
    if profile.gpus is None:
        return {}
    resource = kubernetes.gpu_types[profile.gpus.type].resource
    return {resource: str(profile.gpus.count)}


def node_selector(profile: Profile, kubernetes: Kubernetes) -> dict[str, str]:
    """GPU profiles select their type's node pool; CPU profiles ``cpu_node_selector``."""
    if profile.gpus is None:
        return dict(kubernetes.cpu_node_selector)
    value = kubernetes.gpu_types[profile.gpus.type].node_label_value
    return {kubernetes.gpu_node_label: value}


def node_requirements(profile: Profile, settings: Settings) -> list[dict[str, Any]]:
    """Required node-affinity expressions: CPU pods off GPU nodes; GPU pods on a new enough driver."""
    kubernetes = settings.kubernetes
    if profile.gpus is None:
        return [{"key": kubernetes.gpu_node_label, "operator": "DoesNotExist"}]
    image = settings.catalog_image(profile)
    if kubernetes.driver_major_label is None or image is None:
        return []
    minimum = minimum_driver_major(image.cuda)
    # Node labels compare as integers with Gt only: "at least 580" is "greater than 579".
    return [{"key": kubernetes.driver_major_label, "operator": "Gt", "values": [str(minimum - 1)]}]


def owned_node_labels(kubernetes: Kubernetes) -> set[str]:
    labels = {kubernetes.gpu_node_label}
    if kubernetes.driver_major_label:
        labels.add(kubernetes.driver_major_label)
    return labels


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
    image = settings.profile_image(profile)
    if image is None:
        raise ValueError(f"profile {profile.slug!r} names no catalog image")
    volumes, mounts = shm_volume(profile, kubernetes)
    guarantee = kubernetes.guarantee_fraction
    return {
        "image": image,
        "cpu_limit": float(profile.cpu),
        "cpu_guarantee": float(profile.cpu * guarantee),
        "mem_limit": memory_bytes(profile.memory_gib),
        "mem_guarantee": memory_bytes(profile.memory_gib * guarantee),
        "extra_resource_limits": gpu_resource_limits(profile, kubernetes),
        "node_selector": node_selector(profile, kubernetes),
        "node_requirements": node_requirements(profile, settings),
        "tolerations": tolerations(profile, kubernetes),
        "volumes": volumes,
        "volume_mounts": mounts,
        "environment": {"NVIDIA_VISIBLE_DEVICES": "void"} if profile.gpus is None else {},
    }


def _item_key(item: Any, key: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(key)
    return getattr(item, key, None)


def _replace_owned(
    trait: str, items: list[dict], key: str, owned: set[str]
) -> Callable[[Any], Any]:
    """An override callable: the spawner's ``trait`` without the entries SubsidyHub owns, plus ``items``.

    z2jh sets volumes and mounts as dicts keyed by name (KubeSpawner sorts their values),
    other deployments as lists; a dict result is merged by KubeSpawner, so stale entries of
    ours are returned as ``None``, which it removes.
    """

    def merge(spawner: Any) -> Any:
        current = getattr(spawner, trait)
        if isinstance(current, Mapping):
            stale: dict[str, Any] = {
                name: None for name, item in current.items() if _item_key(item, key) in owned
            }
            return stale | {item[key]: item for item in items}
        kept = [item for item in current if _item_key(item, key) not in owned]
        return [*kept, *items]

    merge.__name__ = f"replace_subsidyhub_{trait}"
    return merge


def _require_on_nodes(expressions: list[dict], owned: set[str]) -> Callable[[Any], list]:
    """An override callable ANDing ``expressions`` into every required node-selector term.

    Terms are ORed by Kubernetes, so a term of our own beside z2jh's (``matchNodePurpose:
    require``) would loosen both; our expressions join each term instead. Expressions on
    labels SubsidyHub owns are dropped first, so the override is idempotent.
    """

    def merge(spawner: Any) -> list:
        terms = []
        for term in spawner.node_affinity_required:
            term = dict(term)
            kept = [e for e in term.get("matchExpressions") or [] if e.get("key") not in owned]
            term["matchExpressions"] = kept + expressions
            if term["matchExpressions"] or term.get("matchFields"):
                terms.append(term)
        if not terms and expressions:
            terms = [{"matchExpressions": list(expressions)}]
        return terms

    merge.__name__ = "require_subsidyhub_node_labels"
    return merge


def kubespawner_override(profile: Profile, settings: Settings) -> dict[str, Any]:
    """``kubespawner_override`` for one profile (see the module docstring for the merge rules)."""
    kubernetes = settings.kubernetes
    values = pod_settings(profile, settings)
    override = {
        key: values[key]
        for key in ("image", "cpu_limit", "cpu_guarantee", "mem_limit", "mem_guarantee")
    }
    override["extra_resource_limits"] = {
        resource: None for resource in gpu_resources(kubernetes)
    } | values["extra_resource_limits"]
    override["node_selector"] = {
        key: None for key in (kubernetes.gpu_node_label, *kubernetes.cpu_node_selector)
    } | values["node_selector"]
    override["environment"] = {"NVIDIA_VISIBLE_DEVICES": None} | values["environment"]
    override["node_affinity_required"] = _require_on_nodes(
        values["node_requirements"], owned_node_labels(kubernetes)
    )
    gpu_keys = {toleration.key for toleration in kubernetes.gpu_tolerations}
    override["tolerations"] = _replace_owned("tolerations", values["tolerations"], "key", gpu_keys)
    override["volumes"] = _replace_owned("volumes", values["volumes"], "name", {SHM_VOLUME})
    override["volume_mounts"] = _replace_owned(
        "volume_mounts", values["volume_mounts"], "name", {SHM_VOLUME}
    )
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
    if settings.kubernetes.namespace:
        c.KubeSpawner.namespace = settings.kubernetes.namespace


def _container_name(ref: str) -> str:
    """A DNS-1123 label from ``name:tag`` (z2jh names each puller container after its key)."""
    label = "".join(ch if ch.isalnum() else "-" for ch in ref.lower()).strip("-")
    return label[:52].rstrip("-")  # z2jh prefixes "image-pull-"; a label has 63 characters


def prepuller_values(settings: Settings) -> dict[str, Any]:
    """z2jh ``prePuller`` values pulling every catalog image a profile uses onto user nodes.

    The pullers must also run on tainted GPU nodes, so they get the GPU tolerations.
    """
    images: dict[str, dict[str, str]] = {}
    for profile in settings.profiles:
        image = settings.catalog_image(profile)
        reference = settings.profile_image(profile)
        if image is None or reference is None:
            continue
        name, _, tag = reference.rpartition(":")
        images[_container_name(image.ref)] = {"name": name, "tag": tag}
    gpu_profile = next((profile for profile in settings.profiles if profile.gpus), None)
    return {
        "prePuller": {
            "extraImages": dict(sorted(images.items())),
            "extraTolerations": tolerations(gpu_profile, settings.kubernetes)
            if gpu_profile
            else [],
        }
    }
