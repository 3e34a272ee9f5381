"""Hub-layer fixtures: real ``subsidyhub up`` stacks shared by the tests of this folder.

The stack is what ``subsidyhub up`` runs (see :mod:`tests.hub.helpers`), on a test config with
a one-second metering interval and a declared pool of one GPU, ``local.gpus: ["0"]``. No GPU
exists on the test machines: the pool's ids are only handed out exclusively by
``LocalGPUSpawner`` and reach a server as ``CUDA_VISIBLE_DEVICES``, which the tests read from
the server process's environment. Each user fixture stops the user's server at the end of the
test, so tests do not depend on each other's order.

``hub`` is the stack on this venv's JupyterHub 6. The modules that prove the hub-side contract
(admission hooks, spawn form, roles and scopes) mark themselves :data:`ON_BOTH_MAJORS`: their
tests then run once on JupyterHub 6 and once on the JupyterHub 5.5 of z2jh 4.4's hub image
(``.venv/k8s-hub``, see :mod:`tests.upstream`; skipped with the reason when it is not
configured). One stack per major serves the whole session, and every test checks the version
that actually answers, so a fixture that started the wrong hub cannot pass. The modules on these
stacks live in ``tests/hub/shared/``, which ``make test`` runs on one worker, so each stack
starts once per run.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from subsidyhub.ledger.db import Database
from tests.upstream import k8s_hub_python

from .helpers import HubStack, HubUser, signed_in

HUB_CONFIG: dict[str, Any] = {
    "currency": "HKD",
    "subsidy_rate": 0.70,
    # An admin's stop waits 3 s for its user (not 20): tests see the grace, not wait it out.
    "metering": {"interval_seconds": 1, "min_start_minutes": 15, "admin_stop_grace_seconds": 3},
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


@dataclass(frozen=True)
class HubMajor:
    """A JupyterHub release line the plugin supports, and the session fixture of its stack."""

    name: str
    version_prefix: str
    stack_fixture: str


JUPYTERHUB6 = HubMajor("jupyterhub6", "6.", "jupyterhub6_stack")
JUPYTERHUB55 = HubMajor("jupyterhub5.5", "5.5.", "jupyterhub55_stack")
ON_BOTH_MAJORS = pytest.mark.parametrize(
    "hub", [pytest.param(m, id=m.name) for m in (JUPYTERHUB6, JUPYTERHUB55)], indirect=True
)


def _stack(tmp_path_factory: pytest.TempPathFactory, name: str, python: str) -> Iterator[HubStack]:
    stack = HubStack(tmp_path_factory.mktemp(name), hub_config(), python=python)
    try:
        yield stack.start()
    finally:
        stack.close()


@pytest.fixture(scope="session")
def jupyterhub6_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubStack]:
    """This venv's JupyterHub (6.x)."""
    yield from _stack(tmp_path_factory, JUPYTERHUB6.name, sys.executable)


@pytest.fixture(scope="session")
def jupyterhub55_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubStack]:
    """z2jh 4.4's hub environment: the hub, its service and the servers on its pins."""
    yield from _stack(tmp_path_factory, JUPYTERHUB55.name, str(k8s_hub_python()))


@pytest.fixture
def hub(request: pytest.FixtureRequest) -> HubStack:
    """The session's stack on JupyterHub 6, or on the major :data:`ON_BOTH_MAJORS` passes."""
    major: HubMajor = getattr(request, "param", JUPYTERHUB6)
    stack: HubStack = request.getfixturevalue(major.stack_fixture)
    running = stack.jupyterhub_version()
    assert running.startswith(major.version_prefix), (
        f"{major.name} was asked for, but JupyterHub {running} answers at {stack.url}"
    )
    return stack


@pytest.fixture
def alice(hub: HubStack) -> Iterator[HubUser]:
    yield from signed_in(hub, "alice")


@pytest.fixture
def bob(hub: HubStack) -> Iterator[HubUser]:
    yield from signed_in(hub, "bob")


@pytest.fixture(scope="module")
def outage_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubStack]:
    """The stack of each outage module (tests/hub/outage.py): the hub waits 3 s for the service."""
    config = hub_config() | {
        "metering": {"interval_seconds": 1, "min_start_minutes": 15, "reconcile_seconds": 2},
        "hub": {"service_timeout_seconds": 3},
    }
    hub = HubStack(tmp_path_factory.mktemp("outage"), config).start()
    try:
        hub.admin("member", "add", "demo", "carol")
        yield hub
    finally:
        hub.close()


@pytest.fixture(scope="module")
def outage_ledger(outage_stack: HubStack) -> Iterator[Database]:
    db = outage_stack.ledger()
    yield db
    db.dispose()


@pytest.fixture(scope="module")
def ledger(stack: HubStack) -> Iterator[Database]:
    """The module's stack's own ledger, read directly to see what the stack wrote."""
    db = stack.ledger()
    yield db
    db.dispose()
