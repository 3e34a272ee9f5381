"""z2jh's real hub, as far as it runs without a cluster: its config loaded in its own pod's files.

:func:`load_hub` takes the rendered z2jh and subsidyhub charts, lays out what the hub
container mounts under ``/usr/local/etc`` (z2jh's ConfigMap with ``jupyterhub_config.py`` and
``z2jh.py``, its Secret with ``values.yaml`` and the generated tokens, the subsidyhub
ConfigMap from ``hub.extraVolumes``), gives it the container's environment (literal values,
Secret references, the namespace, and the ``*_SERVICE_HOST``/``_PORT`` variables Kubernetes
adds for each Service), and runs tests/k8s/z2jh_hub.py in ``.venv/k8s-hub`` inside a private
mount namespace (``unshare --mount``) where those files are bind-mounted at ``/usr/local/etc``.
So z2jh's files run unmodified from where z2jh expects them, on the JupyterHub and KubeSpawner
its hub image pins. Mounts elsewhere (the hub database volume) are not needed to load config.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.k8s.charts import NAMESPACE, Doc, find, of_kind, secret_data
from tests.upstream import k8s_hub_python

DRIVER_LABEL = "nvidia.com/cuda.driver.major"
K8S_CONFIG: dict[str, Any] = {
    "currency": "HKD",
    "subsidy_rate": 0.70,
    "backend": "kubernetes",
    "prices": {"cpu_core": 0.50, "memory_gib": 0.05, "gpu": {"h800": 36.00, "a100": 6.00}},
    "kubernetes": {
        "gpu_types": {
            "h800": {"resource": "nvidia.com/gpu", "node_label_value": "NVIDIA-H800"},
            "a100": {
                "resource": "nvidia.com/mig-1g.10gb",
                "node_label_value": "NVIDIA-A100-SXM4-80GB",
            },
        },
        "cpu_node_selector": {"pool": "cpu"},
        "driver_major_label": DRIVER_LABEL,
    },
    "profiles": [
        {
            "slug": "cpu-small",
            "display_name": "CPU small",
            "cpu": 2,
            "memory_gib": 8,
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
            "display_name": "MIG 1g.10gb",
            "cpu": 4,
            "memory_gib": 16,
            "gpus": {"type": "a100", "count": 1},
            "image": "edge:2.14-cuda13.0",
        },
    ],
}

MOUNT_ROOT = "/usr/local/etc"
SCRIPT = Path(__file__).with_name("z2jh_hub.py")
DUMMY_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: dummy, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: dummy, user: {token: dummy}}]
contexts: [{name: dummy, context: {cluster: dummy, user: dummy, namespace: jhub}}]
current-context: dummy
"""


def values_file(directory: Path, name: str, values: dict[str, Any]) -> str:
    """A Helm values file holding ``values``; its path, for ``-f``."""
    path = directory / name
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return str(path)


def hub_container(docs: list[Doc]) -> tuple[Doc, Doc]:
    """The hub Deployment's pod spec and its ``hub`` container."""
    spec = find(docs, "Deployment", "hub")["spec"]["template"]["spec"]
    [container] = [c for c in spec["containers"] if c["name"] == "hub"]
    return spec, container


def _volume_files(volume: Doc, docs: list[Doc]) -> dict[str, str]:
    """The files a ConfigMap or Secret volume shows (key → content)."""
    if "configMap" in volume:
        config_map = find(docs, "ConfigMap", volume["configMap"]["name"])
        return dict(config_map.get("data") or {}) | {
            k: base64.b64decode(v).decode() for k, v in (config_map.get("binaryData") or {}).items()
        }
    if "secret" in volume:
        return secret_data(find(docs, "Secret", volume["secret"]["secretName"]))
    return {}


def stage_mounts(docs: list[Doc], root: Path) -> list[str]:
    """Write the hub container's mounts under /usr/local/etc into ``root``; list those written."""
    spec, container = hub_container(docs)
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    staged = []
    for mount in container["volumeMounts"]:
        path = mount["mountPath"].rstrip("/")
        if not path.startswith(MOUNT_ROOT + "/"):
            continue
        target = root / path.removeprefix(MOUNT_ROOT + "/")
        files = _volume_files(volumes[mount["name"]], docs)
        if "subPath" in mount:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(files[mount["subPath"]], encoding="utf-8")
        else:
            target.mkdir(parents=True, exist_ok=True)
            for key, content in files.items():
                (target / key).write_text(content, encoding="utf-8")
        staged.append(path)
    return staged


def container_environment(docs: list[Doc]) -> dict[str, str]:
    """The hub container's environment as Kubernetes would give it."""
    _spec, container = hub_container(docs)
    env: dict[str, str] = {}
    for index, service in enumerate(of_kind(docs, "Service")):
        prefix = service["metadata"]["name"].upper().replace("-", "_")
        env[f"{prefix}_SERVICE_HOST"] = f"10.96.0.{index + 10}"
        env[f"{prefix}_SERVICE_PORT"] = str(service["spec"]["ports"][0]["port"])
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        source = item["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[item["name"]] = secret_data(find(docs, "Secret", ref["name"]))[ref["key"]]
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[item["name"]] = find(docs, "ConfigMap", ref["name"])["data"][ref["key"]]
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            env[item["name"]] = NAMESPACE
        else:
            raise AssertionError(f"hub env {item['name']}: unsupported source {source}")
    return env


def load_hub(docs: list[Doc], workdir: Path) -> dict[str, Any]:
    """Run z2jh's hub config on ``docs`` (both charts rendered) in z2jh's hub environment."""
    python = k8s_hub_python()
    stage = workdir / "usr-local-etc"
    stage.mkdir()
    staged = stage_mounts(docs, stage)
    assert f"{MOUNT_ROOT}/jupyterhub/jupyterhub_config.py" in staged, staged
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.write_text(DUMMY_KUBECONFIG)
    output = workdir / "hub.json"
    env = container_environment(docs) | {
        "PATH": os.environ["PATH"],
        "HOME": str(workdir),
        "KUBECONFIG": str(kubeconfig),
    }
    unshare = [shutil.which("unshare") or "unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        unshare.insert(1, "--map-root-user")
    command = f'mount --bind "$1" {MOUNT_ROOT} && exec "$2" "$3" "$4"'
    result = subprocess.run(
        [*unshare, "sh", "-c", command, "sh", str(stage), str(python), str(SCRIPT), str(output)],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"z2jh's hub config failed in .venv/k8s-hub (exit {result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
        )
    loaded: dict[str, Any] = json.loads(output.read_text())
    loaded["log"] = result.stdout
    return loaded
