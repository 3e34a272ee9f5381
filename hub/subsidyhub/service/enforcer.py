"""The service's background loop: meter, stop servers on time, reconcile with the hub.

One asyncio task per service process. Each round it

* charges running sessions every ``metering.interval_seconds`` (``charge_until``, in a worker
  thread so requests keep being answered);
* asks :func:`ledger.enforcement.plan` which servers are due and when the next one is, closes
  the due sessions in the ledger with their reason and asks the hub to stop the servers;
* with ``kubernetes.capacity_from_nodes``, reads each GPU type's capacity from the nodes every
  ``capacity_refresh_seconds`` (:mod:`subsidyhub.service.node_capacity`);
* every ``idle_gpu.sample_seconds``, reads the utilisation of every GPU server
  (:mod:`subsidyhub.service.gpu_samplers`), records it (:func:`ledger.idle.record`) and stops
  the servers whose GPUs were idle past their time, with the reason ``idle_gpu``;
* offers freed GPUs to the heads of the GPU queues and lets unclaimed offers expire
  (:func:`ledger.queue.make_offers`), every round while anyone waits, so a stop reaches the
  next person within about a second;
* every ``metering.reconcile_seconds`` compares the ledger's running sessions with the hub's
  running servers (paginated): a session whose server is gone is closed at the last instant
  a listing showed it running (never "now": its stop notice may still be on the way, and
  corrects the stop when it comes), a server that was never admitted is stopped, admitted
  from its own start time, or left, by config.

Among several processes on one ledger (replicas on PostgreSQL; on SQLite, a stray second
service) only the holder of the leader lock does this work (:mod:`subsidyhub.service.leader`);
the others retry taking the lead every second.

It sleeps until the earliest of: the next tick, the next stop deadline, the next
reconciliation, or one second. Each second it reads a cheap change marker (newest audit
entry, newest session, newest stop), so an allocation added by the CLI in another process or
a new admission moves a predicted stop within a second, without recomputing every account
every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from subsidyhub.errors import SubsidyError
from subsidyhub.ledger import admission, capacity, idle, queue
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.enforcement import (
    Plan,
    RunningServer,
    StopOrder,
    change_marker,
    closed_in_ledger_only,
    mark_seen,
    plan,
    running_servers,
)
from subsidyhub.ledger.metering import charge_until
from subsidyhub.service.gpu_samplers import (
    GpuReading,
    Sampler,
    SamplerUnavailable,
    make_sampler,
)
from subsidyhub.service.hubclient import HubClient, HubServer, HubUnavailable
from subsidyhub.service.leader import Leadership
from subsidyhub.service.mailer import Mailer
from subsidyhub.service.metrics import ServiceMetrics
from subsidyhub.service.node_capacity import NodeReadFailed, read_nodes
from subsidyhub.settings import Settings

log = logging.getLogger("subsidyhub.enforcer")

CHANGE_POLL_MS = 1000
# The hub lists a server as pending before its admission hook runs, so a session admitted
# before the listing began is in the list; the margin covers clock skew between hosts.
RECONCILE_GRACE_MS = 5_000


@dataclass
class EnforcerState:
    """What the loop remembers between rounds (in memory; the ledger is the durable part)."""

    next_tick_ms: int = 0
    next_reconcile_ms: int = 0
    next_node_read_ms: int = 0
    next_sample_ms: int = 0
    # The last failure of the GPU utilisation source ("" while it answers).
    sampler_error: str = ""
    marker: tuple[int, int, int] | None = None
    plan: Plan | None = None
    # Hub stops asked for but not yet confirmed: retried each round until the hub agrees.
    pending_hub_stops: dict[tuple[str, str], str] = field(default_factory=dict)
    # Ledger-only stops already handed to the hub (ids), so each is asked for once.
    carried_stops: set[int] = field(default_factory=set)
    # Admin stops in their grace: server → (its closed session, when to ask the hub, reason).
    graced_stops: dict[tuple[str, str], tuple[int, int, str]] = field(default_factory=dict)


class Enforcer:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        hub: HubClient,
        metrics: ServiceMetrics,
        clock: Callable[[], int],
        sampler: Sampler | None = None,
    ) -> None:
        self.settings = settings
        self.sampler = sampler if sampler is not None else make_sampler(settings)
        self.mailer = Mailer(settings.smtp)
        self.db = db
        self.hub = hub
        self.metrics = metrics
        self.clock = clock
        self.state = EnforcerState()
        self._wake = asyncio.Event()

    def retry_hub_stop(self, username: str, server_name: str, reason: str) -> None:
        """Ask the hub again, each round until it confirms, to stop a server whose session
        is closed already (an admin's stop the hub did not answer)."""
        self.state.pending_hub_stops[(username, server_name)] = reason

    def stop_after_grace(
        self, username: str, server_name: str, session_id: int, reason: str, at_ms: int
    ) -> None:
        """Ask the hub to stop a server at ``at_ms``: an admin closed its session, and its user
        has until then to save their work (JupyterLab tells them why at once)."""
        self.state.graced_stops[(username, server_name)] = (session_id, at_ms, reason)
        self._wake.set()

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        now = self.clock()
        self.state.next_tick_ms = now
        self.state.next_reconcile_ms = now
        leadership = Leadership(self.db)
        try:
            while True:
                await self._lead_one_round(leadership)
                await self._sleep()
        finally:
            leadership.release()

    async def _lead_one_round(self, leadership: Leadership) -> None:
        if not await asyncio.to_thread(leadership.holds):
            # Another replica leads: forget its deadlines, try again in a second.
            self.state.plan = None
            self.state.next_tick_ms = self.state.next_reconcile_ms = self.clock() + CHANGE_POLL_MS
            return
        try:
            await self.round()
        except asyncio.CancelledError:
            raise
        except Exception:
            # A failed round (database briefly locked, hub restarting) must not end
            # enforcement; the next round retries everything that matters.
            log.exception("Enforcement round failed; retrying")

    async def round(self) -> None:
        now = self.clock()
        state = self.state
        if now >= state.next_tick_ms:
            began = time.perf_counter()
            charged = await asyncio.to_thread(charge_until, self.db, now)
            self.metrics.tick_seconds.observe(time.perf_counter() - began)
            self.metrics.sessions_charged.inc(charged)
            self.metrics.last_tick.set(now / 1000)
            state.next_tick_ms = now + int(self.settings.metering.interval_seconds * 1000)
            state.marker = None
        marker = await asyncio.to_thread(self._marker)
        due_deadline = (
            state.plan is not None
            and state.plan.next_due_ms is not None
            and now >= state.plan.next_due_ms
        )
        if marker != state.marker or state.plan is None or due_deadline:
            state.plan = await asyncio.to_thread(self._plan, now)
            state.marker = marker
        self._carry_ledger_stops(state.plan.closed_running)
        if state.plan.due:
            await self.enforce(state.plan.due)
            state.plan = await asyncio.to_thread(self._plan, self.clock())
            state.marker = await asyncio.to_thread(self._marker)
        if state.graced_stops:
            await asyncio.to_thread(self._end_graces, self.clock())
        if self.sampler is not None and now >= state.next_sample_ms:
            state.next_sample_ms = now + self.settings.idle_gpu.sample_ms
            await self.sample_gpus()
        if self._reads_nodes() and now >= state.next_node_read_ms:
            await self.read_node_capacity()
            refresh = self.settings.kubernetes.capacity_refresh_seconds
            state.next_node_read_ms = self.clock() + int(refresh * 1000)
        offers = await asyncio.to_thread(self._serve_queues, self.clock())
        if offers and self.mailer.enabled:
            await asyncio.to_thread(self._mail_offers, offers)
        await self._retry_hub_stops()
        if now >= state.next_reconcile_ms:
            await self.reconcile()
            state.next_reconcile_ms = self.clock() + int(
                self.settings.metering.reconcile_seconds * 1000
            )

    def next_wake_ms(self) -> int:
        now = self.clock()
        candidates = [self.state.next_tick_ms, self.state.next_reconcile_ms, now + CHANGE_POLL_MS]
        if self.sampler is not None:
            candidates.append(self.state.next_sample_ms)
        candidates += [at_ms for _id, at_ms, _reason in self.state.graced_stops.values()]
        if self.state.plan is not None and self.state.plan.next_due_ms is not None:
            candidates.append(self.state.plan.next_due_ms)
        return min(candidates)

    async def _sleep(self) -> None:
        delay = max(0.0, (self.next_wake_ms() - self.clock()) / 1000)
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=delay)

    # -- ledger reads (worker threads) -----------------------------------------------------

    def _marker(self) -> tuple[int, int, int]:
        with self.db.read() as session:
            return change_marker(session)

    def _plan(self, now_ms: int) -> Plan:
        with self.db.read() as session:
            return plan(session, now_ms)

    def _reads_nodes(self) -> bool:
        return (
            self.settings.backend == "kubernetes" and self.settings.kubernetes.capacity_from_nodes
        )

    async def read_node_capacity(self) -> None:
        """Count the nodes' GPUs and record them; a failed read is logged and retried next time
        (the configured capacity counts again once the last read is too old)."""
        try:
            observed = await read_nodes(self.settings.kubernetes)
        except NodeReadFailed as error:
            self.metrics.node_reads.labels("failed").inc()
            log.warning("GPU capacity not read from the nodes: %s", error)
            return
        now = self.clock()
        await asyncio.to_thread(self._record_observed, observed, now)
        self.metrics.node_reads.labels("ok").inc()

    def _record_observed(self, observed: dict[str, tuple[int, int]], now_ms: int) -> None:
        with self.db.write() as session:
            capacity.record_observed(session, observed, now_ms)

    async def sample_gpus(self) -> None:
        """Read every GPU server's utilisation, record it, and stop those idle past their time.

        A source that fails is logged and counted; nothing is recorded, so nobody is stopped
        on stale samples (:func:`ledger.idle.due` needs a fresh one)."""
        targets = await asyncio.to_thread(self._gpu_targets)
        readings: dict[int, GpuReading] = {}
        if targets:
            assert self.sampler is not None
            try:
                readings = await self.sampler.read(targets)
            except SamplerUnavailable as error:
                self.metrics.gpu_samples.labels("failed").inc()
                if str(error) != self.state.sampler_error:  # once per cause, not every round
                    log.warning("GPU utilisation not read (%s): %s", self.sampler.name, error)
                self.state.sampler_error = str(error)
                return
            self.metrics.gpu_samples.labels("ok").inc()
            if self.state.sampler_error:
                log.info("GPU utilisation read again (%s)", self.sampler.name)
                self.state.sampler_error = ""
        now = self.clock()
        idle_gpus, orders = await asyncio.to_thread(self._record_readings, readings, now)
        for gpu_type in self.settings.prices.gpu:
            self.metrics.gpus_idle.labels(gpu_type).set(idle_gpus.get(gpu_type, 0))
        if orders:
            await self.enforce(orders)

    def _gpu_targets(self) -> list[idle.Target]:
        with self.db.read() as session:
            return idle.targets(session)

    def _record_readings(
        self, readings: dict[int, GpuReading], now_ms: int
    ) -> tuple[dict[str, int], list[StopOrder]]:
        with self.db.write() as session:
            idle_gpus = idle.record(session, self.settings, readings, now_ms)
            return idle_gpus, idle.due(session, self.settings, now_ms)

    def _serve_queues(self, now_ms: int) -> list[queue.Offer]:
        """Offers for every GPU type anyone waits for; a write only where someone does."""
        with self.db.read() as session:
            types = queue.open_types(session)
        made: list[queue.Offer] = []
        for gpu_type in types:
            with self.db.write() as session:
                offers, expired = queue.make_offers(session, self.settings, gpu_type, now_ms)
            made += offers
            for offer in offers:
                self.metrics.queue_wait_seconds.labels(gpu_type).observe(offer.waited_ms / 1000)
                log.info(
                    "Offered %d %s GPU(s) to %s/%s until %d (waited %d s)",
                    offer.gpu_count,
                    gpu_type,
                    offer.username,
                    offer.server_name,
                    offer.expires_ms,
                    offer.waited_ms // 1000,
                )
            if expired:
                self.metrics.queue_offers_expired.labels(gpu_type).inc(len(expired))
        return made

    def _mail_offers(self, offers: list[queue.Offer]) -> None:
        """Tell each person with an email address on record that a GPU is held for them."""
        with self.db.read() as session:
            addresses = {o.entry_id: queue.email_for(session, o.entry_id) for o in offers}
        for offer in offers:
            address = addresses[offer.entry_id]
            if address:
                subject, body = queue.offer_email(offer, self.settings.centre_name, self.clock())
                self.mailer.send(address, subject, body)

    # -- stopping ---------------------------------------------------------------------------

    def _close(self, session_id: int, reason: str, at_ms: int | None = None) -> bool:
        """Close a session in the ledger (at ``at_ms``, default now); True if this call closed it."""
        with self.db.write() as session:
            stopped = admission.stop(
                session, session_id, now_ms=self.clock(), reason=reason, at_ms=at_ms
            )
        if not stopped.already:
            self.metrics.stops.labels(reason).inc()
        return not stopped.already

    async def enforce(self, orders: list[StopOrder]) -> None:
        for order in orders:
            closed = await asyncio.to_thread(self._close, order.session_id, order.reason)
            if closed:
                late_ms = self.clock() - order.due_ms
                self.metrics.enforcement_lateness_seconds.observe(max(0, late_ms) / 1000)
                log.info(
                    "Stopping %s/%s of project %s: %s (%d ms after the deadline)",
                    order.username,
                    order.server_name,
                    order.project,
                    order.reason,
                    late_ms,
                )
            self.state.pending_hub_stops[(order.username, order.server_name)] = order.reason
        await self._retry_hub_stops()

    def _carry_ledger_stops(self, closed_running: list[StopOrder]) -> None:
        """Ask the hub, once per session and after the grace, to stop servers an admin closed
        in the ledger (``subsidyhub server stop``)."""
        grace_ms = int(self.settings.metering.admin_stop_grace_seconds * 1000)
        for order in closed_running:
            if order.session_id not in self.state.carried_stops:
                self.state.carried_stops.add(order.session_id)
                self.state.graced_stops.setdefault(
                    (order.username, order.server_name),
                    (order.session_id, order.due_ms + grace_ms, order.reason),
                )
                log.info(
                    "Stopping %s/%s of project %s: closed in the ledger by an admin",
                    order.username,
                    order.server_name,
                    order.project,
                )

    def _end_graces(self, now_ms: int) -> None:
        """Graces that have run out become hub stops, unless the server was started again
        since (its user stopped it and started a new one: that one is not the admin's)."""
        for server, (session_id, at_ms, reason) in list(self.state.graced_stops.items()):
            if at_ms > now_ms:
                continue
            del self.state.graced_stops[server]
            with self.db.read() as session:
                latest = admission.latest_session_id(session, *server)
            if latest == session_id:
                self.state.pending_hub_stops[server] = reason

    async def _retry_hub_stops(self) -> None:
        for (user, server_name), reason in list(self.state.pending_hub_stops.items()):
            try:
                await self.hub.stop_server(user, server_name)
            except HubUnavailable as error:
                log.warning("Hub did not stop %s/%s (%s) yet: %s", user, server_name, reason, error)
                continue
            del self.state.pending_hub_stops[(user, server_name)]

    # -- reconciliation ---------------------------------------------------------------------

    def _running_sessions(self) -> list[RunningServer]:
        with self.db.read() as session:
            return running_servers(session)

    def _closed_by_admins(self, now_ms: int) -> list[StopOrder]:
        with self.db.read() as session:
            return closed_in_ledger_only(session, now_ms)

    def _mark_seen(self, listed_ms: int, unlisted: list[int]) -> None:
        with self.db.write() as session:
            mark_seen(session, listed_ms, unlisted)

    def _admit_found(self, server: HubServer) -> None:
        """Admit a server found running without a session, charged from its own start time.

        This is how a spawn let through while the service was down (``fail_open``) is paid for.
        """
        started = server.started_ms or self.clock()
        with self.db.write() as session:
            admission.admit(
                session,
                self.settings,
                username=server.user,
                project_slug=server.project,
                profile_slug=server.profile or "",
                server_name=server.name,
                now_ms=started,
            )

    async def reconcile(self) -> None:
        listed_at = self.clock()
        try:
            servers = {(s.user, s.name): s async for s in self.hub.active_servers()}
        except HubUnavailable as error:
            log.warning("Reconciliation skipped: %s", error)
            return
        sessions = await asyncio.to_thread(self._running_sessions)
        known = {(row.username, row.server_name) for row in sessions}
        unlisted = [row for row in sessions if (row.username, row.server_name) not in servers]
        closed = 0
        for row in unlisted:
            if row.started_ms < listed_at - RECONCILE_GRACE_MS:
                closed += await asyncio.to_thread(
                    self._close, row.session_id, admission.RECONCILED, row.seen_ms
                )
        unknown = [s for key, s in servers.items() if key not in known and s.pending != "spawn"]
        if unknown:
            # An admin's stop (the CLI writes the ledger directly) leaves a running server with
            # no open session, in its grace, not unadmitted; one made since this round's plan
            # is read now, after the sessions: a stop committed before that read is in it.
            self._carry_ledger_stops(await asyncio.to_thread(self._closed_by_admins, listed_at))
            unknown = [s for s in unknown if (s.user, s.name) not in self.state.graced_stops]
        for server in unknown:
            await self._handle_unadmitted(server)
        # Last, so that a server admitted just above from its own start counts as seen too.
        await asyncio.to_thread(self._mark_seen, listed_at, [row.session_id for row in unlisted])
        self.metrics.reconcile_drift.labels("sessions_closed").set(closed)
        self.metrics.reconcile_drift.labels("servers_unadmitted").set(len(unknown))
        if closed or unknown:
            log.info(
                "Reconciled: closed %d sessions without a server; %d servers without a session",
                closed,
                len(unknown),
            )
            self.state.marker = None

    async def _handle_unadmitted(self, server: HubServer) -> None:
        policy = self.settings.unadmitted_servers
        if policy == "ignore":
            return
        if policy == "admit":
            try:
                await asyncio.to_thread(self._admit_found, server)
                return
            except SubsidyError as refusal:
                log.warning(
                    "Server %s/%s runs unadmitted and cannot be admitted: %s",
                    server.user,
                    server.name,
                    refusal.message,
                )
        self.state.pending_hub_stops[(server.user, server.name)] = "unadmitted"
        self.metrics.stops.labels("unadmitted").inc()
