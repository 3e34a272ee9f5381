"""A real Prometheus server, and a stand-in for dcgm-exporter for it to scrape, for tests.

Idle-GPU reclaim on Kubernetes reads dcgm-exporter's series through Prometheus. Prometheus
itself is real here (Debian's ``prometheus`` package, started as a private process on a free
port with its own configuration and storage), so the queries, label handling and staleness are
exactly what production gets. dcgm-exporter is not: it needs a GPU and the DCGM host engine,
and no GPU can run here, so :class:`FakeDcgmExporter` serves its ``/metrics`` text in its exact
format, with values the test sets.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from subsidyhub.netutil import free_port, wait_for


def prometheus_unavailable() -> str | None:
    """Why no Prometheus can run here (a skip reason), or ``None`` when one can."""
    if shutil.which("prometheus") is None:
        return "prometheus is not installed (Debian: apt-get install prometheus; .ci/run does)"
    return None


@dataclass(frozen=True, slots=True)
class ScrapeTarget:
    """An endpoint for Prometheus to scrape."""

    address: str  # host:port
    metrics_path: str = "/metrics"


class PrometheusServer:
    """A private Prometheus process scraping ``targets``; a context manager that starts it,
    returns once every target has been scraped, and stops it (removing its storage) on exit."""

    def __init__(self, targets: Sequence[ScrapeTarget], *, scrape_interval: str = "1s") -> None:
        self.targets = tuple(targets)
        self.scrape_interval = scrape_interval
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._root: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def config(self) -> dict[str, object]:
        """The configuration file: one job per target, since a job has one metrics path."""
        return {
            "global": {"scrape_interval": self.scrape_interval},
            "scrape_configs": [
                {
                    "job_name": f"target-{index}",
                    # dcgm-exporter's own pod and namespace labels name the pod using the GPU;
                    # honor_labels keeps them as they are (the GPU Operator's ServiceMonitor
                    # sets it too), where a clash with target labels would rename them
                    # exported_pod and exported_namespace.
                    "honor_labels": True,
                    "metrics_path": target.metrics_path,
                    "static_configs": [{"targets": [target.address]}],
                }
                for index, target in enumerate(self.targets)
            ],
        }

    def start(self, timeout: float = 30.0) -> Self:
        binary = shutil.which("prometheus")
        if binary is None:
            raise FileNotFoundError(prometheus_unavailable())
        self._root = Path(tempfile.mkdtemp(prefix="subsidyhub-prometheus-"))
        config = self._root / "prometheus.yml"
        config.write_text(json.dumps(self.config(), indent=2))  # JSON is YAML
        log = self._root / "prometheus.log"
        with log.open("wb") as output:
            self._process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self._root / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        process = self._process
        try:
            wait_for(
                f"{self.url}/api/v1/query?query=up",
                timeout=timeout,
                ready=self._scraped_every_target,
                alive=lambda: process.poll() is None,
            )
        except RuntimeError:
            tail = log.read_text(errors="replace")[-2000:]
            self.stop()
            raise RuntimeError(f"prometheus exited with {process.returncode}: {tail}") from None
        except TimeoutError:
            self.stop()
            raise TimeoutError(
                f"prometheus at {self.url} did not scrape within {timeout:g} s"
            ) from None
        return self

    def _scraped_every_target(self, answer: httpx.Response) -> bool:
        """Whether every target has been scraped once (up or not).

        Its query API answers once it is ready (``/-/ready``), but ready is not enough: it hands
        new targets to its scrapers on a fixed 5 s tick, so the first scrape comes ~5 s after
        start. Waiting for it here makes any later change visible to a test within one scrape
        interval.
        """
        try:
            results = answer.json()["data"]["result"]
        except (ValueError, KeyError, TypeError):
            return False
        return answer.status_code == 200 and len(results) == len(self.targets)

    def stop(self) -> None:
        try:
            if self._process is not None and self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
        finally:
            if self._root is not None:
                shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


# The fields idle-GPU reclaim reads, with dcgm-exporter's help texts (etc/default-counters.csv).
DCGM_FIELDS = (
    ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB)."),
)


@dataclass(frozen=True, slots=True)
class _GpuSample:
    pod: str
    namespace: str
    utilisation: int
    memory_mib: int


class FakeDcgmExporter:
    """dcgm-exporter's ``/metrics`` for one node with ``gpus`` GPUs, values set by the test.

    The text follows dcgm-exporter's template: ``# HELP`` and ``# TYPE … gauge`` per field, then
    one line per GPU with ``gpu``, ``UUID``, ``pci_bus_id``, ``device``, ``modelName``,
    ``Hostname``, the driver version and the pod mapping (``container``, ``namespace``,
    ``pod``), empty for a GPU that no pod holds. ``pod_label`` and ``namespace_label`` rename
    the last two, as a Prometheus that renamed them serves them again on ``/federate``.
    """

    def __init__(
        self,
        *,
        gpus: int = 8,
        hostname: str = "node-1",
        model: str = "NVIDIA H800",
        pod_label: str = "pod",
        namespace_label: str = "namespace",
    ) -> None:
        self.gpus = gpus
        self.hostname = hostname
        self.model = model
        self.pod_label = pod_label
        self.namespace_label = namespace_label
        self._samples: dict[int, _GpuSample] = {}
        self._lock = threading.Lock()
        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}/metrics"

    def uuid_of(self, gpu_index: int) -> str:
        """The GPU's UUID: stable per host and index, like a real GPU's."""
        return f"GPU-{uuid.uuid5(uuid.NAMESPACE_DNS, f'{self.hostname}/{gpu_index}')}"

    def set(
        self, pod: str, namespace: str, gpu_index: int, utilisation: int, memory_mib: int
    ) -> None:
        """Give GPU ``gpu_index`` to ``pod`` with these values (replacing whoever held it)."""
        if not 0 <= gpu_index < self.gpus:
            raise ValueError(f"GPU {gpu_index} does not exist; this node has 0-{self.gpus - 1}")
        with self._lock:
            self._samples[gpu_index] = _GpuSample(pod, namespace, utilisation, memory_mib)

    def remove(self, pod: str) -> None:
        """The pod is gone: its GPUs are nobody's again."""
        with self._lock:
            for index in [i for i, sample in self._samples.items() if sample.pod == pod]:
                del self._samples[index]

    def clear(self) -> None:
        """Every pod is gone (between tests that share the exporter)."""
        with self._lock:
            self._samples.clear()

    def metrics(self) -> str:
        with self._lock:
            samples = dict(self._samples)
        lines = []
        for metric, help_text in DCGM_FIELDS:
            lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
            for index in range(self.gpus):
                sample = samples.get(index)
                value = 0
                if sample is not None:
                    is_util = metric == "DCGM_FI_DEV_GPU_UTIL"
                    value = sample.utilisation if is_util else sample.memory_mib
                pod = sample.pod if sample else ""
                namespace = sample.namespace if sample else ""
                container = "notebook" if sample else ""
                lines.append(
                    f'{metric}{{gpu="{index}",UUID="{self.uuid_of(index)}",'
                    f'pci_bus_id="00000000:{0x18 + index:02X}:00.0",device="nvidia{index}",'
                    f'modelName="{self.model}",Hostname="{self.hostname}",'
                    f'DCGM_FI_DRIVER_VERSION="535.129.03",container="{container}",'
                    f'{self.namespace_label}="{namespace}",{self.pod_label}="{pod}"}} {value}'
                )
        return "\n".join(lines) + "\n"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = exporter.metrics().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # a scrape a second would drown the test's output

        return Handler

    def __enter__(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown waits up to one interval
            name="fake-dcgm-exporter",
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
