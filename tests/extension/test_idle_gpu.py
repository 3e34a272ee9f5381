"""Idle GPUs in the lab: the server extension's ``subsidy/gpu-usage`` and ``subsidy/keep``, and
the front end's rules for them, run under node.

The handlers run in a real ``jupyter_server`` against the real subsidy service and hub (the
fixtures of ``conftest.py``); the ledger is given GPU samples as the service's sampler would
record them (:func:`subsidyhub.ledger.idle.record`). Proves that both are forwarded for this
server's own name (the browser names none: a server only keeps itself), that gpu-usage is
cached like the other reads while Keep it never is and drops the cached ``GET me`` and
gpu-usage, so the warning and the panel's Keep it are gone at the next poll; that the service's refusals reach the browser word for word;
that a press counts as activity while polling does not; and that both need authentication.

``src/alerts.ts`` and ``src/idlegpu.ts`` (with the ``format.ts`` they use) are compiled with
the project's TypeScript and called with hand-made answers: an ``idle_gpu`` warning offers
Keep it only for this server and only while it may still be kept; the sparkline's geometry;
the words of the GPU use section and of Keep it's outcome.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from jupyterlab_subsidy.client import Answer, ServiceClient
from jupyterlab_subsidy.location import ServiceLocation
from jupyterlab_subsidy.routes import SubsidyState
from subsidyhub.ledger import idle
from subsidyhub.service.gpu_samplers import GpuReading
from subsidyhub.timeutil import iso as iso_ms
from tests.service.helpers import Service

from .conftest import Fetch, body
from .frontend import NO_NODE, NO_NODE_REASON, RunTs, compile_front_end, needs_node, shown_clock

# This server's name: it needs quoting in a query string.
NAME = "gpu box&1"
GPU = {"user": "alice", "profile": "gpu-1", "server_name": NAME, "project": "alpha"}
CPU = {"user": "alice", "profile": "cpu-small", "server_name": "", "project": "alpha"}
SAMPLE_MS = 30_000  # the service's default idle_gpu.sample_seconds
MINUTE = 60_000


def state_of(serverapp: Any) -> SubsidyState:
    state: SubsidyState = serverapp.web_app.settings["jupyterlab_subsidy"]
    return state


def record(service: Service, session_id: int, utilisation: int, times: int) -> None:
    """``times`` samples of the server's GPUs, one each sample period, as the sampler records."""
    for _ in range(times):
        service.clock.advance(SAMPLE_MS)
        with service.db.write() as session:
            reading = GpuReading(utilisation, 10_752, 1)
            idle.record(session, service.settings, {session_id: reading}, service.clock())


@pytest.fixture
def gpu_server(service: Service, jp_serverapp: Any) -> int:
    """This server is alice's GPU server ``NAME``: busy for a minute, then idle for 22 min,
    so its stop (30 min idle) is 8 min away and ``GET me`` warns. Returns its session id."""
    state_of(jp_serverapp).environ["JUPYTERHUB_SERVER_NAME"] = NAME
    admitted = service.ok("POST", "api/v1/admissions", who="hub", status=201, json=GPU)
    record(service, admitted["session_id"], 80, 2)
    record(service, admitted["session_id"], 1, 44)
    return int(admitted["session_id"])


def idle_warnings(me: dict[str, Any]) -> list[dict[str, Any]]:
    return [w for p in me["projects"] for w in p["warnings"] if w["code"] == "idle_gpu"]


def press_keep(fetch: Fetch, **kwargs: Any) -> Any:
    kwargs.setdefault("body", json.dumps({"server_name": "not this one"}))  # ignored
    return fetch("subsidy", "keep", method="POST", **kwargs)


# --- the server extension -------------------------------------------------------------------


@pytest.mark.hub
def test_gpu_usage_is_this_servers_plot(
    fetch: Fetch, service: Service, gpu_server: int, jp_serverapp: Any
) -> None:
    response = fetch("subsidy", "gpu-usage")
    fetch("subsidy", "gpu-usage")  # another tab: from the cache

    assert response.code == 200
    assert response.headers["Cache-Control"] == "no-store"
    plot = body(response)
    direct = service.ok(
        "GET", f"api/v1/users/alice/gpu-usage?server_name={quote(NAME, safe='')}", who="alice"
    )
    assert plot == direct
    assert (plot["server_name"], plot["session_id"], plot["can_keep"]) == (NAME, gpu_server, True)
    assert len(plot["samples"]) == 46
    assert plot["samples"][0] == {
        "at": plot["samples"][0]["at"],
        "utilisation_pct": 80,
        "memory_mib": 10_752,
        "idle": False,
    }
    assert plot["samples"][-1]["idle"] is True
    assert plot["usage"]["stops_at"] == iso_ms(service.clock() + 8 * MINUTE)
    assert state_of(jp_serverapp).client.requests_made == 1


@pytest.mark.hub
def test_gpu_usage_of_a_cpu_server_is_the_services_404(fetch: Fetch, service: Service) -> None:
    service.ok("POST", "api/v1/admissions", who="hub", status=201, json=CPU)
    direct = service.call("GET", "api/v1/users/alice/gpu-usage?server_name=", who="alice")
    assert direct.status_code == 404

    response = fetch("subsidy", "gpu-usage")

    assert response.code == 404
    assert body(response) == {"status": 404, "message": direct.json()["message"]}
    assert body(response)["message"] == "alice has no running GPU default server."


@pytest.mark.hub
def test_keep_keeps_this_server_and_the_warning_goes_at_the_next_poll(
    fetch: Fetch, service: Service, gpu_server: int, jp_serverapp: Any
) -> None:
    [warning] = idle_warnings(body(fetch("subsidy", "me")))  # now cached for 3 s
    assert (warning["server_name"], warning["can_keep"]) == (NAME, True)
    assert warning["at"] == iso_ms(service.clock() + 8 * MINUTE)
    assert body(fetch("subsidy", "gpu-usage"))["can_keep"] is True  # cached too

    response = press_keep(fetch)
    after = body(fetch("subsidy", "me"))  # within the cache's 3 s, yet read afresh
    plot = body(fetch("subsidy", "gpu-usage"))

    assert response.code == 200
    assert response.headers["Cache-Control"] == "no-store"
    now = service.clock()
    assert body(response) == {
        "session_id": gpu_server,
        "server_name": NAME,
        "kept_at": iso_ms(now),
        "stops_at": iso_ms(now + 30 * MINUTE),
    }
    assert idle_warnings(after) == []
    session = next(s for s in after["sessions"] if s["server_name"] == NAME)
    assert session["gpu_usage"]["kept_at"] == iso_ms(now)
    assert (plot["can_keep"], plot["usage"]["kept_at"]) == (False, iso_ms(now))
    assert state_of(jp_serverapp).client.requests_made == 5


@pytest.mark.hub
def test_a_second_press_is_sent_and_refused_in_the_services_words(
    fetch: Fetch, service: Service, gpu_server: int, jp_serverapp: Any
) -> None:
    assert press_keep(fetch).code == 200
    record(service, gpu_server, 1, 42)  # idle 21 min more: warned again, with no Keep it
    [warning] = idle_warnings(body(fetch("subsidy", "me")))
    assert warning["can_keep"] is False

    refused = press_keep(fetch)
    again = press_keep(fetch)  # never from a cache: each press reaches the service

    direct = service.call(
        "POST", "api/v1/users/alice/keep", who="alice", json={"server_name": NAME}
    )
    assert direct.status_code == 409
    assert refused.code == again.code == 409
    assert body(refused) == body(again) == {"status": 409, "message": direct.json()["message"]}
    assert body(refused)["message"].startswith(f"Your server {NAME!r} was kept once already")
    assert state_of(jp_serverapp).client.requests_made == 4


@pytest.mark.hub
def test_keep_without_a_running_gpu_server_is_the_services_404(
    fetch: Fetch, service: Service
) -> None:
    response = press_keep(fetch)

    assert response.code == 404
    assert body(response) == {
        "status": 404,
        "message": "You have no running GPU default server; there is nothing to keep.",
    }


@pytest.mark.hub
def test_a_press_is_activity_polling_the_plot_is_not(
    fetch: Fetch, gpu_server: int, jp_serverapp: Any
) -> None:
    settings = jp_serverapp.web_app.settings
    before = settings.get("api_last_activity")

    fetch("subsidy", "gpu-usage")
    assert settings.get("api_last_activity") == before

    press_keep(fetch)
    assert settings.get("api_last_activity") not in (None, before)


@pytest.mark.hub
@pytest.mark.parametrize("method,route", [("GET", "gpu-usage"), ("POST", "keep")])
def test_both_routes_need_authentication(fetch: Fetch, method: str, route: str) -> None:
    extra = {"body": "{}"} if method == "POST" else {}
    response = fetch(
        "subsidy", route, method=method, headers={"Authorization": "token not-valid"}, **extra
    )

    assert response.code == 403


class HeldService(ServiceClient):
    """A stand-in for the service at the client's boundary: ``GET me`` waits until released."""

    def __init__(self) -> None:
        super().__init__(
            lambda: ServiceLocation("http://service.invalid/", "token", "alice"), cache_seconds=60
        )
        self.sent: list[tuple[str, str]] = []
        self.release = asyncio.Event()

    async def _fetch(
        self, path: str, *, method: str = "GET", body: dict[str, Any] | None = None
    ) -> Answer:
        self.sent.append((method, path))
        number = len(self.sent)
        if method == "GET" and number == 1:
            await self.release.wait()
        return Answer(200, {"request": number}, self.clock())


def test_a_get_me_sent_before_a_press_is_not_cached(
    jp_asyncio_loop: asyncio.AbstractEventLoop,
) -> None:
    async def scenario() -> tuple[Any, ...]:
        client = HeldService()
        before = asyncio.create_task(client.get("me"))
        await asyncio.sleep(0)  # sent, not answered yet
        kept = await client.post("users/alice/keep", {"server_name": NAME})
        client.release.set()
        stale = await before  # answers the tabs that asked before the press
        fresh = await client.get("me")
        cached = await client.get("me")
        await client.post("users/alice/keep", {"server_name": NAME})
        return kept, stale, fresh, cached, await client.get("me"), client.sent

    kept, stale, fresh, cached, after_second, sent = jp_asyncio_loop.run_until_complete(scenario())

    assert [a.body["request"] for a in (stale, kept, fresh, cached, after_second)] == [
        1,
        2,
        3,
        3,
        5,
    ]
    assert sent == [
        ("GET", "me"),
        ("POST", "users/alice/keep"),
        ("GET", "me"),
        ("POST", "users/alice/keep"),
        ("GET", "me"),
    ]


# --- the front end's rules, under node ------------------------------------------------------


@pytest.fixture(scope="module")
def run_ts(tmp_path_factory: pytest.TempPathFactory) -> RunTs:
    """``run_ts(["module.function", *args], ...)``: the results of calling the front end's."""
    if NO_NODE:
        pytest.skip(NO_NODE_REASON)
    return compile_front_end(tmp_path_factory.mktemp("idlegpu"), "alerts", "format", "idlegpu")


NOW = datetime.now(UTC).replace(microsecond=0)
NOW_MS = int(NOW.timestamp() * 1000)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def idle_gpu(server_name: str, can_keep: bool = True) -> dict[str, Any]:
    return {
        "id": f"demo:idle_gpu:7:{server_name}",
        "code": "idle_gpu",
        "severity": "critical",
        "level": "critical",
        "message": f"Your server {server_name}'s GPUs have done no work for 22 min.",
        "at": iso(NOW + timedelta(minutes=8)),
        "server_name": server_name,
        "can_keep": can_keep,
    }


def me(*warnings: dict[str, Any], viewer: str = "alice") -> dict[str, Any]:
    """alice's servers "" (this one) and "other", both in project demo."""
    own = {"user": "alice", "server_name": "", "project": "demo", "max_stop_at": None}
    return {
        "user": viewer,
        "at": iso(NOW),
        "projects": [
            {"slug": "demo", "name": "Demo", "quota": {}, "warnings": list(warnings)},
            {"slug": "spare", "name": "Spare", "quota": {}, "warnings": []},
        ],
        "sessions": [own, own | {"server_name": "other"}],
        "server": {"user": "alice", "name": "", "project": "demo", "profile": "gpu-1"},
    }


@needs_node
@pytest.mark.parametrize(
    "warning,keep",
    [
        pytest.param(idle_gpu(""), True, id="this server, may keep"),
        pytest.param(idle_gpu("", can_keep=False), False, id="this server, kept already"),
        pytest.param(idle_gpu("other"), False, id="another of her servers"),
    ],
)
def test_an_idle_gpu_warning_offers_keep_it_only_for_this_server(
    run_ts: RunTs, warning: dict[str, Any], keep: bool
) -> None:
    [plan, offered] = run_ts(
        ["alerts.planAlerts", me(warning), {}], ["alerts.offersKeep", me(warning), warning]
    )

    [alert] = plan["alerts"]
    assert (alert["project"], alert["severity"], alert["autoClose"]) == ("demo", "critical", False)
    assert alert["message"] == warning["message"]  # it names the server already
    assert alert["keep"] is keep and offered is keep
    [again] = run_ts(["alerts.planAlerts", me(warning), plan["seen"]])
    assert again["alerts"] == []  # each warning id once


@needs_node
def test_keep_it_is_not_offered_in_a_lab_that_is_not_the_owners(run_ts: RunTs) -> None:
    """An admin viewing alice's lab as themselves: ``me.user`` is not this server's user."""
    warning = idle_gpu("")
    [offered] = run_ts(["alerts.offersKeep", me(warning, viewer="admin"), warning])
    assert offered is False


@needs_node
def test_other_warnings_offer_no_keep_it(run_ts: RunTs) -> None:
    low = {
        "id": "demo:below_5_percent",
        "code": "below_5_percent",
        "severity": "warning",
        "level": "critical",
        "message": "Demo has less than 5% left.",
        "server_name": None,
        "can_keep": None,
    }
    [plan] = run_ts(["alerts.planAlerts", me(low, idle_gpu("other")), {}])
    assert [alert["keep"] for alert in plan["alerts"]] == [False]
    [plan] = run_ts(["alerts.planAlerts", me(low, idle_gpu("")), {}])
    assert [alert["keep"] for alert in plan["alerts"]] == [True]  # one toast, with the button


def sample(minutes_ago: float, utilisation: int, threshold: int = 5) -> dict[str, Any]:
    at = NOW - timedelta(minutes=minutes_ago)
    return {
        "at": iso(at),
        "utilisation_pct": utilisation,
        "memory_mib": 10_752,
        "idle": utilisation < threshold,
    }


@needs_node
def test_the_sparkline_plots_utilisation_against_time(run_ts: RunTs) -> None:
    # 0, 10, 20, 30, 40 min into a 40 min span: x 0, 60, 120, 180, 240 of 240.
    samples = [sample(40, 100), sample(30, 50), sample(20, 2), sample(10, 0), sample(0, 60)]
    [line] = run_ts(["idlegpu.sparkline", samples, 5])

    assert (line["width"], line["height"]) == (240, 40)
    # y: 100% at 2, 0% at 38 (2 units of room at either edge).
    assert line["points"] == "0,2 60,20 120,37.3 180,38 240,16.4"
    assert line["thresholdY"] == 36.2
    assert line["idle"] == [{"x": 120, "y": 37.3}, {"x": 180, "y": 38}]
    # The idle samples' time: each covers the span since the sample before it.
    assert line["idleBands"] == [{"x": 60, "width": 120}]


@needs_node
def test_the_sparkline_of_one_sample_or_none(run_ts: RunTs) -> None:
    one, none, split = run_ts(
        ["idlegpu.sparkline", [sample(0, 3)], 5],
        ["idlegpu.sparkline", [], 5],
        ["idlegpu.sparkline", [sample(3, 1), sample(2, 90), sample(1, 1), sample(0, 1)], 5],
    )
    assert one["points"] == "240,36.9"
    assert one["idle"] == [{"x": 240, "y": 36.9}] and one["idleBands"] == [{"x": 240, "width": 0}]
    assert none["points"] == "" and none["idle"] == [] and none["idleBands"] == []
    assert split["idleBands"] == [{"x": 0, "width": 0}, {"x": 80, "width": 160}]


def plot(samples: list[dict[str, Any]], **usage: Any) -> dict[str, Any]:
    return {
        "user": "alice",
        "server_name": "",
        "session_id": 7,
        "gpu_type": "h800",
        "gpu_count": 1,
        "threshold_percent": 5,
        "sample_seconds": 30,
        "usage": {
            "idle_since": None,
            "idle_hours": "0.42",
            "sampled_at": samples[-1]["at"] if samples else None,
            "kept_at": None,
            "stops_at": None,
        }
        | usage,
        "samples": samples,
        "can_keep": True,
    }


@needs_node
def test_the_gpu_use_words(run_ts: RunTs) -> None:
    stops = NOW + timedelta(minutes=18)
    idle = plot(
        [sample(60, 90), sample(12.5, 3), sample(0, 3)],
        idle_since=iso(NOW - timedelta(minutes=12, seconds=30)),
        stops_at=iso(stops),
    )
    busy = plot([sample(1, 50), sample(0, 70)])
    results = run_ts(
        ["idlegpu.sparklineLabel", idle, NOW_MS],
        ["idlegpu.sparklineLabel", busy, NOW_MS],
        ["idlegpu.sparklineLabel", plot([]), NOW_MS],
        ["idlegpu.latestUse", idle],
        ["idlegpu.latestUse", plot([])],
        ["idlegpu.idleTotal", idle["usage"]],
        ["idlegpu.idleStop", idle["usage"]],
        ["idlegpu.idleStop", busy["usage"]],
        ["format.clock", iso(stops)],
        ["idlegpu.offersKeepNow", idle],
        ["idlegpu.offersKeepNow", busy],
        ["idlegpu.offersKeepNow", idle | {"can_keep": False}],
        ["idlegpu.gpuPollSeconds", idle],
        ["idlegpu.gpuPollSeconds", idle | {"sample_seconds": 2}],
        ["idlegpu.gpuPollSeconds", None],
        ["idlegpu.gibibytes", 512],
    )
    label_idle, label_busy, label_none, latest, no_latest, total, stop, no_stop, at = results[:9]
    assert label_idle == "GPU utilisation over the last 60 min: now 3%, idle for 12 min"
    assert label_busy == "GPU utilisation over the last 1 min: now 70%, busy"
    assert label_none == "GPU utilisation: not read yet"
    assert latest == "Now 3% · 10.5 GiB of GPU memory" and no_latest is None
    assert total == "idle GPU time so far: 0.42 h"
    assert stop == f"stops at {at} if still idle" and at == shown_clock(stops)
    assert no_stop is None
    assert results[9:] == [True, False, False, 30, 5, 5, "0.5 GiB"]


@needs_node
@pytest.mark.parametrize(
    "ms,shown",
    [
        (0, "< 1 min"),
        (59_999, "< 1 min"),
        (60_000, "1 min"),
        (12 * 60_000 + 59_000, "12 min"),
        (60 * 60_000, "60 min"),
        (119 * 60_000 + 59_000, "119 min"),
        (120 * 60_000, "2 h 00 min"),
        (125 * 60_000, "2 h 05 min"),
        (-5_000, "< 1 min"),
    ],
)
def test_spans_are_cut_to_the_minute(run_ts: RunTs, ms: int, shown: str) -> None:
    since = iso(NOW - timedelta(milliseconds=ms))
    text, idle_for, busy = run_ts(
        ["idlegpu.minutesText", ms],
        ["idlegpu.idleFor", since, NOW_MS],
        ["idlegpu.idleFor", None, NOW_MS],
    )
    assert text == shown and idle_for == f"idle for {shown}" and busy == "busy"


@needs_node
def test_keep_its_outcome(run_ts: RunTs) -> None:
    stops = NOW + timedelta(minutes=30)
    kept = {"session_id": 7, "server_name": "", "kept_at": iso(NOW), "stops_at": iso(stops)}
    [with_stop, never, at] = run_ts(
        ["idlegpu.keptNotice", kept],
        ["idlegpu.keptNotice", kept | {"stops_at": None}],
        ["format.clock", iso(stops)],
    )
    assert with_stop == f"Kept: this server runs on; if its GPUs stay idle, it stops at {at}."
    assert never == "Kept: this server runs on."
