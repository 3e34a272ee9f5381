"""Prometheus metrics of one service instance: its own registry, never the global one.

Counters and the latency histogram are updated as requests happen. Project balances and burn
rates are gauges computed at scrape time from the ledger (one read transaction, four
queries for all projects), so they are exact at the moment of the scrape and cost nothing
between scrapes. Amounts are in currency units, as floats: fine for graphs and alerts, never
used for accounting.

Charged amounts per project are counters read from the ledger at scrape time too, not
incremented by the tick: charges are written by the tick, by stops and by whichever replica
leads, so only the ledger sees them all, and its totals survive restarts (no counter reset)
and agree with every replica. They are summed from the sessions' running totals (one row per
server start, kept equal to the sum of its charge lines), not from the charge lines
themselves, which grow by one row per server per minute. The count of sessions each tick
charged is an in-process counter: it measures this process's metering work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from subsidyhub.ledger import capacity, queue
from subsidyhub.ledger.accounts import charged_by_project, load_accounts
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.projects import list_projects
from subsidyhub.money import MICRO
from subsidyhub.settings import Settings

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ProjectAccounts(Collector):
    """Per-project gauges read from the ledger when Prometheus scrapes."""

    def __init__(self, db: Database, clock: Callable[[], int]) -> None:
        self._db = db
        self._clock = clock

    def describe(self) -> Iterator[Metric]:
        # Declared without reading the database, so registering costs no query.
        yield from self._families()

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily | CounterMetricFamily, ...]:
        labels = ["project"]
        return (
            GaugeMetricFamily(
                "subsidyhub_project_balance",
                "Subsidy left in the project, in currency units.",
                labels=labels,
            ),
            GaugeMetricFamily(
                "subsidyhub_project_available",
                "Subsidy left after open holds, in currency units.",
                labels=labels,
            ),
            GaugeMetricFamily(
                "subsidyhub_project_burn_rate_per_hour",
                "Subsidy per hour that the project's running servers consume.",
                labels=labels,
            ),
            GaugeMetricFamily(
                "subsidyhub_project_running_servers",
                "Servers running in the project.",
                labels=labels,
            ),
            GaugeMetricFamily(
                "subsidyhub_project_gpus_in_use", "GPUs the project holds.", labels=labels
            ),
            CounterMetricFamily(
                "subsidyhub_project_charged_list",
                "List price charged to the project's sessions ever, in currency units.",
                labels=labels,
            ),
            CounterMetricFamily(
                "subsidyhub_project_charged_subsidy",
                "Subsidy charged to the project's sessions ever (drawn from its allocations), "
                "in currency units.",
                labels=labels,
            ),
        )

    def collect(self) -> Iterator[Metric]:
        balance, available, burn, running, gpus, charged_list, charged_subsidy = self._families()
        now = self._clock()
        with self._db.read() as session:
            projects = list_projects(session)
            accounts = load_accounts(session, projects, now)
            charged = charged_by_project(session)
        for project in projects:
            account = accounts[project.id]
            labels = [project.slug]
            balance.add_metric(labels, account.balance / MICRO)
            available.add_metric(labels, account.available / MICRO)
            burn.add_metric(labels, account.burn_rate_per_hour / MICRO)
            running.add_metric(labels, len(account.sessions))
            gpus.add_metric(labels, account.gpus_in_use)
            list_micro, subsidy_micro = charged.get(project.id, (0, 0))
            charged_list.add_metric(labels, list_micro / MICRO)
            charged_subsidy.add_metric(labels, subsidy_micro / MICRO)
        yield from (balance, available, burn, running, gpus, charged_list, charged_subsidy)


class GpuCapacity(Collector):
    """Per GPU type, read from the ledger at scrape time: capacity, in use, reserved (and of
    that, used by the reserving projects), free and waiting."""

    def __init__(self, db: Database, settings: Settings, clock: Callable[[], int]) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        labels = ["gpu_type"]
        return (
            GaugeMetricFamily("subsidyhub_gpus", "GPUs of the type (capacity).", labels=labels),
            GaugeMetricFamily(
                "subsidyhub_gpus_in_use",
                "GPUs held by running servers and open queue offers.",
                labels=labels,
            ),
            GaugeMetricFamily(
                "subsidyhub_gpus_reserved", "GPUs reserved for projects now.", labels=labels
            ),
            GaugeMetricFamily(
                "subsidyhub_gpus_reserved_in_use",
                "Reserved GPUs the reserving projects use now (reservation use).",
                labels=labels,
            ),
            GaugeMetricFamily("subsidyhub_gpus_free", "GPUs anyone may take now.", labels=labels),
            GaugeMetricFamily(
                "subsidyhub_queue_length", "Servers waiting for a GPU of the type.", labels=labels
            ),
        )

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        total, in_use, reserved, reserved_used, free, waiting = families
        now = self._clock()
        with self._db.read() as session:
            for gpu_type in capacity.gpu_types(self._settings):
                view = queue.view(session, self._settings, gpu_type, now, estimate=False)
                labels = [gpu_type]
                if view.state.capacity is not None:
                    total.add_metric(labels, view.state.capacity)
                    free.add_metric(labels, view.free_now or 0)
                in_use.add_metric(labels, view.state.in_use)
                reserved.add_metric(labels, view.reserved_now)
                reserved_used.add_metric(labels, view.reserved_in_use)
                waiting.add_metric(labels, view.waiting)
        yield from families


class ServiceMetrics:
    """The registry and the instruments the routes update."""

    def __init__(self, db: Database, settings: Settings, clock: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.admissions = Counter(
            "subsidyhub_admissions",
            "Admission decisions, by result (admitted, refused, invalid) and reason.",
            ["result", "reason"],
            registry=self.registry,
        )
        self.stops = Counter(
            "subsidyhub_stops",
            "Sessions stopped, by reason; repeated stops of a stopped session are not counted.",
            ["reason"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "subsidyhub_request_duration_seconds",
            "Time to answer API requests, by method, route template and status.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.hub_token_checks = Counter(
            "subsidyhub_hub_token_checks",
            "Token checks sent to the hub's API (cache misses), by result.",
            ["result"],
            registry=self.registry,
        )
        self.tick_seconds = Histogram(
            "subsidyhub_metering_tick_seconds",
            "Time to charge all running sessions once.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.sessions_charged = Counter(
            "subsidyhub_metering_sessions_charged",
            "Sessions this process's metering ticks charged (one charge line each, two across "
            "a month start).",
            registry=self.registry,
        )
        self.last_tick = Gauge(
            "subsidyhub_metering_last_tick_timestamp_seconds",
            "When this process last finished a metering tick (Unix time); 0 if it never led.",
            registry=self.registry,
        )
        self.enforcement_lateness_seconds = Histogram(
            "subsidyhub_enforcement_lateness_seconds",
            "From a server's stop deadline (subsidy exhausted, max session) to closing it.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
            registry=self.registry,
        )
        self.reconcile_drift = Gauge(
            "subsidyhub_reconcile_drift",
            "Found at the last reconciliation: sessions without a server (closed) and servers "
            "without a session.",
            ["kind"],
            registry=self.registry,
        )
        self.queue_wait_seconds = Histogram(
            "subsidyhub_queue_wait_seconds",
            "From joining a GPU queue to the offer of a GPU, by GPU type.",
            ["gpu_type"],
            buckets=(10, 30, 60, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400),
            registry=self.registry,
        )
        self.queue_offers_expired = Counter(
            "subsidyhub_queue_offers_expired",
            "Offers of a GPU not taken up in time (passed on to the next in the queue).",
            ["gpu_type"],
            registry=self.registry,
        )
        self.node_reads = Counter(
            "subsidyhub_node_capacity_reads",
            "Reads of the GPU nodes' capacity (kubernetes.capacity_from_nodes), by result.",
            ["result"],
            registry=self.registry,
        )
        self.gpu_samples = Counter(
            "subsidyhub_gpu_samples",
            "Rounds of reading the GPU servers' utilisation (idle_gpu.source), by result.",
            ["result"],
            registry=self.registry,
        )
        self.gpus_idle = Gauge(
            "subsidyhub_gpus_idle",
            "GPUs of running servers idle at the last sample (every GPU of the server below "
            "idle_gpu.threshold_percent), by GPU type.",
            ["gpu_type"],
            registry=self.registry,
        )
        self.registry.register(ProjectAccounts(db, clock))
        self.registry.register(GpuCapacity(db, settings, clock))

    def render(self) -> bytes:
        return generate_latest(self.registry)
