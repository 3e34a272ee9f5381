"""Browser-test fixtures: the real ``subsidyhub up`` stack and Debian's Chromium under Playwright.

The stack is :class:`tests.hub.helpers.HubStack` (``launcher.start``, the code behind
``subsidyhub up``: JupyterHub, the npm configurable-http-proxy, the subsidy service, and
``LocalGPUSpawner`` running JupyterLab from this virtualenv, so the jupyterlab-subsidy
extension ``make install`` put there is what the browser sees). Playwright cannot download its
own browsers here, so it drives Debian's: ``chromium-headless-shell`` (``.ci/run`` installs it),
the same Chromium build without the desktop browser around it, which is also what Playwright
runs for headless tests by default. It takes about two thirds of the CPU of ``chromium
--headless`` for the same pages. Where only ``chromium`` is installed, that one is driven;
without either the tests are skipped with the reason. The browser runs in UTC so the times it shows can be
compared with the service's. Screenshots go to ``tests/e2e/artifacts/`` (not committed).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from subsidyhub.ledger import admission
from subsidyhub.ledger.db import Database, now_ms
from subsidyhub.settings import load_settings
from tests.hub.conftest import hub_config
from tests.hub.helpers import HubStack

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one module. Playwright's sync API keeps an asyncio loop running while it is
    open, so it must close before the next layer's asyncio tests (and pytest-jupyter) run."""
    expect.set_options(timeout=30_000)  # a poll, a spawn or a kernel can take seconds
    executable = shutil.which("chromium-headless-shell") or shutil.which("chromium")
    if executable is None:
        pytest.skip(
            "no `chromium-headless-shell` or `chromium` on PATH: "
            "`apt-get install -y chromium-headless-shell` (.ci/run does)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember each phase's report on the test, so ``page`` can tell that the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest, artifacts: Path) -> Iterator[Page]:
    """A fresh browser context per test; on failure its last view is saved as a screenshot."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, timezone_id="UTC")
    context.set_default_timeout(30_000)
    opened = context.new_page()
    try:
        yield opened
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            opened.screenshot(path=artifacts / f"failed-{request.node.name}.png")
        context.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubStack]:
    running = HubStack(tmp_path_factory.mktemp("e2e"), hub_config())
    try:
        yield running.start()
    finally:
        running.close()


def finished_job(
    stack: HubStack, user: str, profile: str, hours: Decimal, *, ended_ago_ms: int
) -> None:
    """A job of ``profile`` for ``hours`` in ``user``'s project (named like them) that ended
    ``ended_ago_ms`` ago, charged by the ledger's own admission and stop, as the hub's stop
    hook has it charged."""
    ended = now_ms() - ended_ago_ms
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SUBSIDYHUB_DATA_DIR", str(stack.data_dir))
        settings = load_settings(stack.config_path)
        db = Database(settings.resolved_database_url())
    try:
        # One transaction: the running service's enforcer must never see the job open (it
        # would charge it up to now, or stop it as a server the hub does not know).
        with db.write() as session:
            admitted = admission.admit(
                session,
                settings,
                username=user,
                project_slug=user,
                profile_slug=profile,
                server_name=f"job-{ended}",
                now_ms=ended - int(hours * 3_600_000),
            )
            admission.stop(session, admitted.session_id, now_ms=ended, reason="stopped")
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def ledger(stack: HubStack) -> Iterator[Database]:
    """The module's stack's own ledger, read directly to see what the stack wrote."""
    db = stack.ledger()
    yield db
    db.dispose()
