"""Service outages: the hub's stop time is what the ledger charges, and a spawn the hub gave up
on leaves nothing to pay.

Real components: the ``subsidyhub up`` stack (JupyterHub, npm configurable-http-proxy, the
subsidy service as a managed service with its enforcer ticking every second and reconciling
every two, ``LocalGPUSpawner`` running real JupyterLab servers), with the hub waiting at most
3 s for the service (:mod:`tests.hub.outage`). The outage is real: the managed service
process, found in the hub's process tree, is frozen with SIGSTOP and woken with SIGCONT. While
it is away a server stops: the hub keeps the notice in its outbox on disk
(``subsidy-stop-outbox`` beside ``jupyterhub.sqlite``) and delivers it when the service answers
again, after the service's tick has charged every session up to the time it woke; the ledger
must end up charging exactly the server's real life, to the observed stop within a second,
with its caches and entries in step. The same across a hub restart is in
``test_outage_restart.py``.
"""

from __future__ import annotations

import signal
import time

import pytest

from subsidyhub.hubplugin.hooks import UNAVAILABLE
from subsidyhub.ledger.accounts import verify
from subsidyhub.ledger.db import Database, now_ms
from tests.hub.helpers import HubStack, HubUser, poll
from tests.hub.outage import (
    OUTAGE_S,
    assert_delivered_to_the_real_stop,
    running_server,
    service_frozen,
    sessions_of,
    stop_kept,
)

pytestmark = [pytest.mark.hub, pytest.mark.slow]


def test_a_stop_while_the_service_is_frozen_is_charged_to_the_real_stop(
    outage_stack: HubStack, outage_ledger: Database
) -> None:
    alice, server = running_server(outage_stack, "alice")
    try:
        with service_frozen(outage_stack, then=signal.SIGCONT) as frozen:
            kept = stop_kept(outage_stack, alice, server)
            assert kept.asked_ms <= int(kept.notice["stopped_ms"]) <= now_ms()
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - frozen)))
            [row] = sessions_of(outage_ledger, "alice")
            assert row.stopped_ms is None  # the service heard nothing while frozen
    finally:
        alice.close()
    assert_delivered_to_the_real_stop(outage_stack, outage_ledger, kept)


def test_a_spawn_the_hub_gave_up_on_is_not_admitted_when_the_service_wakes(
    outage_stack: HubStack, outage_ledger: Database
) -> None:
    carol = HubUser(outage_stack, "carol")
    try:
        with service_frozen(outage_stack, then=signal.SIGCONT):
            response = carol.start_server("cpu-small")
            message = (
                response.json()["message"] if response.status_code >= 400 else carol.spawn_failure()
            )
            assert message == UNAVAILABLE
            assert carol.server() is None
    finally:
        carol.close()
    # The admission the hub sent before giving up reaches the service only now.
    poll(
        lambda: (
            "Admission of carol/ refused: the hub stopped waiting" in outage_stack.log_tail(200)
        ),
        timeout=20,
        what="the service refusing the late admission",
    )
    assert sessions_of(outage_ledger, "carol") == []
    with outage_ledger.read() as session:
        assert verify(session) == []
