"""A stop kept while the service is down reaches it across a restart of the hub.

Real components as in ``test_outage.py`` (:mod:`tests.hub.outage`): the service is killed
with SIGKILL and the hub restarted at once, which restarts the service; only the outbox on
disk can carry the stop across. A file of its own so that its 30 s outage runs beside the
other file's.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from subsidyhub.ledger.db import Database
from tests.hub.helpers import HubStack, poll
from tests.hub.outage import (
    OUTAGE_S,
    assert_charged_to,
    delivered,
    kept_notice,
    outage_stack,
    running_server,
    sessions_of,
    stack_ledger,
    stop_and_time,
)

pytestmark = [pytest.mark.hub, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubStack]:
    yield from outage_stack(tmp_path_factory)


@pytest.fixture(scope="module")
def ledger(stack: HubStack) -> Iterator[Database]:
    yield from stack_ledger(stack)


def test_a_stop_kept_while_the_service_is_down_is_delivered_after_a_hub_restart(
    stack: HubStack, ledger: Database
) -> None:
    bob, server = running_server(stack, "bob")
    service = stack.service_process()
    os.kill(service[0], signal.SIGSTOP)
    down = time.monotonic()
    try:
        _asked, gone = stop_and_time(bob, server)
        poll(lambda: bob.server() is None, timeout=30, what="the hub done with the stop")
        notice = kept_notice(stack, "bob")
    finally:
        # Killed, then the hub restarted at once (before its own poll restarts the service):
        # only the outbox on disk can carry the stop across.
        os.kill(service[0], signal.SIGKILL)
        bob.close()
    assert stack.stop_hub() == 0, stack.log_tail()
    assert kept_notice(stack, "bob") == notice
    assert sessions_of(ledger, "bob")[0].stopped_ms is None
    time.sleep(max(0.0, OUTAGE_S - 10 - (time.monotonic() - down)))
    stack.start()

    poll(lambda: delivered(ledger, "bob"), timeout=30, what="the kept stop delivered")
    assert abs(int(notice["stopped_ms"]) - gone) <= 1000
    assert_charged_to(ledger, "bob", int(notice["stopped_ms"]))
    poll(lambda: not list(stack.outbox.glob("*.json")), timeout=10, what="the outbox emptied")
