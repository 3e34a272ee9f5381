"""Statements over HTTP: JSON and CSV totals equal the sum of the ledger's charge lines."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select

from subsidyhub.ledger.models import Charge, Project
from subsidyhub.money import to_decimal_string
from subsidyhub.timeutil import month_bounds

from .helpers import HOUR, T0, Service, seed

pytestmark = pytest.mark.hub

STATEMENT = "api/v1/projects/alpha/statement"


def charged(service: Service, slug: str, month: str) -> dict[str, str]:
    """(list, subsidy, co-pay) summed straight from the charge lines of the month."""
    start, end = month_bounds(month)
    with service.db.read() as session:
        row = session.execute(
            select(
                func.sum(Charge.list_micro),
                func.sum(Charge.subsidy_micro),
                func.sum(Charge.copay_micro),
            )
            .join(Project, Project.id == Charge.project_id)
            .where(
                Project.slug == slug,
                Charge.interval_start_ms >= start,
                Charge.interval_start_ms < end,
            )
        ).one()
    return {
        name: to_decimal_string(int(value or 0))
        for name, value in zip(("list", "subsidy", "copay"), row, strict=True)
    }


def run(service: Service, user: str, profile: str, server: str, start: int, end: int) -> None:
    service.clock.now_ms = start
    admitted = service.admit(user, profile, "alpha", server)
    service.clock.now_ms = end
    service.ok("POST", f"api/v1/sessions/{admitted['session_id']}/stop", who="hub", json={})


def test_json_and_csv_totals_equal_the_charges(service: Service) -> None:
    seed(service)
    run(service, "alice", "gpu-1", "", T0 + HOUR, T0 + 3 * HOUR)
    run(service, "bob", "cpu-small", "", T0 + HOUR, T0 + HOUR + 1_234_567)
    # Across the month end: half an hour in December, half in January.
    new_year = month_bounds("2027-01")[0]
    run(service, "alice", "cpu-small", "late", new_year - HOUR // 2, new_year + HOUR // 2)

    for month in ("2026-12", "2027-01"):
        expected = charged(service, "alpha", month)
        assert expected["list"] != "0.00"
        document = service.ok("GET", f"{STATEMENT}?month={month}", who="bob")
        assert document["month"] == month
        assert document["currency"] == "HKD"
        totals = document["totals"]
        assert {key: totals[key] for key in expected} == expected
        for key in expected:
            assert sum(float(line[key]) for line in document["lines"]) == pytest.approx(
                float(totals[key])
            )

        response = service.call("GET", f"{STATEMENT}?month={month}&format=csv", who="bob")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert (
            response.headers["content-disposition"]
            == f'attachment; filename="subsidyhub-alpha-{month}.csv"'
        )
        rows = list(csv.DictReader(io.StringIO(response.text)))
        total = rows[-1]
        assert total["project"] == "TOTAL"
        assert {key: total[key] for key in expected} == expected
        assert len(rows) - 1 == len(document["lines"])

    december = service.ok("GET", f"{STATEMENT}?month=2026-12", who="centre-admin")
    by_line = {(line["username"], line["profile"]): line for line in december["lines"]}
    assert by_line["alice", "gpu-1"]["hours"] == "2.0000"
    assert by_line["alice", "gpu-1"]["list"] == "92.80"
    assert by_line["alice", "cpu-small"]["hours"] == "0.5000"


def test_statement_defaults_to_the_current_month(service: Service) -> None:
    seed(service)
    run(service, "alice", "gpu-1", "", T0, T0 + HOUR)
    document = service.ok("GET", STATEMENT, who="centre-admin")
    assert document["month"] == "2026-12"
    assert document["totals"]["list"] == "46.40"


def test_html_statement_for_managers_only(service: Service) -> None:
    seed(service)
    run(service, "alice", "gpu-1", "", T0 + HOUR, T0 + 3 * HOUR)
    page = service.call("GET", f"{STATEMENT}?month=2026-12&format=html", who="bob")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    expected = charged(service, "alpha", "2026-12")
    grand = page.text.split('<tr class="grand-total">', 1)[1]
    for key in ("list", "subsidy", "copay"):
        assert f'data-amount="{expected[key]}"' in grand
    assert "Alpha <small>(alpha)</small>" in page.text
    refused = service.call("GET", f"{STATEMENT}?month=2026-12&format=html", who="alice")
    assert refused.status_code == 403
    assert refused.json()["status"] == 403
