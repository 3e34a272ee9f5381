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
            "No NVIDIA GPUs found (NVML: %s); GPU profiles need local.gpus in the config", error
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
                raise PoolExhausted(self._exhausted_message(count, needed, free))
            for gpu in free[:needed]:
                self._owner_of[gpu] = owner
            return held + free[:needed]

    def _exhausted_message(self, count: int, needed: int, free: list[str]) -> str:
        if not self.gpus:
            return (
                f"This machine has no GPUs to hand out, and the profile needs {count}. "
                "Pick a CPU profile, or ask the admins to set local.gpus in subsidyhub.yaml."
            )
        busy = ", ".join(f"GPU {g}: {o.split('/')[0]}" for g, o in sorted(self._owner_of.items()))
        return (
            f"All GPUs of this machine are in use: {len(free)} of {len(self.gpus)} free, "
            f"{needed} more needed ({busy}). Try again when a server stops, or pick a CPU profile."
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
