"""The GPU utilisation samplers, each against the most real source this machine has.

Prometheus is real (a private ``prometheus`` process scraping every second); dcgm-exporter is
:class:`FakeDcgmExporter`, since it needs a GPU. NVML is replaced at its boundary (the pynvml
functions the sampler calls), since no GPU or driver is here; its real path is the probe,
``python -m subsidyhub.service.gpu_samplers --require-gpu``, run on a GPU machine, and
:func:`test_probe_cli` runs it against whatever this machine has.
"""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from types import SimpleNamespace

import pynvml  # type: ignore[import-untyped]
import pytest

from subsidyhub.netutil import free_port
from subsidyhub.service import gpu_samplers
from subsidyhub.service.gpu_samplers import (
    ExporterSampler,
    GpuReading,
    NvmlSampler,
    PodSelector,
    PrometheusSampler,
    SamplerUnavailable,
    Target,
    make_sampler,
)
from subsidyhub.settings import parse_settings
from subsidyhub.testing.prometheus import (
    FakeDcgmExporter,
    PrometheusServer,
    ScrapeTarget,
    prometheus_unavailable,
)

JHUB = PodSelector(namespace="jhub")


SCRAPED_WITHIN = 10.0  # seconds for a change to reach Prometheus: ten scrape intervals


async def eventually[T](read: Callable[[], Awaitable[T]], expected: T) -> None:
    """Poll ``read`` until it returns ``expected``: Prometheus sees a change at its next scrape."""
    last: T | None = None
    try:
        async with asyncio.timeout(SCRAPED_WITHIN):
            while True:
                last = await read()
                if last == expected:
                    return
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(
            f"after {SCRAPED_WITHIN:g} s still {last!r}, not {expected!r}"
        ) from None


@pytest.fixture(scope="module")
def shared_exporter() -> Iterator[FakeDcgmExporter]:
    with FakeDcgmExporter() as exporter:
        yield exporter


@pytest.fixture(scope="module")
def prometheus(shared_exporter: FakeDcgmExporter) -> Iterator[PrometheusServer]:
    reason = prometheus_unavailable()
    if reason:
        pytest.skip(reason)
    with PrometheusServer([ScrapeTarget(shared_exporter.address)], scrape_interval="1s") as server:
        yield server


@pytest.fixture
def scraped(
    prometheus: PrometheusServer, shared_exporter: FakeDcgmExporter
) -> Iterator[FakeDcgmExporter]:
    """The exporter that ``prometheus`` scrapes, with no pods when the test starts and ends."""
    shared_exporter.clear()
    yield shared_exporter
    shared_exporter.clear()


@pytest.fixture
def exporter() -> Iterator[FakeDcgmExporter]:
    with FakeDcgmExporter() as fake:
        yield fake


# --- Prometheus ---


@pytest.mark.slow  # Prometheus takes ~6 s to first scrape its targets
async def test_prometheus_reads_busiest_gpu_and_summed_memory(
    prometheus: PrometheusServer, scraped: FakeDcgmExporter
) -> None:
    scraped.set("jupyter-alice", "jhub", 0, utilisation=3, memory_mib=1000)
    scraped.set("jupyter-alice", "jhub", 1, utilisation=80, memory_mib=2000)
    scraped.set("jupyter-bob", "jhub", 2, utilisation=0, memory_mib=500)
    sampler = PrometheusSampler(prometheus.url, JHUB)
    targets = [
        Target(1, (), "jupyter-alice"),
        Target(2, (), "jupyter-bob"),
        Target(3, (), "jupyter-gone"),  # no series: absent, not idle
        Target(4, ("2",), None),  # a server on a host (no pods): its GPU by index
    ]
    await eventually(
        lambda: sampler.read(targets),
        {1: GpuReading(80, 3000, 2), 2: GpuReading(0, 500, 1), 4: GpuReading(0, 500, 1)},
    )

    scraped.set("jupyter-alice", "jhub", 1, utilisation=10, memory_mib=2000)
    scraped.remove("jupyter-bob")
    await eventually(lambda: sampler.read(targets), {1: GpuReading(10, 3000, 2)})


@pytest.mark.slow  # Prometheus takes ~6 s to first scrape its targets
async def test_prometheus_filters_by_namespace(
    prometheus: PrometheusServer, scraped: FakeDcgmExporter
) -> None:
    scraped.set("jupyter-carol", "jhub", 3, utilisation=20, memory_mib=100)
    scraped.set("jupyter-carol", "other", 4, utilisation=90, memory_mib=100)
    targets = [Target(7, (), "jupyter-carol")]
    await eventually(
        lambda: PrometheusSampler(prometheus.url, JHUB).read(targets),
        {7: GpuReading(20, 100, 1)},
    )
    # Unset (the hub's own namespace): every namespace's series count.
    await eventually(
        lambda: PrometheusSampler(prometheus.url, PodSelector()).read(targets),
        {7: GpuReading(90, 200, 2)},
    )


@pytest.mark.slow  # Prometheus takes ~6 s to first scrape its targets
async def test_prometheus_refusing_the_query_is_unavailable(prometheus: PrometheusServer) -> None:
    sampler = PrometheusSampler(
        prometheus.url, PodSelector(namespace_label="not-a-label", namespace="jhub")
    )
    with pytest.raises(SamplerUnavailable) as raised:
        await sampler.read([Target(1, (), "jupyter-alice")])
    message = str(raised.value)
    assert message.startswith(f"Prometheus at {prometheus.url}: HTTP 400: ")
    assert "\n" not in message


async def test_prometheus_unreachable_is_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(SamplerUnavailable) as raised:
        await PrometheusSampler(url, JHUB, timeout_seconds=2).read([Target(1, (), "p")])
    message = str(raised.value)
    assert message.startswith(f"Prometheus at {url}: cannot connect")
    assert "\n" not in message


def test_promql_escapes_the_namespace() -> None:
    selector = PodSelector("exported_pod", "exported_namespace", 'we"ird\\ns')
    assert selector.promql() == (
        '{__name__=~"DCGM_FI_DEV_GPU_UTIL|DCGM_FI_DEV_FB_USED",exported_namespace="we\\"ird\\\\ns"}'
    )


# --- dcgm-exporter, read directly ---


async def test_exporter_read_directly(exporter: FakeDcgmExporter) -> None:
    exporter.set("jupyter-alice", "jhub", 0, utilisation=3, memory_mib=1000)
    exporter.set("jupyter-alice", "jhub", 5, utilisation=64, memory_mib=24)
    exporter.set("jupyter-alice", "other", 6, utilisation=99, memory_mib=1)
    targets = [Target(1, (), "jupyter-alice"), Target(2, (), "jupyter-bob")]
    readings = await ExporterSampler([exporter.url], JHUB).read(targets)
    assert readings == {1: GpuReading(64, 1024, 2)}


async def test_exporter_pod_and_namespace_labels_are_configurable() -> None:
    renamed = FakeDcgmExporter(pod_label="exported_pod", namespace_label="exported_namespace")
    with renamed:
        renamed.set("jupyter-alice", "jhub", 0, utilisation=42, memory_mib=7)
        targets = [Target(1, (), "jupyter-alice")]
        assert await ExporterSampler([renamed.url], JHUB).read(targets) == {}
        selector = PodSelector("exported_pod", "exported_namespace", "jhub")
        readings = await ExporterSampler([renamed.url], selector).read(targets)
    assert readings == {1: GpuReading(42, 7, 1)}


async def test_exporter_down_costs_only_its_own_servers(
    exporter: FakeDcgmExporter, caplog: pytest.LogCaptureFixture
) -> None:
    down = f"http://127.0.0.1:{free_port()}/metrics"
    exporter.set("jupyter-alice", "jhub", 0, utilisation=12, memory_mib=300)
    sampler = ExporterSampler([down, exporter.url], JHUB, timeout_seconds=2)
    with caplog.at_level(logging.WARNING, logger=gpu_samplers.__name__):
        readings = await sampler.read([Target(1, (), "jupyter-alice")])
    assert readings == {1: GpuReading(12, 300, 1)}
    assert down in caplog.text


async def test_every_exporter_down_is_unavailable() -> None:
    downs = [f"http://127.0.0.1:{free_port()}/metrics" for _ in range(2)]
    with pytest.raises(SamplerUnavailable) as raised:
        await ExporterSampler(downs, JHUB, timeout_seconds=2).read([Target(1, (), "p")])
    message = str(raised.value)
    assert all(url in message for url in downs)
    assert "\n" not in message


# --- NVML, replaced at its boundary ---

MIB = 1024 * 1024
# Device id → (utilisation %, memory used in bytes); "2" has fallen off the bus.
DEVICES = {"0": (3, 1024 * MIB), "1": (80, 2048 * MIB), "GPU-5e1f0c2a": (40, 512 * MIB)}
LOST = "2"


class FakeNvml:
    """The pynvml functions NvmlSampler calls, over :data:`DEVICES`; handles are the ids."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, driver: bool = True) -> None:
        self.inits = 0
        self.driver = driver
        for name in (
            "nvmlInit",
            "nvmlDeviceGetCount",
            "nvmlDeviceGetHandleByIndex",
            "nvmlDeviceGetHandleByUUID",
            "nvmlDeviceGetUtilizationRates",
            "nvmlDeviceGetMemoryInfo",
        ):
            monkeypatch.setattr(pynvml, name, getattr(self, name))

    def nvmlInit(self) -> None:
        self.inits += 1
        if not self.driver:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    def nvmlDeviceGetCount(self) -> int:
        return 3

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        if str(index) == LOST:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return self._handle(str(index))

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        return self._handle(uuid)

    def _handle(self, device: str) -> str:
        if device not in DEVICES:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return device

    def nvmlDeviceGetUtilizationRates(self, handle: str) -> SimpleNamespace:
        return SimpleNamespace(gpu=DEVICES[handle][0], memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle: str) -> SimpleNamespace:
        return SimpleNamespace(used=DEVICES[handle][1], total=80 * 1024 * MIB)


async def test_nvml_reads_busiest_gpu_and_skips_a_failing_one(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    nvml = FakeNvml(monkeypatch)
    sampler = NvmlSampler()
    targets = [
        Target(1, ("0", "1"), None),
        Target(2, ("GPU-5e1f0c2a",), None),
        Target(3, ("1", LOST), None),  # the lost GPU must not hide the other
        Target(4, (LOST,), None),
        Target(5, (), "jupyter-alice"),  # no host GPUs: not NVML's to read
    ]
    expected = {
        1: GpuReading(80, 3072, 2),
        2: GpuReading(40, 512, 1),
        3: GpuReading(80, 2048, 1),
    }
    with caplog.at_level(logging.WARNING, logger=gpu_samplers.__name__):
        assert await sampler.read(targets) == expected
        assert await sampler.read(targets) == expected
    assert nvml.inits == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "one warning per failing device, not one per sample"
    assert f"GPU {LOST} cannot be read" in warnings[0].getMessage()


async def test_nvml_without_driver_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeNvml(monkeypatch, driver=False)
    with pytest.raises(SamplerUnavailable, match=r"^NVML: NVML Shared Library Not Found$"):
        await NvmlSampler().read([Target(1, ("0",), None)])


def test_probe_prints_every_gpu(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    FakeNvml(monkeypatch)
    assert gpu_samplers.main(["--require-gpu"]) == 1  # GPU 2 is lost
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "gpu 0: 3% busy, 1024 MiB used",
        "gpu 1: 80% busy, 2048 MiB used",
        "gpu 2: cannot be read (see the warning above)",
    ]


def test_probe_cli() -> None:
    """The real NVML path: on a GPU machine every GPU is read; elsewhere it says none is there."""
    command = [sys.executable, "-m", "subsidyhub.service.gpu_samplers"]
    required = subprocess.run([*command, "--require-gpu"], capture_output=True, text=True)
    if required.returncode == 0:  # a machine with NVIDIA GPUs
        lines = required.stdout.splitlines()
        assert lines and all(re.fullmatch(r"gpu \d+: \d+% busy, \d+ MiB used", x) for x in lines)
        return
    assert required.returncode == 1
    assert required.stdout == ""
    assert re.fullmatch(r"No NVIDIA GPU found \(.+\)\.\n", required.stderr)
    optional = subprocess.run(command, capture_output=True, text=True)
    assert optional.returncode == 0
    assert re.fullmatch(r"No NVIDIA GPU found \(.+\)\.\n", optional.stdout)


# --- which sampler ---


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"backend": "local"}, NvmlSampler),
        ({"backend": "docker", "idle_gpu": {"source": "off"}}, None),
        ({"backend": "kubernetes"}, None),
        (
            {"backend": "kubernetes", "idle_gpu": {"prometheus_url": "http://prometheus:9090"}},
            PrometheusSampler,
        ),
        (
            {"backend": "kubernetes", "idle_gpu": {"exporter_urls": ["http://n1:9400/metrics"]}},
            ExporterSampler,
        ),
    ],
)
def test_make_sampler_follows_the_source(config: dict[str, object], expected: type | None) -> None:
    sampler = make_sampler(parse_settings(config, "test"))
    if expected is None:
        assert sampler is None
    else:
        assert type(sampler) is expected


def test_make_sampler_passes_the_labels_and_namespace() -> None:
    config = {
        "backend": "kubernetes",
        "kubernetes": {"namespace": "jhub"},
        "idle_gpu": {
            "prometheus_url": "http://prometheus:9090/",
            "pod_label": "exported_pod",
            "namespace_label": "exported_namespace",
            "timeout_seconds": 3,
        },
    }
    sampler = make_sampler(parse_settings(config, "test"))
    assert isinstance(sampler, PrometheusSampler)
    assert sampler.url == "http://prometheus:9090"
    assert sampler.selector == PodSelector("exported_pod", "exported_namespace", "jhub")
    assert sampler.timeout_seconds == 3
