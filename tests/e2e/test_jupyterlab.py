"""What a researcher sees, in a real browser: spawn page, status bar, panel, widget, warnings.

Real components: the ``subsidyhub up`` stack (JupyterHub with SubsidyHub's spawn page, the npm
configurable-http-proxy, the subsidy service, ``LocalGPUSpawner`` running JupyterLab with the
jupyterlab-subsidy extension from this virtualenv), a real kernel with ipywidgets, the
``subsidyhub admin`` CLI, and Debian's Chromium driven by Playwright.

Each test uses a fresh user (JupyterLab restores a user's last workspace) alone in a project
of the same name. Balance thresholds are fractions of the allocation, so only spending can
cross them, and no test can wait hours: the project's other work is written with the ledger's
own admission and stop (GPU jobs that finished a minute ago, charged as the hub's stop hook
would charge them) while the page is open, first to fall below 20% of the allocation, then to
leave minutes of subsidy; the page must warn within a few polls. (A negative CLI correction
would cross the thresholds too, but the service then overstates the time left: see
``predict_exhaustion``, which skips negative allocation rows.) The user's JupyterLab settings
set the poll to 2 s.

Screenshots land in ``tests/e2e/artifacts/``: the spawn page, a refusal, the status bar,
the panel (and its 7-day spending plot), the notebook with the widget, and each warning.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from jupyterlab_subsidy.figures import status_line
from tests.e2e.conftest import finished_job
from tests.hub.helpers import HubStack, HubUser, service_get, signed_in

pytestmark = [pytest.mark.e2e, pytest.mark.hub]

HOUR_MS = 3_600_000
GPU_1_SUBSIDY_PER_HOUR = Decimal("32.48")  # 70% of 8 cores, 64 GiB and one H800 (46.40/h)
STATUS = "#jp-subsidy-status"
PANEL = "#jp-subsidy-panel"


# -- setting the scene --------------------------------------------------------------------


def project_for(stack: HubStack, user: str, amount: str) -> None:
    """A project named after ``user``, with ``amount`` valid since yesterday, and its member."""
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat(timespec="seconds")
    stack.admin("project", "create", user, "--name", f"Lab of {user}")
    stack.admin("allocate", user, amount, "--from", since, "--note", "grant")
    stack.admin("member", "add", user, user)


def spend_down_to(stack: HubStack, user: str, balance: Decimal, target: Decimal) -> None:
    """A job that just finished, long enough to leave about ``target`` of ``balance``."""
    hours = (balance - target) / GPU_1_SUBSIDY_PER_HOUR
    finished_job(stack, user, "gpu-1", hours, ended_ago_ms=60_000)


def poll_every_two_seconds(stack: HubStack, user: str) -> None:
    """The user's own JupyterLab setting, written where their server will read it."""
    folder = stack.data_dir / "homes" / user / ".jupyter/lab/user-settings/jupyterlab-subsidy"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plugin.jupyterlab-settings").write_text(json.dumps({"refreshSeconds": 2}))


@pytest.fixture
def researcher(stack: HubStack, request: pytest.FixtureRequest) -> Iterator[HubUser]:
    """A fresh user named after the test (logged in over HTTP for tokens and cleanup)."""
    name = request.node.name.removeprefix("test_").replace("_", "-")[:24].strip("-")
    project_for(stack, name, "100")
    yield from signed_in(stack, name)


def log_in(page: Page, stack: HubStack, user: str) -> None:
    page.goto(f"{stack.url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", stack.password)
    page.click("#login_submit")
    page.wait_for_url(re.compile(r".*/(hub/(home|spawn).*|user/.*)$"))


def own_project(me: dict[str, Any], slug: str) -> dict[str, Any]:
    return next(p for p in me["projects"] if p["slug"] == slug)


def toast(page: Page, text: str) -> Any:
    return page.locator(".Toastify__toast", has_text=text)


# -- the tests ----------------------------------------------------------------------------


def test_spawn_page_prices_profiles_and_refusals_read_clearly(
    stack: HubStack, page: Page, artifacts: Path
) -> None:
    user = "refused-reader"
    stack.admin("project", "create", user, "--name", "Nearly empty lab")
    stack.admin("allocate", user, "0.05", "--note", "leftover")
    stack.admin("member", "add", user, user)
    stack.admin("quota", "set", user, "--profiles", "cpu-small")

    log_in(page, stack, user)
    page.goto(f"{stack.url}/hub/spawn")
    expect(page.locator("h1")).to_have_text("Start a server")
    cpu = page.locator("label.sh-card[data-profile=cpu-small]")
    gpu = page.locator("label.sh-card[data-profile=gpu-1]")
    expect(cpu).to_contain_text("List price HK$1.40/h")
    expect(cpu.locator(".sh-reason")).to_contain_text(
        "Project Nearly empty lab has HK$0.05 of subsidy left"
    )
    expect(gpu.locator(".sh-reason")).to_have_text(
        "Profile PyTorch · 1× H800 is not allowed in project Nearly empty lab; "
        "allowed: CPU · 2 cores · 4 GiB."
    )
    # HK$0.05 at HK$0.98/h: 3 minutes, and the balance is what binds.
    expect(cpu.locator(".sh-left")).to_have_text("3 m left · project balance")
    # Nothing can start: nothing is chosen, Start is off, and a sentence says why.
    expect(page.locator("input[name=profile]:checked")).to_have_count(0)
    expect(page.locator("#spawn_form button[type=submit]")).to_be_disabled()
    expect(page.locator(".sh-none")).to_have_text(
        "No profile can start in Nearly empty lab now; each one above says why."
    )
    page.screenshot(path=artifacts / "spawn-page-refused-profiles.png", full_page=True)

    # Posted anyway (an old tab, a script): the refusal reads as a message to a person.
    page.evaluate("document.getElementById('spawn_form').submit()")
    refusal = page.locator("#sh-refusal")
    expect(refusal).to_contain_text("Your server was not started")
    expect(refusal).to_contain_text("Project Nearly empty lab has HK$0.05 of subsidy left")
    expect(refusal).not_to_contain_text("SpawnException")
    page.screenshot(path=artifacts / "spawn-refusal.png", full_page=True)


def test_balance_in_jupyterlab_widget_and_warnings(
    stack: HubStack, researcher: HubUser, page: Page, artifacts: Path
) -> None:
    slug = researcher.name
    job_day = (datetime.now(UTC) - timedelta(hours=3)).date().isoformat()  # the charge's UTC day
    finished_job(
        stack, slug, "gpu-1", Decimal(2), ended_ago_ms=HOUR_MS
    )  # 2 h × HK$32.48 of subsidy
    poll_every_two_seconds(stack, slug)
    token = researcher.new_token("tests/e2e")

    # The spawn page: both profiles allowed, priced, with the hours the balance buys.
    log_in(page, stack, slug)
    page.goto(f"{stack.url}/hub/spawn")
    expect(page.locator("label.sh-card[data-profile=gpu-1] .sh-left")).to_contain_text(
        " left · project balance"
    )
    page.screenshot(path=artifacts / "spawn-page.png", full_page=True)
    page.click("label.sh-card[data-profile=cpu-small]")
    page.click("#spawn_form button[type=submit]")

    # The status bar shows what GET me says (read before and after: the balance moves).
    status = page.locator(STATUS)
    expect(status).to_contain_text(" left", timeout=90_000)
    before = own_project(service_get(stack, "me", token).json(), slug)
    shown = status.inner_text()
    after = own_project(service_get(stack, "me", token).json(), slug)
    assert shown in {status_line(before), status_line(after)}, (shown, before, after)
    assert shown.startswith(f"{slug} · HK$35.0"), shown  # 100 - 64.96, less seconds of CPU
    expect(status).to_have_attribute("data-severity", "ok")
    page.locator("#jp-main-statusbar").screenshot(path=artifacts / "status-bar.png")
    # The page config the lab got: no build check (a `yarn config` per page load), no rebuild.
    lab_config = json.loads(page.locator("#jupyter-config-data").text_content() or "{}")
    assert (lab_config["buildCheck"], lab_config["buildAvailable"]) == (False, False)

    # The panel: the project's figures and this server's rate.
    status.click()
    panel = page.locator(PANEL)
    project = panel.locator(f".jp-subsidy-project[data-project='{slug}']")
    expect(project).to_contain_text("HK$100.00")
    expect(project).to_contain_text("70% of the list price")
    expect(panel.locator(".jp-subsidy-server")).to_contain_text("cpu-small")
    expect(panel.locator(".jp-subsidy-server")).to_contain_text(
        "HK$1.40/h: HK$0.98 subsidy + HK$0.42 co-pay"
    )
    page.screenshot(path=artifacts / "panel.png")
    # The last 7 days of spending: one bar per day; the amounts as text, the job's on its day.
    spending = project.locator(".jp-subsidy-figure")
    expect(spending.locator("svg .jp-subsidy-day")).to_have_count(7)
    spending.locator("summary").click()
    expect(spending.locator("tr", has_text=job_day)).to_contain_text("HK$64.96")
    expect(spending.locator("tr", has_text=job_day)).to_contain_text("HK$27.84")
    panel.screenshot(path=artifacts / "panel-spending.png")

    # A notebook: the widget shows the same figures; cost() prices a job with Decimals.
    page.click(".jp-LauncherCard[data-category='Notebook']")
    # The kernel's status in the status bar: a cell run before the kernel is connected is lost.
    expect(page.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle"))).to_be_visible(
        timeout=60_000
    )
    page.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
    page.keyboard.type("from jupyterlab_subsidy import balance, cost\nbalance")
    page.keyboard.press("Shift+Enter")
    widget = page.locator(".jp-subsidy-widget")
    expect(widget).to_contain_text(f"{slug} · HK$35.0", timeout=60_000)
    expect(widget).to_contain_text("HK$100.00")
    page.keyboard.type('cost(profile="gpu-1", hours=3)')
    page.keyboard.press("Shift+Enter")
    estimate = page.locator(".jp-subsidy-cost")
    # 3 h of gpu-1: list 3 × 46.40, subsidy 70% of it, co-pay the rest; HK$35 cannot pay.
    for figure in ("HK$139.20", "HK$97.44", "HK$41.76", "Not covered"):
        expect(estimate).to_contain_text(figure, timeout=60_000)
    page.screenshot(path=artifacts / "notebook-widget.png")

    # Below 20% of the allocation: a warning notification, and the status bar turns orange.
    me = own_project(service_get(stack, "me", token).json(), slug)
    spend_down_to(stack, slug, Decimal(me["balance"]), Decimal("0.15") * Decimal(me["allocated"]))
    expect(toast(page, "less than 20% of its allocation left")).to_be_visible()
    expect(status).to_have_attribute("data-severity", "warning")
    page.wait_for_timeout(800)  # the toast slides in
    page.screenshot(path=artifacts / "warning-20-percent.png")

    # Minutes of subsidy left: the stop is announced with its time, and the bar turns red.
    me = own_project(service_get(stack, "me", token).json(), slug)
    spend_down_to(stack, slug, Decimal(me["balance"]), Decimal("0.40"))  # ~24 min at 0.98/h
    notice = toast(page, "Save your work: this server stops in")
    expect(notice).to_be_visible()
    expect(status).to_have_attribute("data-severity", "critical")
    text = notice.inner_text()
    # The time, after its day when the stop falls after midnight ("Tue, Dec 1, 00:03").
    match = re.search(
        rf"this server stops in \d+ m \d+ s \((?:\w+, \w+ \d+, )?(\d\d:\d\d)\) because project "
        rf"Lab of {slug}'s subsidy runs out",
        text,
    )
    assert match, text
    # It counts down in place, and the forecast raises no second alarm beside it.
    expect(notice).not_to_have_text(text, timeout=5_000)
    expect(toast(page, "Save your work")).to_have_count(1)
    me = own_project(service_get(stack, "me", token).json(), slug)
    stop_at = datetime.fromisoformat(me["exhaustion_at"].replace("Z", "+00:00"))
    shown_at = {(stop_at + timedelta(minutes=d)).strftime("%H:%M") for d in (-1, 0, 1)}
    assert match[1] in shown_at, (match[1], me["exhaustion_at"])
    page.wait_for_timeout(800)
    page.screenshot(path=artifacts / "stop-notice.png")
    page.locator("#jp-main-statusbar").screenshot(path=artifacts / "status-bar-critical.png")


def test_a_course_student_sees_their_allowance_never_the_course_balance(
    stack: HubStack, page: Page, artifacts: Path, tmp_path: Path
) -> None:
    course, student = "e2e-course", "e2e-student"
    stack.admin(
        "course", "create", course, "--name", "Deep learning lab", "--lecturer", "e2e-lecturer",
        "--gpu-hours-per-week", "4", "--max-session-hours", "2", "--profiles", "cpu-small,gpu-1",
    )  # fmt: skip
    stack.admin("allocate", course, "500", "--note", "term grant")
    roster = tmp_path / "roster.csv"
    roster.write_text(f"username,name\n{student},Student One\n", encoding="utf-8")
    assert "1 added" in stack.admin("course", "enrol", course, str(roster), "--apply")
    poll_every_two_seconds(stack, student)
    user = HubUser(stack, student)
    try:
        log_in(page, stack, student)
        page.goto(f"{stack.url}/hub/spawn")
        allowance = page.locator("#sh-allowance")
        expect(allowance).to_contain_text("4.00 of 4 GPU-hours left this week")
        expect(allowance).to_contain_text("sessions up to 2 h")
        # 4 GPU-hours left this week, but a session may last 2 h: the cap binds.
        expect(page.locator("label.sh-card[data-profile=gpu-1] .sh-left")).to_have_text(
            "2 h 0 m left · session cap"
        )
        # A student sees their allowance, never money: no balance, prices or co-pay.
        content = page.content()
        assert "HK$" not in content and "co-pay" not in content
        assert "available" not in allowance.inner_text()
        page.screenshot(path=artifacts / "spawn-page-student.png", full_page=True)
        page.click("label.sh-card[data-profile=cpu-small]")
        page.click("#spawn_form button[type=submit]")

        status = page.locator(STATUS)
        expect(status).to_have_text(f"{course} · 0.00 of 4 GPU-h this week", timeout=90_000)
        me = own_project(service_get(stack, "me", user.new_token("tests/e2e")).json(), course)
        assert status.inner_text() == status_line(me)
        assert "balance" not in me and "allocated" not in me
        status.click()
        project = page.locator(f"{PANEL} .jp-subsidy-project[data-project='{course}']")
        expect(project).to_contain_text("GPU-h this week")
        expect(project).not_to_contain_text("HK$500")
        page.screenshot(path=artifacts / "panel-student.png")
    finally:
        user.stop_server()
        user.close()
