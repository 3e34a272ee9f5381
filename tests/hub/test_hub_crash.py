"""A hub that dies without stopping anything takes its subsidy service with it.

Real components: the ``subsidyhub up`` stack (JupyterHub 6, npm configurable-http-proxy, the
subsidy service as a managed service). The hub is killed with SIGKILL, so it stops nothing it
started; the service, given the hub's pid by the hub plugin, must end by itself within a few
seconds, through its clean shutdown. ``subsidyhub up`` started again on the same data directory
then runs exactly one service, and that one leads metering (it holds the ledger's leader lock).
Before this, the orphan lived on and two services metered one ledger.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from .conftest import hub_config
from .helpers import HubStack, ProcessRef, is_alive, poll

pytestmark = [pytest.mark.hub, pytest.mark.slow]


def the_service(stack: HubStack) -> ProcessRef:
    services = poll(
        lambda: stack.service_processes() or None, timeout=30, what="the subsidy service running"
    )
    assert len(services) == 1, f"{len(services)} services on one ledger: {services}"
    return services.pop()


def wait_until_leading(stack: HubStack, service: ProcessRef) -> None:
    """The ledger's leader lock file names ``service`` (service/leader.py)."""
    lock = stack.data_dir / "subsidyhub.sqlite.leader"

    def leads() -> bool:
        try:
            return lock.read_text() == f"{service[0]}\n"
        except FileNotFoundError:
            return False

    poll(leads, timeout=10, what=f"service {service[0]} leading metering")


def test_a_killed_hub_takes_its_service_with_it(tmp_path: Path) -> None:
    stack = HubStack(tmp_path, hub_config())
    try:
        stack.start()
        first = the_service(stack)
        wait_until_leading(stack, first)

        stack.kill_hub()
        killed = time.monotonic()
        poll(lambda: not is_alive(first), timeout=10, what="the service ending with its hub")
        assert time.monotonic() - killed < 5
        # Its clean shutdown ran (uvicorn's last line, after the app's lifespan stopped the
        # enforcer), not a kill.
        assert f"Finished server process [{first[0]}]" in stack.log_tail(400), stack.log_tail()

        stack.start()
        second = the_service(stack)
        assert second != first
        wait_until_leading(stack, second)
    finally:
        stack.close()
