"""Exclusive GPUs on one host: discovery (NVML or config) and the assignment pool.

A GPU belongs to at most one server at a time. The pool lives in the hub process and is the
one source of truth for the local and Docker spawners; each spawner also keeps its GPUs in
its JupyterHub state, and :meth:`GpuPool.restore` puts them back into the pool when the hub
restarts, so a restart never hands a busy GPU to a second server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

log = logging.getLogger(__name__)


class PoolExhausted(Exception):
    """Not enough free GPUs; the message says who holds them and what to do."""


def discover_gpus() -> list[str]:
    """GPU indices from NVML ("0", "1", …); empty on a machine without an NVIDIA driver."""
    try:
        import pynvml
    except ImportError:  # pragma: no cover - nvidia-ml-py is a dependency
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        log.info(
            "No NVIDIA GPUs found (NVML: %s); GPU profiles need local.gpus (or docker.gpus) "
            "in subsidyhub.yaml",
            error,
        )
        return []
    try:
        return [str(index) for index in range(pynvml.nvmlDeviceGetCount())]
    finally:
        pynvml.nvmlShutdown()


class GpuPool:
    """Hands out GPU ids exclusively to owners ("user/server")."""

    def __init__(self, gpus: Sequence[str]) -> None:
        self.gpus = list(dict.fromkeys(gpus))
        self._owner_of: dict[str, str] = {}
        self._lock = threading.Lock()

    def free(self) -> list[str]:
        with self._lock:
            return [g for g in self.gpus if g not in self._owner_of]

    def holders(self) -> dict[str, str]:
        with self._lock:
            return dict(self._owner_of)

    def assign(self, owner: str, count: int) -> list[str]:
        """Take ``count`` free GPUs for ``owner`` (idempotent for an owner that already has them)."""
        with self._lock:
            held = [g for g, o in self._owner_of.items() if o == owner]
            if len(held) >= count:
                return held[:count]
            free = [g for g in self.gpus if g not in self._owner_of]
            needed = count - len(held)
            if len(free) < needed:
                raise PoolExhausted(self._shortfall(count, needed, free)[1])
            for gpu in free[:needed]:
                self._owner_of[gpu] = owner
            return held + free[:needed]

    def shortfall(self, owner: str, count: int, kind: str = "") -> tuple[str, str] | None:
        """Why ``owner`` could not take ``count`` GPUs now, as (reason, message), or ``None`` if it
        could: what the spawn page says on a GPU profile before anyone tries. ``kind`` names the
        GPUs in the message ("H800"); the pool itself does not know their type."""
        with self._lock:
            held = [g for g, o in self._owner_of.items() if o == owner]
            free = [g for g in self.gpus if g not in self._owner_of]
            needed = count - len(held)
            if needed <= len(free):
                return None
            return self._shortfall(count, needed, free, kind)

    def _shortfall(
        self, count: int, needed: int, free: list[str], kind: str = ""
    ) -> tuple[str, str]:
        """Reason and message for the person who asked: what this machine has and what to do.
        Configuration keys are for the admins' log, not for them."""
        gpus = f"{kind} GPUs" if kind else "GPUs"
        if not self.gpus:
            log.warning(
                "A profile needs %d GPU(s) and this host hands out none: set local.gpus (or "
                "docker.gpus) in subsidyhub.yaml, or install the NVIDIA driver",
                count,
            )
            return (
                "no_gpus_on_host",
                f"This machine has no {gpus}, and this profile needs {count}. Pick a CPU "
                f"profile, or ask the centre's admins where {gpus} are available.",
            )
        if len(self.gpus) < count:
            return (
                "too_few_gpus_on_host",
                f"This machine has {len(self.gpus)} {gpus}, and this profile needs {count}. "
                "Pick a profile with fewer GPUs, or ask the centre's admins.",
            )
        busy = ", ".join(f"GPU {g}: {o.split('/')[0]}" for g, o in sorted(self._owner_of.items()))
        return (
            "gpus_busy",
            f"All {gpus} of this machine are in use: {len(free)} of {len(self.gpus)} free, "
            f"{needed} more needed ({busy}). Try again when a server stops, or pick a CPU profile.",
        )

    def release(self, owner: str) -> list[str]:
        with self._lock:
            released = [g for g, o in self._owner_of.items() if o == owner]
            for gpu in released:
                del self._owner_of[gpu]
            return released

    def restore(self, owner: str, gpus: Sequence[str]) -> None:
        """Record GPUs an owner already holds (from saved spawner state after a restart)."""
        with self._lock:
            for gpu in gpus:
                current = self._owner_of.get(gpu)
                if current not in (None, owner):
                    log.error(
                        "GPU %s claimed by %s and %s after restart; keeping %s",
                        gpu,
                        current,
                        owner,
                        current,
                    )
                    continue
                if gpu not in self.gpus:
                    log.warning("GPU %s held by %s is not in the configured pool", gpu, owner)
                    continue
                self._owner_of[gpu] = owner


_pools: dict[tuple[str, ...], GpuPool] = {}
_pools_lock = threading.Lock()


def shared_pool(gpus: Sequence[str]) -> GpuPool:
    """The process-wide pool for this set of GPUs: every spawner of a hub shares one."""
    key = tuple(gpus)
    with _pools_lock:
        if key not in _pools:
            _pools[key] = GpuPool(gpus)
        return _pools[key]
