"""The spawn page end to end: login form, priced profiles, form spawn, a reachable server.

Real components: JupyterHub with SubsidyHub's embedded config (``subsidyhub up``), its login
form (shared password), the npm configurable-http-proxy, the subsidy service as a managed
service (it supplies the figures on the page and admits the spawn), ``LocalGPUSpawner`` and a
real single-user server, on JupyterHub 6 and 5.5. Proves that the page a person sees prices each
profile as the config says, shows how long the project's available subsidy (as ``GET me``
reports it) runs each profile and that the balance is what binds, checks the first profile
that can start, and that submitting the form starts a server reachable through the proxy that
alice logs in to through the hub.
"""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, Decimal
from typing import Any

import httpx
import pytest

from subsidyhub.money import format_money, parse_amount
from subsidyhub.netutil import tls_context
from subsidyhub.timeutil import format_duration

from ..conftest import HUB_CONFIG, ON_BOTH_MAJORS
from ..helpers import HubStack, HubUser, poll, process_environment, service_get

pytestmark = [pytest.mark.hub, ON_BOTH_MAJORS]

CARD = re.compile(
    r'<label class="sh-card[^"]*" data-profile="(?P<slug>[^"]+)">(?P<body>.*?)</label>', re.S
)
FIGURES = re.compile(
    r"List price HK\$(?P<list>[\d.]+)/h\s*·\s*subsidised HK\$(?P<subsidy>[\d.]+)/h.*?"
    r'data-binding="(?P<binding>\w+)"[^>]*>(?P<left>[^<]+) left · ',
    re.S,
)


def list_price(profile: dict[str, Any]) -> Decimal:
    """The hourly list price of a profile, computed from the test config on its own."""
    prices = HUB_CONFIG["prices"]
    price = Decimal(str(profile["cpu"])) * Decimal(str(prices["cpu_core"]))
    price += Decimal(str(profile["memory_gib"])) * Decimal(str(prices["memory_gib"]))
    if "gpus" in profile:
        gpus = profile["gpus"]
        price += gpus["count"] * Decimal(str(prices["gpu"][gpus["type"]]))
    return price


def offered_figures(page: str) -> dict[str, dict[str, Any]]:
    """Per profile on the spawn page: list price, subsidised price, time left and what binds."""
    offered = {}
    for card in CARD.finditer(page):
        figures = FIGURES.search(card["body"])
        assert figures, f"no prices on the card of {card['slug']}: {card['body']}"
        offered[card["slug"]] = {key: Decimal(figures[key]) for key in ("list", "subsidy")} | {
            "left": figures["left"],
            "binding": figures["binding"],
        }
    return offered


def test_spawn_page_prices_profiles_and_the_form_starts_a_reachable_server(
    hub: HubStack, alice: HubUser
) -> None:
    token = alice.new_token()

    def idle_project() -> dict[str, Any] | None:
        # Nothing running in the project: its available subsidy stands still while we compare.
        me = service_get(hub, "me", token).json()
        demo = next(p for p in me["projects"] if p["slug"] == "demo")
        return demo if demo["running_servers"] == 0 else None

    demo = poll(idle_project, timeout=30, what="project demo has no running server")
    page = alice.http.get("/hub/spawn")
    assert page.status_code == 200
    assert demo == idle_project(), "the project's figures moved while the page was rendered"
    available = Decimal(demo["available"])
    # Rounded to the cent, by the one formatter (docs/decisions/display.md).
    shown = format_money(parse_amount(demo["available"], allow_negative=True), "HKD")
    assert f"{shown} of subsidy available" in page.text

    offered = offered_figures(page.text)
    assert set(offered) == {p["slug"] for p in HUB_CONFIG["profiles"]}
    rate = Decimal(str(HUB_CONFIG["subsidy_rate"]))
    for profile in HUB_CONFIG["profiles"]:
        figures = offered[profile["slug"]]
        assert figures["list"] == list_price(profile), profile["slug"]
        assert figures["subsidy"] == list_price(profile) * rate, profile["slug"]
        # demo has no session cap or weekly limit: the balance binds.
        seconds = int((available * 3600 / figures["subsidy"]).to_integral_value(ROUND_DOWN))
        assert figures["left"] == format_duration(seconds * 1000), profile["slug"]
        assert figures["binding"] == "balance", profile["slug"]
    assert offered["cpu-small"]["list"] == Decimal("1.40")  # 2 cores × 0.50 + 4 GiB × 0.10
    # The first profile that can start is chosen, and Start is live.
    assert re.search(r'value="cpu-small"\s+checked', page.text), page.text
    assert re.search(r'<button type="submit"[^>]*>Start</button>', page.text)
    assert "disabled>Start" not in page.text

    submitted = alice.http.post(
        "/hub/spawn", data={"profile": "cpu-small", "project": "demo", "_xsrf": alice.xsrf}
    )
    assert submitted.status_code == 200, submitted.text[-2000:]
    server = alice.wait_ready()
    assert server["user_options"] == {"profile": "cpu-small", "project": "demo"}

    # Reachable through the proxy, and alice logs in to it through the hub's OAuth.
    home = hub.data_dir / "homes" / "alice"
    (home / "hello.txt").write_text("served from alice's home\n", encoding="utf-8")
    served = alice.http.get("/user/alice/files/hello.txt")
    assert served.status_code == 200, served.text[-2000:]
    assert served.text == "served from alice's home\n"
    assert "/hub/api/oauth2/authorize" in [r.url.path for r in served.history]
    lab = alice.http.get("/user/alice/lab")
    assert lab.status_code == 200
    assert str(lab.url).endswith("/user/alice/lab")
    assert "jupyter-config-data" in lab.text
    status = alice.http.get("/user/alice/api/status")
    assert status.status_code == 200
    assert "started" in status.json()

    environment = process_environment(hub.server_process("alice")[0])
    assert environment["JUPYTERHUB_USER"] == "alice"
    assert environment["JUPYTERHUB_DEFAULT_URL"] == "/lab"
    assert environment["SUBSIDYHUB_PROFILE"] == "cpu-small"
    assert environment["SUBSIDYHUB_PROJECT"] == "demo"
    assert environment["CUDA_VISIBLE_DEVICES"] == "", "a CPU profile must see no GPU"


def test_a_hub_admin_in_no_project_lands_on_a_pointer_to_the_admin_page(hub: HubStack) -> None:
    """The hub's admin belongs to no project: instead of a form whose Start could only be
    refused, the page says so and links to the subsidy admin page."""
    with httpx.Client(
        base_url=hub.url, follow_redirects=True, timeout=30, verify=tls_context()
    ) as http:
        http.get("/hub/login").raise_for_status()
        xsrf = http.cookies.get("_xsrf", path="/hub/")
        http.post(
            "/hub/login",
            data={"username": "admin", "password": hub.admin_password, "_xsrf": xsrf},
        ).raise_for_status()
        page = http.get("/hub/spawn")
        assert page.status_code == 200
        assert 'id="sh-admin-landing"' in page.text, page.text[-3000:]
        assert "You are not a member of any project" in page.text
        link = re.search(r'id="sh-admin-link" href="([^"]+)"', page.text)
        assert link and link[1].endswith("/services/subsidy/admin/"), link
        assert re.search(r'<button type="submit"[^>]*disabled>Start</button>', page.text)
        assert 'name="profile"' not in page.text
