"""A stop kept while the service is down reaches it across a restart of the hub.

Real components as in ``test_outage.py`` (:mod:`tests.hub.outage`): the service is killed
with SIGKILL and the hub restarted at once (before its own poll restarts the service), so only
the outbox on disk can carry the stop across. A file of its own so that its 30 s outage runs
beside the other file's.
"""

from __future__ import annotations

import signal
import time

import pytest

from subsidyhub.ledger.db import Database
from tests.hub.helpers import HubStack
from tests.hub.outage import (
    OUTAGE_S,
    assert_delivered_to_the_real_stop,
    kept_notice,
    running_server,
    service_frozen,
    sessions_of,
    stop_kept,
)

pytestmark = [pytest.mark.hub, pytest.mark.slow]


def test_a_stop_kept_while_the_service_is_down_is_delivered_after_a_hub_restart(
    outage_stack: HubStack, outage_ledger: Database
) -> None:
    bob, server = running_server(outage_stack, "bob")
    try:
        with service_frozen(outage_stack, then=signal.SIGKILL) as down:
            kept = stop_kept(outage_stack, bob, server)
    finally:
        bob.close()
    assert outage_stack.stop_hub() == 0, outage_stack.log_tail()
    assert kept_notice(outage_stack, "bob") == kept.notice
    assert sessions_of(outage_ledger, "bob")[0].stopped_ms is None
    time.sleep(max(0.0, OUTAGE_S - 10 - (time.monotonic() - down)))
    outage_stack.start()
    assert_delivered_to_the_real_stop(outage_stack, outage_ledger, kept)
