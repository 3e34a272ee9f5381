"""SubsidyDockerSpawner without a daemon: the create arguments a profile produces.

The Docker client is a real ``docker.APIClient`` pointed at a socket that does not exist (it
only builds host configs here); ``DockerSpawner.docker`` is replaced by a recorder, so the
exact ``create_container`` call is asserted, GPU device requests included.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from docker.types import DeviceRequest
from dockerspawner import DockerSpawner
from jupyterhub.spawner import SpawnException
from traitlets.config import Config

import docker
from subsidyhub.hubplugin import docker as docker_backend
from subsidyhub.hubplugin import gpus
from subsidyhub.hubplugin.config import update_backend
from subsidyhub.hubplugin.docker import (
    SubsidyDockerSpawner,
    container_settings,
    device_requests,
    gpu_start_failure,
    update_docker,
)
from subsidyhub.hubplugin.resources import memory_bytes
from subsidyhub.settings import parse_settings

CONFIG = {
    "backend": "docker",
    "prices": {"gpu": {"a100": 24}},
    "docker": {"gpus": ["0", "1", "2"], "network": "subsidyhub"},
    "profiles": [
        {"slug": "cpu", "display_name": "CPU", "cpu": 2, "memory_gib": 4},
        {
            "slug": "gpu-2",
            "display_name": "2 GPUs",
            "cpu": 8,
            "memory_gib": 32,
            "gpus": {"type": "a100", "count": 2},
        },
    ],
}


@pytest.fixture(autouse=True)
def fresh_pools_and_no_daemon(monkeypatch):
    monkeypatch.setattr(gpus, "_pools", {})
    # A real client that only builds host configs: the socket does not exist.
    client = docker.APIClient(base_url="unix:///nonexistent/docker.sock", version="1.43")
    monkeypatch.setattr(SubsidyDockerSpawner, "_client", client)


@pytest.mark.parametrize(
    ("slug", "gpu_ids", "requests", "visible"),
    [
        ("cpu", [], None, "void"),
        (
            "gpu-2",
            ["1", "2"],
            [DeviceRequest(device_ids=["1", "2"], capabilities=[["gpu"]])],
            "1,2",
        ),
    ],
)
def test_container_settings(slug, gpu_ids, requests, visible):
    settings = parse_settings(CONFIG, "t")
    values = container_settings(settings.profile(slug), settings, gpu_ids)
    profile = settings.profile(slug)
    assert values["mem_limit"] == int(profile.memory_gib) * 2**30
    assert values["cpu_limit"] == float(profile.cpu)
    assert values["extra_host_config"].get("device_requests") == requests
    assert values["extra_host_config"]["shm_size"] == int(profile.memory_gib) * 2**30 // 2
    assert values["environment"] == {"NVIDIA_VISIBLE_DEVICES": visible}
    assert values["image"] == "quay.io/jupyter/base-notebook:latest"


def test_device_request_never_asks_for_all_gpus():
    [request] = device_requests(["3"])
    assert request["DeviceIDs"] == ["3"] and request["Count"] == 0
    assert request["Capabilities"] == [["gpu"]]
    assert device_requests([]) == []


def test_memory_rounds_up_to_mib():
    from decimal import Decimal

    assert memory_bytes(Decimal("0.0001")) == 2**20


def make_spawner(tmp_path, name: str) -> tuple[SubsidyDockerSpawner, list]:
    path = tmp_path / "subsidyhub.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    c = Config()
    update_docker(c, parse_settings(CONFIG, "t"))
    c.SubsidyDockerSpawner.subsidy_settings_path = str(path)
    user = SimpleNamespace(name=name, id=1, url=f"/user/{name}/", escaped_name=name)
    hub = SimpleNamespace(
        url="http://hub:8081/hub/",
        api_url="http://hub:8081/hub/api",
        public_host="",
        base_url="/hub/",
    )
    spawner = SubsidyDockerSpawner(config=c, user=user, hub=hub, _deprecated_db_session=None)
    calls: list[tuple[str, tuple, dict]] = []

    async def record(method: str, *args: Any, **kwargs: Any) -> Any:
        calls.append((method, args, kwargs))
        return {"Id": "c0ffee"} if method == "create_container" else None

    spawner.docker = record  # type: ignore[method-assign]
    return spawner, calls


async def test_gpu_profile_create_arguments(tmp_path):
    spawner, calls = make_spawner(tmp_path, "alice")
    spawner.user_options = {"profile": "gpu-2", "project": "p1"}
    spawner.reserve_gpus("gpu-2")  # what the admission hook does first
    assert spawner.assigned_gpus == ["0", "1"]
    spawner.apply_profile(spawner.subsidy_settings())
    await spawner.create_object()
    [(_, _, kwargs)] = [c for c in calls if c[0] == "create_container"]
    host = kwargs["host_config"]
    assert host["DeviceRequests"] == [
        {
            "Driver": "",
            "Count": 0,
            "DeviceIDs": ["0", "1"],
            "Capabilities": [["gpu"]],
            "Options": {},
        }
    ]
    assert host["Memory"] == 32 * 2**30
    assert host["CpuQuota"] == 8 * host["CpuPeriod"]
    assert host["ShmSize"] == 16 * 2**30
    assert host["NetworkMode"] == "subsidyhub"
    assert host["Binds"] == ["subsidyhub-user-alice:/home/jovyan:rw"]
    assert kwargs["environment"]["NVIDIA_VISIBLE_DEVICES"] == "0,1"
    assert spawner.get_state()["gpus"] == ["0", "1"]


async def test_cpu_profile_gets_no_gpu(tmp_path):
    spawner, calls = make_spawner(tmp_path, "bob")
    spawner.user_options = {"profile": "cpu"}
    spawner.apply_profile(spawner.subsidy_settings())
    await spawner.create_object()
    [(_, _, kwargs)] = [c for c in calls if c[0] == "create_container"]
    assert "DeviceRequests" not in kwargs["host_config"]
    assert kwargs["environment"]["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert kwargs["host_config"]["Binds"] == ["subsidyhub-user-bob:/home/jovyan:rw"]


def test_pool_is_shared_and_exclusive(tmp_path):
    alice, _ = make_spawner(tmp_path, "alice")
    bob, _ = make_spawner(tmp_path, "bob")
    alice.reserve_gpus("gpu-2")
    with pytest.raises(SpawnException) as error:
        bob.reserve_gpus("gpu-2")
    assert "GPU 0: alice" in str(error.value)
    alice.release_gpus()
    bob.reserve_gpus("gpu-2")
    assert bob.assigned_gpus == ["0", "1"]


def test_update_backend_selects_docker():
    c = Config()
    update_backend(c, parse_settings(CONFIG, "t"))
    assert c.JupyterHub.spawner_class == "subsidyhub.hubplugin.docker.SubsidyDockerSpawner"
    assert c.SubsidyDockerSpawner.gpu_ids == ["0", "1", "2"]
    assert c.SubsidyDockerSpawner.profile_gpu_counts == {"gpu-2": 2}


def test_host_network_keeps_everything_on_loopback():
    c = Config()
    update_backend(c, parse_settings(CONFIG | {"docker": {"network": "host"}}, "t"))
    assert c.SubsidyDockerSpawner.network_name == "host"
    assert c.SubsidyDockerSpawner.use_internal_ip is True  # no port bindings on the host network
    assert c.SubsidyDockerSpawner.ip == "127.0.0.1"
    assert "hub_ip" not in c.JupyterHub  # the hub stays on localhost too


async def test_host_network_server_gets_a_free_port_on_loopback(tmp_path, monkeypatch):
    spawner, _ = make_spawner(tmp_path, "carol")
    spawner.network_name = "host"
    spawner.use_internal_ip = True
    monkeypatch.setattr(docker_backend, "random_port", lambda: 40123)

    async def started(self: Any) -> tuple[str, int]:
        return await self.get_ip_and_port()

    monkeypatch.setattr(DockerSpawner, "start", started)
    spawner.user_options = {"profile": "cpu"}
    assert await spawner.start() == ("127.0.0.1", 40123)


def test_gpu_start_failure_says_what_to_do():
    error = docker.errors.APIError(
        "500 Server Error", explanation='could not select device driver "" with capabilities'
    )
    message = gpu_start_failure(["2", "3"], error)
    assert message.startswith("This profile needs 2 GPU(s) (host GPU ids 2, 3), but Docker")
    assert 'could not select device driver "" with capabilities' in message
    assert "NVIDIA Container Toolkit" in message and "choose a CPU profile" in message
