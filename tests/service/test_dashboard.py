"""The Grafana dashboard shipped in helm/: valid JSON whose queries name metrics the service serves.

The metric names are checked against a real scrape of the service after admissions, a
refusal, charges, a stop and an enforcer round against the real hub, so renaming a metric
without updating the dashboard fails here. SQLite only: metric names do not depend on the
database.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from subsidyhub.testing.hub import TestHub

from .helpers import HOUR, Service, enforce_once, seed

pytestmark = pytest.mark.hub

DASHBOARD = Path(__file__).parents[2] / "helm" / "subsidyhub" / "dashboards" / "subsidyhub.json"
METRIC = re.compile(r"\bsubsidyhub_[a-z0-9_]+\b")
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
# What the funder and the operators asked to see (issue 7).
REQUIRED = {
    "subsidyhub_project_balance",
    "subsidyhub_project_burn_rate_per_hour",
    "subsidyhub_project_available",
    "subsidyhub_project_charged_subsidy_total",
    "subsidyhub_admissions_total",
    "subsidyhub_stops_total",
    "subsidyhub_metering_tick_seconds_bucket",
    "subsidyhub_reconcile_drift",
    "subsidyhub_request_duration_seconds_bucket",
}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def expressions(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(variable["query"]["query"])
    return exprs


def scraped_names(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


@pytest.fixture
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def test_structure(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids))
    [source] = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert (source["name"], source["query"]) == ("DS_PROMETHEUS", "prometheus")
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["datasource"] == DATASOURCE for t in panel["targets"]), panel["title"]
        assert panel["description"], panel["title"]
    titles = {panel["title"] for panel in panels(dashboard)}
    assert {
        "Balance per project",
        "Burn rate per project",
        "Time left per project",
        "Admissions vs refusals by reason",
        "Stops by reason",
        "Metering tick duration p50 / p99",
        "Reconciliation drift",
        "Request latency p50 / p99",
    } <= titles


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_queries_name_metrics_the_service_serves(
    dashboard: dict[str, Any], service: Service, jupyterhub: TestHub
) -> None:
    seed(service)
    gpu = {"user": "alice", "profile": "gpu-1", "server_name": "", "project": "alpha"}
    admitted = service.ok("POST", "api/v1/admissions", who="hub", status=201, json=gpu)
    refused = service.call("POST", "api/v1/admissions", who="hub", json={**gpu, "user": "carol"})
    assert refused.json()["status"] == 403
    service.ok("POST", "api/v1/admissions", who="hub", status=201, json={**gpu, "server_name": "b"})
    service.clock.advance(HOUR)
    service.ok("POST", f"api/v1/sessions/{admitted['session_id']}/stop", who="hub", json={})
    await enforce_once(service, jupyterhub.api_url)
    served = scraped_names(service.ok_text("metrics", who="centre-admin"))

    used = set()
    for expr in expressions(dashboard):
        names = set(METRIC.findall(expr))
        assert names, f"no SubsidyHub metric in {expr!r}"
        assert names <= served, f"{expr!r} names {sorted(names - served)}, not served"
        used |= names
    assert used >= REQUIRED
