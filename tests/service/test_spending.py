"""``GET me/spending``: per UTC day, the caller's projects' charge lines, zeros included."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from subsidyhub.ledger.models import Charge, Project
from subsidyhub.money import to_decimal_string

from .helpers import HOUR, T0, Service, seed

pytestmark = pytest.mark.hub

SPENDING = "api/v1/me/spending"
DAY = 24 * HOUR


def run(service: Service, user: str, project: str, start: int, end: int) -> None:
    service.clock.now_ms = start
    admitted = service.admit(user, "gpu-1", project)
    service.clock.now_ms = end
    service.ok("POST", f"api/v1/sessions/{admitted['session_id']}/stop", who="hub", json={})


def charged(service: Service, slug: str, start: int, end: int) -> dict[str, str]:
    """List, subsidy and co-pay of the charge lines starting in [start, end), summed here."""
    with service.db.read() as session:
        lines = session.scalars(
            select(Charge)
            .join(Project, Project.id == Charge.project_id)
            .where(
                Project.slug == slug,
                Charge.interval_start_ms >= start,
                Charge.interval_start_ms < end,
            )
        ).all()
    return {
        "list": to_decimal_string(sum(line.list_micro for line in lines)),
        "subsidy": to_decimal_string(sum(line.subsidy_micro for line in lines)),
        "copay": to_decimal_string(sum(line.copay_micro for line in lines)),
    }


def test_days_per_project_with_zeros_and_a_midnight_boundary(service: Service) -> None:
    seed(service)
    # T0 is 2026-12-01T00:00Z: one hour ending at midnight, one starting at it.
    run(service, "alice", "alpha", T0 + 23 * HOUR, T0 + DAY)
    run(service, "bob", "alpha", T0 + DAY, T0 + DAY + HOUR // 2)
    run(service, "carol", "beta", T0 + 2 * DAY, T0 + 2 * DAY + HOUR)
    service.clock.now_ms = T0 + 3 * DAY + 5 * HOUR  # 2026-12-04, 05:00

    document = service.ok("GET", SPENDING, who="alice")
    assert document["user"] == "alice"
    assert document["days"] == 7
    assert [p["slug"] for p in document["projects"]] == ["alpha"]  # not carol's beta
    alpha = document["projects"][0]
    assert alpha["currency"] == "HKD"
    days = alpha["days"]
    assert [d["date"] for d in days] == [
        "2026-11-28",
        "2026-11-29",
        "2026-11-30",
        "2026-12-01",
        "2026-12-02",
        "2026-12-03",
        "2026-12-04",
    ]
    zero = {"list": "0.00", "subsidy": "0.00", "copay": "0.00"}
    for index, day in enumerate(days):
        start = T0 + (index - 3) * DAY
        assert {k: day[k] for k in zero} == charged(service, "alpha", start, start + DAY)
    assert days[3]["list"] == "46.40"  # alice's hour, 23:00 to midnight
    assert days[4]["list"] == "23.20"  # bob's half hour from midnight
    assert all({k: days[i][k] for k in zero} == zero for i in (0, 1, 2, 5, 6))
    assert float(days[3]["subsidy"]) + float(days[3]["copay"]) == pytest.approx(46.40)
    assert float(days[3]["subsidy"]) > 0 and float(days[3]["copay"]) > 0

    one_day = service.ok("GET", f"{SPENDING}?days=1", who="bob")["projects"][0]
    assert one_day["days"] == [{"date": "2026-12-04", **zero}]
    carol = service.ok("GET", f"{SPENDING}?days=31", who="carol")["projects"]
    assert [p["slug"] for p in carol] == ["beta"]
    assert len(carol[0]["days"]) == 31
    assert carol[0]["days"][-2]["date"] == "2026-12-03"
    assert carol[0]["days"][-2]["list"] == "46.40"


@pytest.mark.parametrize("value", ["0", "32", "seven", "-1", "1.5", ""])
def test_a_bad_days_is_a_400_naming_it(service: Service, value: str) -> None:
    response = service.call("GET", f"{SPENDING}?days={value}", who="alice")
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400
    assert "'days'" in body["message"]
    assert "1 to 31" in body["message"]
    assert repr(value) in body["message"]


def test_no_projects_and_not_for_services(service: Service) -> None:
    assert service.ok("GET", SPENDING, who="alice")["projects"] == []
    response = service.call("GET", SPENDING, who="hub")
    assert response.status_code == 403
