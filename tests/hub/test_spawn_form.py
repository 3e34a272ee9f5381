"""The spawn page end to end: login form, priced profiles, form spawn, a reachable server.

Real components: JupyterHub with SubsidyHub's embedded config (``subsidyhub up``), its login
form (shared password), the npm configurable-http-proxy, the subsidy service as a managed
service (it supplies the figures on the page and admits the spawn), ``LocalGPUSpawner`` and a
real single-user server, on JupyterHub 6 and 5.5. Proves that the page a person sees prices each
profile as the config says, shows the hours the project's available subsidy buys as ``GET me``
reports it, and that submitting the form starts a server reachable through the proxy that
alice logs in to through the hub.
"""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, Decimal
from typing import Any

import pytest

from .conftest import HUB_CONFIG, ON_BOTH_MAJORS
from .helpers import HubStack, HubUser, poll, process_environment, service_get

pytestmark = [pytest.mark.hub, ON_BOTH_MAJORS]

CARD = re.compile(
    r'<label class="sh-card[^"]*" data-profile="(?P<slug>[^"]+)">(?P<body>.*?)</label>', re.S
)
FIGURES = re.compile(
    r"List price HK\$(?P<list>[\d.]+)/h\s*·\s*subsidised HK\$(?P<subsidy>[\d.]+)/h.*?"
    r"(?P<hours>[\d.]+) h left",
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


def offered_figures(page: str) -> dict[str, dict[str, Decimal]]:
    """Per profile on the spawn page: list price, subsidised price and hours left."""
    offered = {}
    for card in CARD.finditer(page):
        figures = FIGURES.search(card["body"])
        assert figures, f"no prices on the card of {card['slug']}: {card['body']}"
        offered[card["slug"]] = {key: Decimal(figures[key]) for key in ("list", "subsidy", "hours")}
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
    assert f"HK${demo['available']} of subsidy available" in page.text

    offered = offered_figures(page.text)
    assert set(offered) == {p["slug"] for p in HUB_CONFIG["profiles"]}
    rate = Decimal(str(HUB_CONFIG["subsidy_rate"]))
    for profile in HUB_CONFIG["profiles"]:
        figures = offered[profile["slug"]]
        assert figures["list"] == list_price(profile), profile["slug"]
        assert figures["subsidy"] == list_price(profile) * rate, profile["slug"]
        hours = (available / figures["subsidy"]).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
        assert figures["hours"] == hours, profile["slug"]
    assert offered["cpu-small"]["list"] == Decimal("1.40")  # 2 cores × 0.50 + 4 GiB × 0.10

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
