"""Issue 17 in the browser: the lab panel plots this server's GPU use, the idle warning offers
Keep it, and pressing it keeps the server.

Real components: the ``subsidyhub up`` stack (JupyterHub, the npm configurable-http-proxy, the
subsidy service and its enforcer, ``LocalGPUSpawner`` running JupyterLab with the
jupyterlab-subsidy extension) and Debian's Chromium under Playwright. The host has no GPU: the
local pool declares one id, and its utilisation comes from a stand-in for dcgm-exporter
serving its exact text format (``idle_gpu.source: exporter``), since no GPU can run here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from subsidyhub.testing.prometheus import FakeDcgmExporter
from tests.e2e.test_jupyterlab import PANEL, STATUS, log_in
from tests.e2e.test_why import project
from tests.hub.helpers import HubStack, HubUser
from tests.hub.test_idle_gpu import idle_stack_config

pytestmark = [pytest.mark.e2e, pytest.mark.hub]


@pytest.fixture(scope="module")
def exporter() -> Iterator[FakeDcgmExporter]:
    with FakeDcgmExporter(gpus=1) as fake:
        fake.set("", "", 0, utilisation=70, memory_mib=12_000)
        yield fake


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, exporter: FakeDcgmExporter
) -> Iterator[HubStack]:
    # Stops after 3 minutes idle, warned from the start of the stretch (3 minutes before):
    # long enough that the test is done before the stop.
    config = idle_stack_config(
        exporter, ["0"], sample_seconds=1, stop_after_minutes=3, warn_before_minutes=3
    )
    running = HubStack(tmp_path_factory.mktemp("idle"), config)
    try:
        yield running.start()
    finally:
        running.close()


def test_the_panel_plots_gpu_use_and_the_idle_warning_keeps_the_server(
    stack: HubStack, exporter: FakeDcgmExporter, page: Page, artifacts: Path
) -> None:
    project(stack, "idle-lab", "100000", "idle-ann")
    ann = HubUser(stack, "idle-ann")
    try:
        assert ann.start_server("gpu-1", "idle-lab").status_code in (201, 202)
        ann.wait_ready()
        log_in(page, stack, "idle-ann")
        page.goto(f"{stack.url}/user/idle-ann/lab")
        page.locator(STATUS).click()
        gpu = page.locator(PANEL).locator("section.jp-subsidy-gpu")
        expect(gpu.locator(".jp-subsidy-gpu-now")).to_contain_text("Now 70%")
        expect(gpu.locator(".jp-subsidy-gpu-idle")).to_contain_text("Busy")
        expect(gpu.locator("svg.jp-subsidy-sparkline polyline.jp-subsidy-gpu-line")).to_have_count(
            1
        )

        exporter.set("", "", 0, utilisation=0, memory_mib=12_000)  # the notebook stops working
        toast = page.get_by_role("alert").filter(has_text="have done no work for")
        expect(toast).to_be_visible(timeout=30_000)
        expect(gpu).to_have_attribute("data-idle", "true")
        expect(gpu.locator(".jp-subsidy-gpu-stop")).to_contain_text("if still idle")
        label = gpu.locator("svg.jp-subsidy-sparkline").get_attribute("aria-label") or ""
        assert "now 0%" in label and "idle for" in label, label
        page.screenshot(path=artifacts / "idle-gpu-warning.png")
        gpu.screenshot(path=artifacts / "panel-gpu.png")

        toast.get_by_role("button", name="Keep it").click()
        expect(
            page.get_by_role("alert").filter(has_text="Kept: this server runs on")
        ).to_be_visible()
        expect(gpu.locator("button.jp-subsidy-keep")).to_have_count(0)
        assert ann.server() is not None
    finally:
        with contextlib.suppress(Exception):
            ann.stop_server()
        ann.close()
