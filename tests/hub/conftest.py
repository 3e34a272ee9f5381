"""Hub-layer fixtures: one real ``subsidyhub up`` stack shared by the tests of this folder.

The stack is what ``subsidyhub up`` runs (see :mod:`tests.hub.helpers`), on a test config with
a one-second metering interval and a declared pool of one GPU, ``local.gpus: ["0"]``. No GPU
exists on the test machines: the pool's ids are only handed out exclusively by
``LocalGPUSpawner`` and reach a server as ``CUDA_VISIBLE_DEVICES``, which the tests read from
the server process's environment. Each user fixture stops the user's server at the end of the
test, so tests do not depend on each other's order.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from .helpers import HubStack, HubUser

HUB_CONFIG: dict[str, Any] = {
    "currency": "HKD",
    "subsidy_rate": 0.70,
    "metering": {"interval_seconds": 1, "min_start_minutes": 15},
    "prices": {"cpu_core": 0.50, "memory_gib": 0.10, "gpu": {"h800": 36.00}},
    "profiles": [
        {"slug": "cpu-small", "display_name": "CPU · 2 cores · 4 GiB", "cpu": 2, "memory_gib": 4},
        {
            "slug": "gpu-1",
            "display_name": "PyTorch · 1× H800",
            "cpu": 8,
            "memory_gib": 64,
            "gpus": {"type": "h800", "count": 1},
        },
    ],
    "local": {"gpus": ["0"]},
}


def hub_config() -> dict[str, Any]:
    return copy.deepcopy(HUB_CONFIG)


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubStack]:
    stack = HubStack(tmp_path_factory.mktemp("hub"), hub_config())
    try:
        yield stack.start()
    finally:
        stack.close()


def _user(stack: HubStack, name: str) -> Iterator[HubUser]:
    user = HubUser(stack, name)
    try:
        yield user
    finally:
        try:
            if stack.hub_running:
                user.stop_server()
        finally:
            user.close()


@pytest.fixture
def alice(hub: HubStack) -> Iterator[HubUser]:
    yield from _user(hub, "alice")


@pytest.fixture
def bob(hub: HubStack) -> Iterator[HubUser]:
    yield from _user(hub, "bob")
