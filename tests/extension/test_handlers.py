"""The server extension's handlers in a real Jupyter server against a real subsidy service.

Real components: ``jupyter_server`` with the jupyterlab_subsidy extension loaded (pytest-jupyter),
the subsidy service's app on a SQLite ledger behind uvicorn, and a real JupyterHub that checks
every token the service sees. Proves that ``subsidy/me`` is the service's ``GET me`` for the
server's own token plus this server's identity; that many tabs cost the service one request
per cache interval; that the service's own error messages reach the browser unchanged, and an
unreachable or unconfigured service says so; that polling does not count as activity (or an
open tab would keep an idle, charged server from ever being culled); that every route needs
authentication; and that the kernel side (``cost``, the ``balance`` widget) reads the same
figures with the same token.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from jupyterlab_subsidy.kernel import KernelClient, SubsidyError
from jupyterlab_subsidy.location import locate_service
from jupyterlab_subsidy.routes import SubsidyState
from jupyterlab_subsidy.widget import BalanceWidget
from subsidyhub.netutil import free_port
from tests.service.helpers import HOUR, Service

from .conftest import Fetch, body

pytestmark = pytest.mark.hub

CPU = {"user": "alice", "profile": "cpu-small", "server_name": "", "project": "alpha"}
ROUTES = ("me", "profiles", "spending", "projects/alpha/statement")


def state_of(serverapp: Any) -> SubsidyState:
    state: SubsidyState = serverapp.web_app.settings["jupyterlab_subsidy"]
    return state


def test_me_is_the_services_answer_plus_this_server(fetch: Fetch, service: Service) -> None:
    service.ok("POST", "api/v1/admissions", who="hub", status=201, json=CPU)
    service.clock.advance(HOUR)

    response = fetch("subsidy", "me")

    assert response.code == 200
    me = body(response)
    direct = service.ok("GET", "api/v1/me", who="alice")
    assert me == direct | {
        "server": {"user": "alice", "name": "", "project": "alpha", "profile": "cpu-small"}
    }
    alpha = next(p for p in me["projects"] if p["slug"] == "alpha")
    # cpu-small: 2 cores + 4 GiB = 1.40/h list, 0.98/h subsidy; one hour of it is gone.
    assert (alpha["balance"], alpha["burn_rate_per_hour"]) == ("499.02", "0.98")
    assert me["sessions"][0]["cost"] == {"list": "1.40", "subsidy": "0.98", "copay": "0.42"}
    assert response.headers["Cache-Control"] == "no-store"


def test_many_tabs_cost_the_service_one_request(
    fetch: Fetch, jp_fetch: Any, jp_asyncio_loop: asyncio.AbstractEventLoop, jp_serverapp: Any
) -> None:
    async def ten_tabs() -> list[Any]:
        return await asyncio.gather(*(jp_fetch("subsidy", "me") for _ in range(10)))

    answers = jp_asyncio_loop.run_until_complete(ten_tabs())
    answers.append(fetch("subsidy", "me"))  # a tab a moment later is served from the cache

    assert {answer.code for answer in answers} == {200}
    assert len({answer.body for answer in answers}) == 1
    assert state_of(jp_serverapp).client.requests_made == 1


@pytest.mark.parametrize("extension_config", [{"cache_seconds": 0}])
def test_each_poll_reads_the_service_when_the_cache_is_off(
    fetch: Fetch, service: Service, jp_serverapp: Any
) -> None:
    service.ok("POST", "api/v1/admissions", who="hub", status=201, json=CPU)
    first = body(fetch("subsidy", "me"))
    service.clock.advance(HOUR)
    second = body(fetch("subsidy", "me"))

    assert state_of(jp_serverapp).client.requests_made == 2
    assert first["at"] != second["at"]


def test_spending_is_the_services_last_seven_days(
    fetch: Fetch, service: Service, jp_serverapp: Any
) -> None:
    admitted = service.ok("POST", "api/v1/admissions", who="hub", status=201, json=CPU)
    service.clock.advance(HOUR)
    service.ok("POST", f"api/v1/sessions/{admitted['session_id']}/stop", who="hub", json={})

    response = fetch("subsidy", "spending")
    fetch("subsidy", "spending")  # another tab: from the cache

    assert response.code == 200
    spending = body(response)
    assert spending == service.ok("GET", "api/v1/me/spending?days=7", who="alice")
    assert [p["slug"] for p in spending["projects"]] == ["alpha"]
    days = spending["projects"][0]["days"]
    assert [d["date"] for d in days][-2:] == ["2026-11-30", "2026-12-01"]
    assert days[-1] == {"date": "2026-12-01", "list": "1.40", "subsidy": "0.98", "copay": "0.42"}
    assert state_of(jp_serverapp).client.requests_made == 1
    assert response.headers["Cache-Control"] == "no-store"


def test_profiles_are_the_users_offers(fetch: Fetch, service: Service) -> None:
    response = fetch("subsidy", "profiles")

    assert response.code == 200
    assert body(response) == service.ok("GET", "api/v1/users/alice/profiles", who="alice")


def test_service_refusals_keep_their_status_and_message(fetch: Fetch, service: Service) -> None:
    # alice is a member of alpha, not its manager: the statement is not hers to read.
    direct = service.call("GET", "api/v1/projects/alpha/statement", who="alice")
    assert direct.status_code == 403

    response = fetch("subsidy", "projects", "alpha", "statement")

    assert response.code == 403
    assert body(response) == {"status": 403, "message": direct.json()["message"]}


@pytest.mark.parametrize(
    "extension_config", [{"service_url": f"http://127.0.0.1:{free_port()}/services/subsidy/"}]
)
def test_unreachable_service_is_a_503_that_says_so(fetch: Fetch) -> None:
    response = fetch("subsidy", "me")

    assert response.code == 503
    message = body(response)["message"]
    assert message.startswith("The subsidy service is not reachable (")
    assert message.endswith("Running servers are not affected.")


def test_without_a_service_url_the_answer_says_what_to_set(fetch: Fetch, jp_serverapp: Any) -> None:
    state = state_of(jp_serverapp)
    state.environ.pop("SUBSIDYHUB_SERVICE_URL")

    response = fetch("subsidy", "me")

    assert response.code == 503
    message = body(response)["message"]
    assert message.startswith("jupyterlab-subsidy does not know where the subsidy service is")
    assert "set it (or c.SubsidyExtension.service_url)" in message


def test_polling_is_not_activity(fetch: Fetch, jp_serverapp: Any) -> None:
    settings = jp_serverapp.web_app.settings
    before = settings.get("api_last_activity")

    for route in ROUTES:
        fetch("subsidy", *route.split("/"))

    assert settings.get("api_last_activity") == before


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_needs_authentication(fetch: Fetch, route: str) -> None:
    response = fetch("subsidy", *route.split("/"), headers={"Authorization": "token not-valid"})

    assert response.code == 403


def test_kernel_cost_uses_the_profiles_rates(
    service: Service, server_environment: dict[str, str]
) -> None:
    client = KernelClient(locate_service(server_environment))

    estimate = client.cost("gpu-1", "3")

    # gpu-1 lists at 46.40/h (36 + 8 × 0.50 + 64 × 0.10), the subsidy pays 70%.
    assert (estimate.list, estimate.subsidy, estimate.copay) == (
        Decimal("139.2"),
        Decimal("97.44"),
        Decimal("41.76"),
    )
    assert (estimate.project, estimate.available, estimate.covered) == (
        "alpha",
        Decimal("500.00"),
        True,
    )
    assert "HK$139.20" in estimate.summary() and "covered: HK$500.00" in estimate.summary()
    too_long = client.cost("gpu-1", 16)  # 16 × 32.48 = 519.68 > 500
    assert not too_long.covered
    assert too_long.verdict == "not covered: it needs HK$519.68 of subsidy, HK$500.00 is available"
    with pytest.raises(ValueError, match=r"No such profile: tpu\. Options include: cpu-small"):
        client.cost("tpu", 1)


def test_kernel_errors_carry_the_services_message(
    service: Service, server_environment: dict[str, str]
) -> None:
    client = KernelClient(locate_service(server_environment))
    direct = service.call("GET", "api/v1/projects/alpha/statement", who="alice")

    with pytest.raises(SubsidyError) as refused:
        client.get("projects/alpha/statement")

    assert (refused.value.status, refused.value.message) == (403, direct.json()["message"])


def test_balance_widget_shows_the_status_line(
    service: Service, server_environment: dict[str, str]
) -> None:
    service.ok("POST", "api/v1/admissions", who="hub", status=201, json=CPU)
    widget = BalanceWidget(KernelClient(locate_service(server_environment)), live_minutes=0)
    try:
        html = widget.view.value
    finally:
        widget.close()

    assert "alpha · HK$500.00 · 21 d 6 h left" in html
    assert "cpu-small at HK$1.40/h (HK$0.98/h subsidy)" in html
    assert "tex2jax_ignore" in html  # MathJax must not read HK$…HK$ as mathematics


def test_the_lab_offers_no_rebuild(jp_serverapp: Any) -> None:
    """JupyterLab's build check would run `yarn config` at each page load; a centre's lab is
    built into its image, so the extension switches it off (JupyterLab only defaults it)."""
    page_config = jp_serverapp.web_app.settings["page_config_data"]
    assert page_config["buildCheck"] is False
    assert page_config["buildAvailable"] is False
