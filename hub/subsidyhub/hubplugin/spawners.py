"""LocalGPUSpawner: single-user servers as local processes with exclusive GPUs.

The embedded default (``subsidyhub up``) runs each server as a process of the hub's user,
with a per-user home under the data directory, like JupyterHub's SimpleLocalProcessSpawner.
On top it assigns GPUs from the host's pool (NVML or ``local.gpus``): ``CUDA_VISIBLE_DEVICES``
names exactly the server's GPUs (empty for CPU profiles, so they see none), the assignment
is saved in the spawner's state so a hub restart does not hand a busy GPU out again, and a
spawn that finds too few free GPUs fails with a message saying who holds them. A stopping
server is watched every :data:`DEATH_POLL_S`, not with JupyterHub's back-off to seconds:
the instant the hub sees it end is the stop the ledger charges to.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Dict, HasTraits, Integer, List, Unicode, default

from subsidyhub.hubplugin.gpus import GpuPool, PoolExhausted, discover_gpus, shared_pool
from subsidyhub.hubplugin.spawn_exception import SpawnException

DEATH_POLL_S = 0.05


class ExclusiveGpus(HasTraits):
    """GPUs from the host pool, held by one server: shared by the local and Docker spawners.

    The admission hook calls :meth:`reserve_gpus` before asking the service and
    :meth:`release_gpus` if it refuses; ``start`` assigns (idempotently) and ``stop`` releases.
    The GPUs are kept in the spawner state and restored into the pool when the hub restarts
    while the server still runs (:meth:`server_still_running`).
    """

    gpu_ids = List(
        Unicode(),
        help="""GPU ids this host hands out, e.g. ["0", "1"]. Default: every GPU NVML finds
        (none on a machine without an NVIDIA driver). Set from ``local.gpus`` or
        ``docker.gpus`` in subsidyhub.yaml.""",
    ).tag(config=True)

    profile_gpu_counts = Dict(
        key_trait=Unicode(),
        value_trait=Integer(),
        help="""GPUs each profile needs, by profile slug, e.g. {"gpu-1": 1}. The hub plugin fills
        it from the profiles in subsidyhub.yaml; profiles not listed need none.""",
    ).tag(config=True)

    assigned_gpus = List(Unicode(), help="GPUs this server holds (saved in the spawner state).")

    @default("gpu_ids")
    def _discover(self) -> list[str]:
        return discover_gpus()

    @property
    def pool(self) -> GpuPool:
        return shared_pool(self.gpu_ids)

    @property
    def owner(self) -> str:
        return f"{self.user.name}/{self.name}"  # type: ignore[attr-defined]

    def server_still_running(self) -> bool:
        """Whether saved state points at a live server (a pid, a container id)."""
        raise NotImplementedError

    def assign_gpus(self, profile: str) -> list[str]:
        """Take the profile's GPUs (idempotent for this server); refuse naming the holders."""
        needed = self.profile_gpu_counts.get(profile, 0)
        try:
            self.assigned_gpus = self.pool.assign(self.owner, needed) if needed else []
        except PoolExhausted as error:
            raise SpawnException(str(error), reason="gpus_exhausted", status_code=503) from None
        return list(self.assigned_gpus)

    def reserve_gpus(self, profile: str) -> None:
        """Take the profile's GPUs before admission, so two racing spawns cannot both pass."""
        self.assign_gpus(profile)

    def release_gpus(self) -> None:
        self.pool.release(self.owner)
        self.assigned_gpus = []

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)  # type: ignore[misc]
        self.assigned_gpus = list(state.get("gpus", []))
        if self.assigned_gpus and self.server_still_running():
            self.pool.restore(self.owner, self.assigned_gpus)

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = super().get_state()  # type: ignore[misc]
        if self.assigned_gpus:
            state["gpus"] = list(self.assigned_gpus)
        return state

    def clear_state(self) -> None:
        super().clear_state()  # type: ignore[misc]
        self.assigned_gpus = []


class LocalGPUSpawner(ExclusiveGpus, SimpleLocalProcessSpawner):
    def server_still_running(self) -> bool:
        return bool(self.pid)

    def get_args(self) -> list[str]:
        args = super().get_args()
        # jupyter-server refuses root unless told; only a root hub needs it.
        if os.geteuid() == 0 and "--allow-root" not in args:
            args.append("--allow-root")
        return args

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        env["CUDA_VISIBLE_DEVICES"] = ",".join(self.assigned_gpus)
        return env

    async def start(self) -> Any:
        self.assign_gpus(self.user_options.get("profile", ""))
        try:
            return await super().start()
        except BaseException:
            self.release_gpus()
            raise

    async def stop(self, now: bool = False) -> None:
        await super().stop(now=now)
        self.release_gpus()

    async def wait_for_death(self, timeout: float = 10) -> bool:  # noqa: ASYNC109 (JupyterHub's)
        """Whether the process ended within ``timeout`` seconds, looked at every 50 ms."""
        try:
            async with asyncio.timeout(timeout):
                while await self.poll() is None:  # noqa: ASYNC110 (no event for a pid's end)
                    await asyncio.sleep(DEATH_POLL_S)
        except TimeoutError:
            return False
        return True
