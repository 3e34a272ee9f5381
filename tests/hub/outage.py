"""The outage tests' checks (tests/hub/test_outage*.py: two files, so that their 30 s outages
run on two workers at once; their stack is ``outage_stack`` in tests/hub/conftest.py).

Real components: the ``subsidyhub up`` stack (JupyterHub, npm configurable-http-proxy, the
subsidy service as a managed service with its enforcer ticking every second and reconciling
every two, ``LocalGPUSpawner`` running real JupyterLab servers), with the hub waiting at most
3 s for the service. The outage is real: the managed service process, found in the hub's
process tree, is frozen with SIGSTOP and woken with SIGCONT, or killed with SIGKILL and the
hub restarted, which restarts the service. While it is away a server stops: the hub keeps
the notice in its outbox on disk (``subsidy-stop-outbox`` beside ``jupyterhub.sqlite``) and
delivers it when the service answers again, after the service's tick has charged every
session up to the time it woke; the ledger must end up charging exactly the server's real
life, to the observed stop within a second, with its caches and entries in step.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import func, select

from subsidyhub.ledger.accounts import verify
from subsidyhub.ledger.db import Database, now_ms
from subsidyhub.ledger.models import Charge, SpawnSession
from subsidyhub.ledger.pricing import accrued
from tests.hub.helpers import HubStack, HubUser, ProcessRef, is_alive, poll

OUTAGE_S = 30


def sessions_of(ledger: Database, username: str) -> list[SpawnSession]:
    with ledger.read() as session:
        return list(session.scalars(select(SpawnSession).where(SpawnSession.username == username)))


def running_server(stack: HubStack, name: str) -> tuple[HubUser, ProcessRef]:
    user = HubUser(stack, name)
    response = user.start_server("cpu-small")
    assert response.status_code in (201, 202), response.text
    user.wait_ready()
    return user, stack.server_process(name)


def stop_and_time(user: HubUser, server: ProcessRef) -> tuple[int, int]:
    """Stop ``user``'s server through the hub; (when asked, when its process ended).

    The end is watched from a thread while the request is in flight: the hub answers only
    after its stop hook, which waits for the service as long as it lets itself.
    """

    def watch() -> int:
        while is_alive(server):
            time.sleep(0.01)
        return now_ms()

    with ThreadPoolExecutor(1) as pool:
        ended = pool.submit(watch)
        asked = now_ms()
        response = user.api("DELETE", f"users/{user.name}/server")
        assert response.status_code in (202, 204), response.text
        return asked, ended.result(timeout=30)


def kept_notice(stack: HubStack, user: str) -> dict[str, int | str]:
    """The one undelivered stop notice of ``user`` in the hub's outbox."""
    notices = [json.loads(path.read_text()) for path in sorted(stack.outbox.glob("*.json"))]
    [notice] = [n for n in notices if n["user"] == user]
    return notice


def assert_charged_to(ledger: Database, username: str, stopped_ms: int) -> None:
    """The user's one session stops at ``stopped_ms`` and its lines sum to exactly that life."""
    [row] = sessions_of(ledger, username)
    assert row.stopped_ms == row.reported_stop_ms == stopped_ms
    owed = accrued(row.list_rate_micro, row.subsidy_bp, row.stopped_ms - row.started_ms)
    with ledger.read() as session:
        charged = session.execute(
            select(func.sum(Charge.list_micro), func.sum(Charge.subsidy_micro)).where(
                Charge.session_id == row.id
            )
        ).one()
        assert verify(session) == []
    assert (charged[0], charged[1]) == (owed.list, owed.subsidy)
    assert (row.charged_list_micro, row.charged_subsidy_micro) == (owed.list, owed.subsidy)


def delivered(ledger: Database, username: str) -> SpawnSession | None:
    rows = sessions_of(ledger, username)
    return rows[0] if rows and rows[0].reported_stop_ms is not None else None


@dataclass(frozen=True)
class KeptStop:
    """A server stopped through the hub while the service was frozen, as the hub kept it."""

    user: HubUser
    asked_ms: int
    gone_ms: int
    notice: dict[str, int | str]


@contextmanager
def service_frozen(stack: HubStack, then: signal.Signals) -> Iterator[float]:
    """The managed service frozen (SIGSTOP) for the block, then sent ``then`` (SIGCONT to wake
    it, SIGKILL to kill it) whatever happened; yields when it was frozen (monotonic)."""
    service = stack.service_process()
    os.kill(service[0], signal.SIGSTOP)
    try:
        yield time.monotonic()
    finally:
        os.kill(service[0], then)


def stop_kept(stack: HubStack, user: HubUser, server: ProcessRef) -> KeptStop:
    """Stop ``user``'s running server through the hub (the service frozen) and wait until the
    hub is done with it: the notice is then in its outbox."""
    asked, gone = stop_and_time(user, server)
    poll(lambda: user.server() is None, timeout=30, what="the hub done with the stop")
    return KeptStop(user, asked, gone, kept_notice(stack, user.name))


def assert_delivered_to_the_real_stop(stack: HubStack, ledger: Database, kept: KeptStop) -> None:
    """The kept notice reaches the ledger, which charges the server's life to its real end."""
    name = kept.user.name
    poll(lambda: delivered(ledger, name), timeout=30, what="the kept stop delivered")
    assert abs(int(kept.notice["stopped_ms"]) - kept.gone_ms) <= 1000
    assert_charged_to(ledger, name, int(kept.notice["stopped_ms"]))
    poll(lambda: not list(stack.outbox.glob("*.json")), timeout=10, what="the outbox emptied")
