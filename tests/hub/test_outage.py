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

import os
import signal
import time
from collections.abc import Iterator

import pytest

from subsidyhub.hubplugin.hooks import UNAVAILABLE
from subsidyhub.ledger.accounts import verify
from subsidyhub.ledger.db import Database, now_ms
from tests.hub.helpers import HubStack, HubUser, poll
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


def test_a_stop_while_the_service_is_frozen_is_charged_to_the_real_stop(
    stack: HubStack, ledger: Database
) -> None:
    alice, server = running_server(stack, "alice")
    service = stack.service_process()
    os.kill(service[0], signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        asked, gone = stop_and_time(alice, server)
        poll(lambda: alice.server() is None, timeout=30, what="the hub done with the stop")
        notice = kept_notice(stack, "alice")
        assert asked <= int(notice["stopped_ms"]) <= now_ms()
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - frozen)))
        [row] = sessions_of(ledger, "alice")
        assert row.stopped_ms is None  # the service heard nothing while frozen
    finally:
        os.kill(service[0], signal.SIGCONT)
        alice.close()

    poll(lambda: delivered(ledger, "alice"), timeout=30, what="the kept stop delivered")
    assert abs(int(notice["stopped_ms"]) - gone) <= 1000
    assert_charged_to(ledger, "alice", int(notice["stopped_ms"]))
    poll(lambda: not list(stack.outbox.glob("*.json")), timeout=10, what="the outbox emptied")


def test_a_spawn_the_hub_gave_up_on_is_not_admitted_when_the_service_wakes(
    stack: HubStack, ledger: Database
) -> None:
    carol = HubUser(stack, "carol")
    service = stack.service_process()
    os.kill(service[0], signal.SIGSTOP)
    try:
        response = carol.start_server("cpu-small")
        message = (
            response.json()["message"] if response.status_code >= 400 else carol.spawn_failure()
        )
        assert message == UNAVAILABLE
        assert carol.server() is None
    finally:
        os.kill(service[0], signal.SIGCONT)
        carol.close()
    # The admission the hub sent before giving up reaches the service only now.
    poll(
        lambda: "Admission of carol/ refused: the hub stopped waiting" in stack.log_tail(200),
        timeout=20,
        what="the service refusing the late admission",
    )
    assert sessions_of(ledger, "carol") == []
    with ledger.read() as session:
        assert verify(session) == []
