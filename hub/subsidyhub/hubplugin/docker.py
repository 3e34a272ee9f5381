"""Profiles → Docker containers on one GPU host (``backend: docker``).

Why: a department with one 8-GPU box wants containers (an image per profile, isolation,
limits) without running Kubernetes. A container must get exactly the GPUs the hub assigned it
from the host pool — the same :func:`~subsidyhub.hubplugin.gpus.shared_pool` the local
spawner uses, so a restart or a racing spawn never hands a busy GPU out twice — passed as one
``DeviceRequest(device_ids=[...], capabilities=[["gpu"]])``; never ``count=-1`` (all GPUs).
CPU profiles get no device request at all, and ``NVIDIA_VISIBLE_DEVICES=void`` so CUDA images
on a host whose default runtime is NVIDIA's still see none. When Docker cannot give the GPUs
(no NVIDIA Container Toolkit, a driver problem), the spawn fails with a message that says so
and what to do, instead of Docker's ``could not select device driver``.

``docker.network: host`` runs containers in the host's network namespace, for hosts without a
Docker bridge: each server then listens on its own free port on 127.0.0.1, and the hub stays
on localhost too.

:func:`container_settings` is pure (table-tested); :class:`SubsidyDockerSpawner` applies it
when a server starts, after the admission hook reserved the GPUs (``reserve_gpus``).
"""

from __future__ import annotations

from typing import Any

from docker.errors import APIError
from docker.types import DeviceRequest
from dockerspawner import DockerSpawner
from jupyterhub.utils import random_port
from traitlets import Unicode

from subsidyhub.hubplugin.resources import memory_bytes
from subsidyhub.hubplugin.spawn_exception import SpawnException
from subsidyhub.hubplugin.spawners import ExclusiveGpus
from subsidyhub.settings import Docker, Profile, Settings


def device_requests(gpu_ids: list[str]) -> list[DeviceRequest]:
    """One GPU device request naming exactly ``gpu_ids`` (``docker run --gpus '"device=…"'``)."""
    if not gpu_ids:
        return []
    return [DeviceRequest(device_ids=list(gpu_ids), capabilities=[["gpu"]])]


HOST_NETWORK = "host"


def gpu_start_failure(gpu_ids: list[str], error: APIError) -> str:
    """What a person is told when Docker refuses the GPU device request."""
    detail = " ".join(str(error.explanation or error).split())
    return (
        f"This profile needs {len(gpu_ids)} GPU(s) (host GPU ids {', '.join(gpu_ids)}), but "
        f"Docker on this host could not provide them: {detail}. An admin must install the "
        "NVIDIA Container Toolkit and configure Docker for it (nvidia-ctk runtime configure "
        "--runtime=docker); until then, choose a CPU profile."
    )


def container_settings(profile: Profile, settings: Settings, gpu_ids: list[str]) -> dict[str, Any]:
    """DockerSpawner values for a profile and the GPUs assigned to this server (pure)."""
    docker: Docker = settings.docker
    host_config: dict[str, Any] = {}
    requests = device_requests(gpu_ids)
    if requests:
        host_config["device_requests"] = requests
    if docker.shm_fraction:
        host_config["shm_size"] = memory_bytes(profile.memory_gib * docker.shm_fraction)
    environment = {"NVIDIA_VISIBLE_DEVICES": ",".join(gpu_ids) if gpu_ids else "void"}
    return {
        "image": settings.profile_image(profile) or docker.image,
        "mem_limit": memory_bytes(profile.memory_gib),
        "cpu_limit": float(profile.cpu),
        "extra_host_config": host_config,
        "environment": environment,
    }


class SubsidyDockerSpawner(ExclusiveGpus, DockerSpawner):
    """DockerSpawner with SubsidyHub profiles and exclusive GPUs from the host pool."""

    subsidy_settings_path = Unicode(
        "",
        help="subsidyhub.yaml to read profiles from; empty: the config in force (SUBSIDYHUB_CONFIG).",
    ).tag(config=True)

    def server_still_running(self) -> bool:
        return bool(self.container_id)

    def profile_slug(self) -> str:
        return str(self.user_options.get("profile", ""))

    def subsidy_settings(self) -> Settings:
        from subsidyhub.settings import load_settings

        return load_settings(self.subsidy_settings_path or None)

    def apply_profile(self, settings: Settings) -> None:
        """Assign the profile's GPUs (idempotent) and set image, limits and device requests."""
        profile = settings.profile(self.profile_slug()) if self.profile_slug() else None
        if profile is None:
            if not settings.profiles:
                return
            profile = settings.profiles[0]
        values = container_settings(profile, settings, self.assign_gpus(profile.slug))
        self.image = values["image"]
        self.mem_limit = values["mem_limit"]
        self.cpu_limit = values["cpu_limit"]
        self.extra_host_config = {**self.extra_host_config, **values["extra_host_config"]}
        self.environment = {**self.environment, **values["environment"]}

    async def start(self) -> Any:
        self.apply_profile(self.subsidy_settings())
        gpu_ids = list(self.assigned_gpus)
        if self.network_name == HOST_NETWORK:
            self.port = random_port()
        try:
            return await super().start()
        except APIError as error:
            self.release_gpus()
            if gpu_ids:
                raise SpawnException(
                    gpu_start_failure(gpu_ids, error), reason="gpus_unavailable", status_code=503
                ) from None
            raise
        except BaseException:
            self.release_gpus()
            raise

    async def get_ip_and_port(self) -> tuple[str, int]:
        if self.network_name == HOST_NETWORK:
            return "127.0.0.1", self.port
        ip, port = await super().get_ip_and_port()
        return str(ip), int(port)

    async def stop(self, now: bool = False) -> None:
        await super().stop(now=now)
        self.release_gpus()


def update_docker(c: Any, settings: Settings) -> None:
    """Select SubsidyDockerSpawner and set host-wide Docker settings (only sets)."""
    c.JupyterHub.spawner_class = "subsidyhub.hubplugin.docker.SubsidyDockerSpawner"
    c.SubsidyDockerSpawner.image = settings.docker.image
    c.SubsidyDockerSpawner.profile_gpu_counts = {
        p.slug: p.gpu_count for p in settings.profiles if p.gpu_count
    }
    if settings.docker.gpus is not None:
        c.SubsidyDockerSpawner.gpu_ids = list(settings.docker.gpus)
    c.SubsidyDockerSpawner.volumes = {settings.docker.volume_template: settings.docker.home_path}
    c.SubsidyDockerSpawner.remove = True
    # The single-user server the hub talks to, whatever the image's own CMD is.
    c.SubsidyDockerSpawner.cmd = ["jupyterhub-singleuser"]
    if settings.docker.network == HOST_NETWORK:
        # Hub, proxy and servers share the host's loopback: nothing listens more widely.
        c.SubsidyDockerSpawner.network_name = HOST_NETWORK
        c.SubsidyDockerSpawner.use_internal_ip = True  # no port bindings on the host network
        c.SubsidyDockerSpawner.ip = "127.0.0.1"
        return
    if settings.docker.network:
        c.SubsidyDockerSpawner.network_name = settings.docker.network
        c.SubsidyDockerSpawner.use_internal_ip = True
    # Containers must reach the hub: it listens on every interface, not only localhost.
    c.JupyterHub.hub_ip = "0.0.0.0"
