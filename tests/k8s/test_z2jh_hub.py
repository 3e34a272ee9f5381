"""z2jh 4.4's own hub config, with our overlay, builds a valid pod for every profile.

The charts are rendered by the real helm (z2jh unmodified from ``SUBSIDYHUB_Z2JH_CHART``, and
the subsidyhub chart whose ConfigMap carries subsidyhub.yaml); z2jh's real
``jupyterhub_config.py`` then runs in z2jh's hub environment (tests/k8s/hubpod.py: JupyterHub
5.5 and KubeSpawner as its image pins them, the pod's files mounted where z2jh reads them).
Two z2jh values sets: the overlay alone, and an operator's values that set what z2jh turns into
dict-valued volumes, its own environment, tolerations and a required node affinity — the
settings that broke SubsidyHub's profiles before. No cluster exists here: pods are built with
KubeSpawner's ``_mock`` mode and validated against strict Kubernetes schemas; quantities are
asserted, because the schemas do not check them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import kubernetes_validate
import pytest
import yaml

from subsidyhub.catalog import default_catalog_path, load_catalog, minimum_driver_major
from subsidyhub.hubplugin.kubernetes import SHM_VOLUME, prepuller_values
from subsidyhub.hubplugin.resources import memory_bytes
from subsidyhub.settings import parse_settings
from tests.k8s.charts import (
    JHUB_RELEASE,
    OVERLAY,
    find,
    of_kind,
    render_subsidyhub,
    render_z2jh,
    secret_data,
)
from tests.k8s.conftest import K8S_VERSIONS, quantity
from tests.k8s.hubpod import DRIVER_LABEL, K8S_CONFIG, load_hub, values_file
from tests.upstream import hub_requirements

SETTINGS = parse_settings(K8S_CONFIG, "test")
CATALOG = default_catalog_path()
# What a centre adds to the overlay: z2jh turns these into dict-valued volumes and mounts, its
# own c.KubeSpawner.environment, tolerations and a required node-affinity term.
OPERATOR_VALUES: dict[str, Any] = {
    "custom": {"subsidyhub": {"admins": ["centre-admin"]}},
    "singleuser": {
        "extraEnv": {"TZ": "Asia/Hong_Kong"},
        "storage": {
            "extraVolumes": [{"name": "datasets", "persistentVolumeClaim": {"claimName": "ds"}}],
            "extraVolumeMounts": [{"name": "datasets", "mountPath": "/datasets"}],
        },
        "extraTolerations": [
            {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user"}
        ],
    },
    "scheduling": {"userPods": {"nodeAffinity": {"matchNodePurpose": "require"}}},
}
SERVICE_URL = "http://subsidyhub:8000/services/subsidy/"
# A centre's own catalog (the chart's `catalog` value): the shipped one from its own registry.
CENTRE_REGISTRY = "registry.example.org/hpc"
CENTRE_CATALOG = yaml.safe_load(CATALOG.read_text()) | {"registry": CENTRE_REGISTRY}


@pytest.fixture(scope="module", params=["overlay", "operator"])
def deployment(request, helm, tmp_path_factory) -> dict[str, Any]:
    """Both charts rendered for Kubernetes 1.28 (z2jh's minimum) and z2jh's hub config loaded."""
    workdir = tmp_path_factory.mktemp(f"z2jh-{request.param}")
    extra: list[str] = []
    chart_values: dict[str, Any] = {"config": K8S_CONFIG}
    if request.param == "operator":
        extra = ["-f", values_file(workdir, "operator.yaml", OPERATOR_VALUES)]
        chart_values["catalog"] = CENTRE_CATALOG
    kube = ("--kube-version", "1.28.0")
    jhub = render_z2jh(helm, *kube, *extra)
    subsidyhub = render_subsidyhub(
        helm, *kube, "-f", values_file(workdir, "subsidyhub.yaml", chart_values)
    )
    hub = load_hub(jhub + subsidyhub, workdir)
    return {"name": request.param, "jhub": jhub, "subsidyhub": subsidyhub, "hub": hub}


def pins() -> dict[str, str]:
    lines = hub_requirements().read_text().splitlines()
    pairs = (line.split("==", 1) for line in lines if "==" in line and not line.startswith("#"))
    return {name.strip().lower(): pinned.strip() for name, pinned in pairs}


def qos_class(pod: dict[str, Any]) -> str:
    """Kubernetes' QoS class of a pod: Guaranteed only if every container, init containers
    included, has CPU and memory limits and requests equal to them (requests default to limits)."""
    containers = [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("limits") or r.get("requests") for r in resources):
        return "BestEffort"
    for r in resources:
        limits, requests = r.get("limits") or {}, r.get("requests") or {}
        for kind in ("cpu", "memory"):
            if kind not in limits:
                return "Burstable"
            if quantity(requests.get(kind, limits[kind])) != quantity(limits[kind]):
                return "Burstable"
    return "Guaranteed"


def test_runs_on_the_hub_image_pins(deployment):
    versions = deployment["hub"]["versions"]
    expected = pins()
    assert versions["jupyterhub"] == expected["jupyterhub"]
    assert versions["jupyterhub-kubespawner"] == expected["jupyterhub-kubespawner"]
    assert "Loading extra config: subsidyhub" in deployment["hub"]["log"]


def test_hub_config_wires_the_plugin(deployment):
    hub = deployment["hub"]
    assert hub["spawner_class"] == "kubespawner.KubeSpawner"
    assert hub["pre_spawn_hook"] is not None and hub["post_stop_hook"] is not None
    [subsidy] = [s for s in hub["services"] if s["name"] == "subsidy"]
    assert subsidy["url"] == "http://subsidyhub:8000"
    assert "command" not in subsidy  # the service is the subsidyhub chart's Deployment
    assert "environment" not in subsidy  # so it is never told to end with the hub
    # The token z2jh generated and publishes in its hub Secret, where the service reads it.
    token = secret_data(find(deployment["jhub"], "Secret", "hub"))["hub.services.subsidy.apiToken"]
    assert subsidy["api_token"] == token and len(token) >= 32
    roles = {role["name"]: role for role in hub["load_roles"]}
    access = "access:services!service=subsidy"
    assert access in roles["user"]["scopes"] and access in roles["server"]["scopes"]
    assert set(roles["subsidy-metrics"]["scopes"]) == {"read:metrics", access}
    assert set(roles["subsidy-service"]["scopes"]) >= {"list:users", "read:servers", "servers"}
    assert "jupyterhub-idle-culler" in roles  # z2jh's own roles are kept
    admins = OPERATOR_VALUES["custom"]["subsidyhub"]["admins"]
    expected_admins = admins if deployment["name"] == "operator" else []
    assert roles["subsidy-admins"]["users"] == expected_admins
    assert "custom:subsidy:admin" in hub["custom_scopes"]


@pytest.mark.parametrize("slug", [p["slug"] for p in K8S_CONFIG["profiles"]])
def test_every_profile_gives_a_strictly_valid_pod(deployment, slug):
    pod = deployment["hub"]["pods"]["fresh"][slug]
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(pod, version, strict=True)
    profile = SETTINGS.profile(slug)
    [container] = pod["spec"]["containers"]
    image = SETTINGS.catalog_image(profile)
    registry = CENTRE_REGISTRY if deployment["name"] == "operator" else load_catalog().registry
    assert container["image"] == f"{registry}/{image.ref}"

    resources = container["resources"]
    for kind, expected in (("cpu", profile.cpu), ("memory", memory_bytes(profile.memory_gib))):
        assert quantity(resources["limits"][kind]) == expected
        assert quantity(resources["requests"][kind]) == expected
    assert qos_class(pod) == "Guaranteed"

    extended = {k: v for k, v in resources["limits"].items() if k not in ("cpu", "memory")}
    tolerated = {t["key"] for t in pod["spec"].get("tolerations") or []}
    env = {e["name"]: e.get("value") for e in container["env"]}
    terms = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    gpu_label = SETTINGS.kubernetes.gpu_node_label
    if profile.gpus is None:
        # No GPU resource at all: "nvidia.com/gpu: 0" would make the ExtendedResourceToleration
        # admission plugin tolerate the GPU taint.
        assert extended == {}
        assert "nvidia.com/gpu" not in tolerated
        assert pod["spec"]["nodeSelector"] == {"pool": "cpu"}
        assert env["NVIDIA_VISIBLE_DEVICES"] == "void"
        wanted = {"key": gpu_label, "operator": "DoesNotExist"}
    else:
        gpu_type = SETTINGS.kubernetes.gpu_types[profile.gpus.type]
        assert extended == {gpu_type.resource: str(profile.gpus.count)}
        assert "nvidia.com/gpu" in tolerated
        assert pod["spec"]["nodeSelector"] == {gpu_label: gpu_type.node_label_value}
        assert "NVIDIA_VISIBLE_DEVICES" not in env
        cuda = SETTINGS.catalog_image(profile).cuda
        wanted = {
            "key": DRIVER_LABEL,
            "operator": "Gt",
            "values": [str(minimum_driver_major(cuda) - 1)],
        }
    # Every term (they are ORed) carries our requirement next to z2jh's.
    assert terms and all(wanted in term["matchExpressions"] for term in terms)
    if deployment["name"] == "operator":
        purpose = {"key": "hub.jupyter.org/node-purpose", "operator": "In", "values": ["user"]}
        assert all(purpose in term["matchExpressions"] for term in terms)

    # The env the lab extension needs survives z2jh's c.KubeSpawner.environment.
    assert env["SUBSIDYHUB_SERVICE_URL"] == SERVICE_URL
    if deployment["name"] == "operator":
        assert env["TZ"] == "Asia/Hong_Kong"
        assert "hub.jupyter.org/dedicated" in tolerated

    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert volumes[SHM_VOLUME]["emptyDir"]["medium"] == "Memory"
    size = memory_bytes(profile.memory_gib * SETTINGS.kubernetes.shm_fraction)
    assert quantity(volumes[SHM_VOLUME]["emptyDir"]["sizeLimit"]) == size
    assert mounts["/dev/shm"] == SHM_VOLUME
    assert "persistentVolumeClaim" in volumes[mounts["/home/jovyan"]]  # z2jh's home volume
    if deployment["name"] == "operator":
        assert mounts["/datasets"] == "datasets"
    labels = pod["metadata"]["labels"]
    assert labels["component"] == "singleuser-server"
    assert labels["hub.jupyter.org/network-access-hub"] == "true"


def test_a_reused_spawner_inherits_nothing_from_an_earlier_profile(deployment):
    """A spawn retried after a failure reuses the spawner: each profile in turn on one object
    gives exactly the pod a fresh spawner gives."""
    pods = deployment["hub"]["pods"]
    for slug, fresh in pods["fresh"].items():
        assert pods["reused"][slug]["spec"] == fresh["spec"], slug


def test_rendered_documents_are_strictly_valid(deployment):
    for doc in deployment["jhub"] + deployment["subsidyhub"]:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD; checked field by field in test_helm_chart.py
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_pre_puller_pulls_the_catalog_images_on_gpu_nodes(deployment):
    catalog = load_catalog()
    wanted = {catalog.reference(image) for image in catalog.images if image.status == "current"}
    for name in ("hook-image-puller", "continuous-image-puller"):
        spec = find(deployment["jhub"], "DaemonSet", name)["spec"]["template"]["spec"]
        pulled = {c["image"] for c in spec["initContainers"]}
        assert wanted <= pulled, name
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
            "tolerations"
        ]


def test_prepuller_values_name_the_profiles_images():
    values = prepuller_values(SETTINGS)["prePuller"]
    assert {f"{i['name']}:{i['tag']}" for i in values["extraImages"].values()} == {
        SETTINGS.profile_image(p) for p in SETTINGS.profiles
    }
    assert values["extraTolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    shipped = yaml.safe_load(OVERLAY.read_text())["prePuller"]
    assert shipped["extraTolerations"] == values["extraTolerations"]


def test_hub_pod_runs_z2jh_hub_image_release(deployment):
    """The overlay points at our hub image; z2jh's release labels pods as jhub's."""
    spec = find(deployment["jhub"], "Deployment", "hub")["spec"]["template"]
    assert spec["spec"]["containers"][0]["image"].endswith("/subsidyhub/hub:0.1.0")
    assert spec["metadata"]["labels"]["release"] == JHUB_RELEASE
    assert of_kind(deployment["jhub"], "NetworkPolicy")


def test_quantity_parser():
    assert quantity("500m") == Decimal("0.5")
    assert quantity("8Gi") == 8 * 2**30
