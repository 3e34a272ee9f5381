"""GPU utilisation of running servers, read from NVML, Prometheus or dcgm-exporter.

Idle-GPU reclaim (docs/idle-gpus.md) needs one number per server per sample: how busy its
busiest GPU is. Where that number comes from depends on the backend: the local and Docker
backends run servers on this host, so NVML reads the GPUs they hold directly; on Kubernetes the
GPUs are on other nodes, where dcgm-exporter publishes per-GPU series labelled with the pod that
holds each GPU, read either through Prometheus or from the exporters themselves.

Every sampler answers the same question the same way: readings keyed by session id, a server
with no data this time simply absent (a missing sample is not evidence of idleness), and
:class:`SamplerUnavailable` when the whole source failed, so the caller can say so once instead
of treating every server as idle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import pynvml  # type: ignore[import-untyped]
from prometheus_client.parser import text_string_to_metric_families

from subsidyhub.ledger.idle import Target
from subsidyhub.netutil import tls_context
from subsidyhub.settings import Settings

log = logging.getLogger(__name__)

UTIL_METRIC = "DCGM_FI_DEV_GPU_UTIL"
MEMORY_METRIC = "DCGM_FI_DEV_FB_USED"  # MiB in dcgm-exporter
MIB = 1024 * 1024
# DCGM reports a field it has no value for as a "blank" sentinel near 2**31 or 2**63; no GPU
# holds 2**31 MiB (2 PiB), so anything from there up is a sentinel, not a reading.
DCGM_BLANK_FLOOR = 2**31 - 16


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One server's GPUs at one sample."""

    utilisation_pct: int  # the busiest of the server's GPUs, 0–100 (rounded)
    memory_mib: int  # framebuffer memory in use, summed over its GPUs
    gpus: int  # how many of its GPUs were read


class SamplerUnavailable(Exception):
    """The source could not be read this time (message says why, one line)."""


class Sampler(Protocol):
    """A source of utilisation: ``read`` is keyed by session id; a target without data this
    time is absent, and :class:`SamplerUnavailable` means the whole source failed."""

    name: str

    async def read(self, targets: Sequence[Target]) -> dict[int, GpuReading]: ...


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _reading(utilisations: Sequence[float], memories: Sequence[float]) -> GpuReading:
    """A server's reading from its GPUs' values.

    Utilisation is the maximum, not the mean: a server is idle only while every one of its
    GPUs is, so one busy GPU of eight keeps it busy. Memory is summed and only reported (for
    the lab's plot): memory held is not work, since a framework keeps its cache allocated
    long after the last kernel ran.
    """
    return GpuReading(
        utilisation_pct=round(max(utilisations)),
        memory_mib=round(sum(memories)),
        gpus=len(utilisations),
    )


# --- NVML: this host's GPUs (local and Docker backends) ---


class NvmlSampler:
    """Reads this host's GPUs through NVML, for servers that hold them by index or UUID.

    NVML is initialised on the first read and stays initialised for the life of the process
    (cheap, and re-initialising every sample would cost more than the reads). Its calls block,
    so a read runs in a worker thread; the lock keeps concurrent reads from initialising twice.
    """

    name = "nvml"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._initialised = False
        self._failing: set[str] = set()  # devices already warned about, until they read again

    async def read(self, targets: Sequence[Target]) -> dict[int, GpuReading]:
        return await asyncio.to_thread(self._read, targets)

    def device_count(self) -> int:
        """How many GPUs NVML sees; raises :class:`SamplerUnavailable` without a driver."""
        with self._lock:
            self._init()
            try:
                return int(pynvml.nvmlDeviceGetCount())
            except pynvml.NVMLError as error:
                raise SamplerUnavailable(f"NVML: {_one_line(error)}") from error

    def _init(self) -> None:
        if self._initialised:
            return
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as error:
            raise SamplerUnavailable(f"NVML: {_one_line(error)}") from error
        self._initialised = True

    def _read(self, targets: Sequence[Target]) -> dict[int, GpuReading]:
        with self._lock:
            self._init()
            readings: dict[int, GpuReading] = {}
            for target in targets:
                devices = [read for d in target.gpu_devices if (read := self._device(d))]
                if devices:
                    readings[target.session_id] = _reading(
                        [util for util, _ in devices], [memory for _, memory in devices]
                    )
            return readings

    def _device(self, device: str) -> tuple[float, float] | None:
        """(utilisation %, memory MiB) of one GPU, or ``None`` when NVML cannot read it: a GPU
        that fell off the bus must not hide the server's other GPUs."""
        try:
            if device.startswith("GPU-"):
                handle = pynvml.nvmlDeviceGetHandleByUUID(device)
            else:
                handle = pynvml.nvmlDeviceGetHandleByIndex(int(device))
            utilisation = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
            used = pynvml.nvmlDeviceGetMemoryInfo(handle).used
        except (pynvml.NVMLError, ValueError) as error:
            if device not in self._failing:
                self._failing.add(device)
                log.warning("GPU %s cannot be read through NVML: %s", device, _one_line(error))
            return None
        self._failing.discard(device)
        return float(utilisation), used / MIB


# --- dcgm-exporter series: through Prometheus or from the exporters ---


@dataclass(frozen=True, slots=True)
class PodSelector:
    """Which series belong to user pods, and the labels that say so.

    The labels are configurable because Prometheus renames dcgm-exporter's ``pod`` and
    ``namespace`` to ``exported_pod`` and ``exported_namespace`` when its own target labels
    clash with them (a ServiceMonitor without ``honorLabels``).
    """

    pod_label: str = "pod"
    namespace_label: str = "namespace"
    namespace: str | None = None  # the user pods' namespace; None: any

    def promql(self) -> str:
        """One instant-vector selector for both metrics: one round trip, and both read at the
        same evaluation instant. Not limited to GPUs a pod holds: on a single host (local and
        Docker backends) servers hold GPUs by index, and no series names a pod."""
        matchers = [f"__name__=~{_promql_string(f'{UTIL_METRIC}|{MEMORY_METRIC}')}"]
        if self.namespace is not None:
            matchers.append(f"{self.namespace_label}={_promql_string(self.namespace)}")
        return f"{{{','.join(matchers)}}}"


def _promql_string(value: str) -> str:
    """``value`` as a PromQL string literal: JSON's escapes are a subset of PromQL's."""
    return json.dumps(value)


@dataclass(frozen=True, slots=True)
class Series:
    """One sample of one dcgm-exporter series: its metric, labels and value."""

    metric: str
    labels: Mapping[str, str]
    value: float


def _gpu_key(labels: Mapping[str, str]) -> tuple[str, ...]:
    """What identifies the GPU a series is about: its UUID where the exporter gives one (unique
    across nodes), else the node and index. Two series of one GPU (the exporter scraped twice)
    must count as one GPU, or its memory would be counted twice."""
    uuid = labels.get("UUID") or labels.get("uuid")
    if uuid:
        return (uuid,)
    return (labels.get("Hostname", ""), labels.get("gpu", ""))


@dataclass(slots=True)
class GpuValues:
    """One GPU's latest values in dcgm-exporter's series, and who holds it."""

    pod: str  # "" when no pod holds it (or the host has no pods)
    ids: frozenset[str]  # its index and UUID: how a server on the host names it
    utilisation: float | None = None
    memory: float = 0.0


def gpus_in(series: Iterable[Series], selector: PodSelector) -> list[GpuValues]:
    """Each GPU's values from dcgm-exporter's utilisation and memory series.

    Shared by the Prometheus and exporter paths so both read the same way: series are
    filtered by namespace and gathered per GPU (a GPU seen twice keeps its highest value).
    Values outside what a GPU can report are DCGM's blank sentinels and dropped.
    """
    gpus: dict[tuple[str, ...], GpuValues] = {}
    for one in series:
        if one.metric not in (UTIL_METRIC, MEMORY_METRIC):
            continue
        namespace = one.labels.get(selector.namespace_label)
        if selector.namespace is not None and namespace != selector.namespace:
            continue
        ceiling = 100.0 if one.metric == UTIL_METRIC else float(DCGM_BLANK_FLOOR)
        if not math.isfinite(one.value) or not 0 <= one.value <= ceiling:
            continue
        key = _gpu_key(one.labels)
        ids = frozenset(
            value for name in ("gpu", "UUID", "uuid") if (value := one.labels.get(name))
        )
        gpu = gpus.setdefault(key, GpuValues(one.labels.get(selector.pod_label, ""), ids))
        if one.metric == UTIL_METRIC:
            gpu.utilisation = max(gpu.utilisation or 0.0, one.value)
        else:
            gpu.memory = max(gpu.memory, one.value)
    return list(gpus.values())


def readings_of(targets: Sequence[Target], gpus: Sequence[GpuValues]) -> dict[int, GpuReading]:
    """Each target's reading from the GPUs it holds: by pod on Kubernetes, by GPU index or
    UUID on a single host. A GPU needs a utilisation series to count; memory alone says
    nothing about work."""
    readings = {}
    for target in targets:
        devices = set(target.gpu_devices)
        held = [
            gpu
            for gpu in gpus
            if gpu.utilisation is not None
            and ((target.pod and gpu.pod == target.pod) or (not target.pod and gpu.ids & devices))
        ]
        if held:
            readings[target.session_id] = _reading(
                [gpu.utilisation or 0.0 for gpu in held], [gpu.memory for gpu in held]
            )
    return readings


def _http_failure(error: httpx.HTTPError, timeout: float) -> str:
    """Why a request failed, for a person: one line, no traceback."""
    if isinstance(error, httpx.TimeoutException):
        return f"no answer within {timeout:g} s"
    if isinstance(error, httpx.ConnectError):
        return f"cannot connect ({_one_line(error) or 'connection refused'})"
    return _one_line(error) or type(error).__name__


class PrometheusSampler:
    """Reads dcgm-exporter's series through the Prometheus HTTP API (instant queries).

    A client per read keeps the sampler free of state bound to an event loop (nothing to
    close); one connection per sample interval costs nothing that matters.
    """

    name = "prometheus"

    def __init__(self, url: str, selector: PodSelector, *, timeout_seconds: float = 5) -> None:
        self.url = url.rstrip("/")
        self.selector = selector
        self.timeout_seconds = timeout_seconds

    async def read(self, targets: Sequence[Target]) -> dict[int, GpuReading]:
        query = self.selector.promql()
        try:
            async with httpx.AsyncClient(
                timeout=self.timeout_seconds, verify=tls_context()
            ) as client:
                response = await client.get(f"{self.url}/api/v1/query", params={"query": query})
        except httpx.HTTPError as error:
            raise self._unavailable(_http_failure(error, self.timeout_seconds)) from error
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise self._unavailable(f"HTTP {response.status_code}, and the answer is not JSON")
        if response.status_code != 200 or answer.get("status") != "success":
            why = answer.get("error") or answer.get("status") or "no reason given"
            raise self._unavailable(f"HTTP {response.status_code}: {why} (query {query})")
        try:
            series = [_prometheus_series(item) for item in answer["data"]["result"]]
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise self._unavailable(f"unexpected answer to {query}: {error!r}") from error
        return readings_of(targets, gpus_in(series, self.selector))

    def _unavailable(self, why: str) -> SamplerUnavailable:
        return SamplerUnavailable(f"Prometheus at {self.url}: {_one_line(why)}")


def _prometheus_series(item: Mapping[str, Any]) -> Series:
    """One element of an instant vector: ``{"metric": {labels}, "value": [time, "87"]}``."""
    labels = {str(k): str(v) for k, v in item["metric"].items()}
    return Series(labels["__name__"], labels, float(item["value"][1]))


class ExporterSampler:
    """Reads dcgm-exporter's ``/metrics`` endpoints directly, for clusters without Prometheus.

    Every node's exporter is asked at once; a node that does not answer costs only its own
    servers' samples (logged), and only when none answers is the source unavailable.
    """

    name = "exporter"

    def __init__(
        self, urls: Sequence[str], selector: PodSelector, *, timeout_seconds: float = 5
    ) -> None:
        self.urls = tuple(urls)
        self.selector = selector
        self.timeout_seconds = timeout_seconds

    async def read(self, targets: Sequence[Target]) -> dict[int, GpuReading]:
        async with httpx.AsyncClient(timeout=self.timeout_seconds, verify=tls_context()) as client:
            results = await asyncio.gather(*(self._scrape(client, url) for url in self.urls))
        failures = [why for why in results if isinstance(why, str)]
        if len(failures) == len(self.urls):
            raise SamplerUnavailable(f"no dcgm-exporter answered: {'; '.join(failures)}")
        if failures:
            log.warning("Some dcgm-exporters did not answer: %s", "; ".join(failures))
        series = [one for result in results if not isinstance(result, str) for one in result]
        return readings_of(targets, gpus_in(series, self.selector))

    async def _scrape(self, client: httpx.AsyncClient, url: str) -> list[Series] | str:
        """The exporter's GPU series, or why it could not be read."""
        try:
            response = await client.get(url)
        except httpx.HTTPError as error:
            return f"{url}: {_http_failure(error, self.timeout_seconds)}"
        if response.status_code != 200:
            return f"{url}: HTTP {response.status_code}"
        try:
            return [
                Series(sample.name, sample.labels, float(sample.value))
                for family in text_string_to_metric_families(response.text)
                if family.name in (UTIL_METRIC, MEMORY_METRIC)
                for sample in family.samples
            ]
        except ValueError as error:
            return f"{url}: not Prometheus text format ({_one_line(error)})"


def make_sampler(settings: Settings) -> Sampler | None:
    """The sampler for the source in force (:meth:`Settings.idle_gpu_source`); ``None``: off."""
    idle = settings.idle_gpu
    source = settings.idle_gpu_source()
    selector = PodSelector(idle.pod_label, idle.namespace_label, settings.kubernetes.namespace)
    if source == "nvml":
        return NvmlSampler()
    if source == "prometheus":
        assert idle.prometheus_url, "the settings refuse source prometheus without its URL"
        return PrometheusSampler(
            idle.prometheus_url, selector, timeout_seconds=idle.timeout_seconds
        )
    if source == "exporter":
        return ExporterSampler(idle.exporter_urls, selector, timeout_seconds=idle.timeout_seconds)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Print what NVML reads from every GPU of this host: :class:`NvmlSampler`'s real path,
    checked on a GPU machine (the tests replace NVML where there is no driver)."""
    parser = argparse.ArgumentParser(
        prog="python -m subsidyhub.service.gpu_samplers",
        description="Read every GPU of this host through NVML, as idle-GPU reclaim does.",
    )
    parser.add_argument("--require-gpu", action="store_true", help="exit 1 when no GPU can be read")
    args = parser.parse_args(argv)
    sampler = NvmlSampler()
    try:
        count = sampler.device_count()
        why = "NVML sees none"
    except SamplerUnavailable as error:
        count, why = 0, str(error)
    if count == 0:
        print(f"No NVIDIA GPU found ({why}).", file=sys.stderr if args.require_gpu else sys.stdout)
        return 1 if args.require_gpu else 0
    targets = [Target(index, (str(index),), None) for index in range(count)]
    readings = asyncio.run(sampler.read(targets))
    for target in targets:
        reading = readings.get(target.session_id)
        if reading is None:
            print(f"gpu {target.session_id}: cannot be read (see the warning above)")
        else:
            print(
                f"gpu {target.session_id}: {reading.utilisation_pct}% busy, "
                f"{reading.memory_mib} MiB used"
            )
    return 1 if args.require_gpu and len(readings) < count else 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    sys.exit(main())
