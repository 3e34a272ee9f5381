"""Applications, decisions and burn plans over the API (issue 18), on SQLite and PostgreSQL,
against the session's real hub; email through a real SMTP server (aiosmtpd).

Carol applies for a project, edits the draft, submits it (then it is read-only for her); an
admin comments, approves with a rate and an amount in one step, and the project, its
members, rate, quota, allocation and plan exist, audited and linked. Bob's application is
rejected with a reason. Racing approvals of one application make exactly one project. A
top-up and an extension by the project's manager follow the same path.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from subsidyhub.ledger.models import (
    Allocation,
    AuditEntry,
    Member,
    Organisation,
    PlanMonth,
    Project,
)
from subsidyhub.settings import Settings, parse_settings
from tests.conftest import TEST_CONFIG
from tests.service.test_queue import Inbox, inbox  # noqa: F401  (the SMTP fixture)

from .helpers import Service

pytestmark = pytest.mark.hub

NEW = {
    "kind": "new",
    "slug": "climate-ml",
    "title": "Climate downscaling",
    "organisation": "University of Hong Kong",
    "abstract": "Diffusion models for regional climate.\nSecond line.",
    "amount": "36000.00",
    "gpu_hours": {"h800": 1000},
    "starts": "2026-12-01",
    "ends": "2027-12-01",
    "team": ["alice"],
    "plan": ["6000.00", "9000.00", "9000.00", "12000.00"],
    "email": "carol@uni.example",
}


@pytest.fixture
def settings(inbox: tuple[Inbox, int]) -> Settings:  # noqa: F811
    smtp = {"host": "127.0.0.1", "port": inbox[1], "starttls": False, "from_address": "hub@x"}
    return parse_settings(TEST_CONFIG | {"smtp": smtp}, "test-config")


def apply(service: Service, who: str, body: dict) -> dict:
    return service.ok("POST", "api/v1/applications", who=who, status=201, json=body)


def test_an_application_from_draft_to_an_approved_project(
    service: Service,
    inbox: tuple[Inbox, int],  # noqa: F811
) -> None:
    draft = apply(service, "carol", NEW | {"amount": "30000.00", "plan": []})
    assert (draft["state"], draft["applicant"], draft["project"]) == ("draft", "carol", None)
    number = draft["id"]
    edited = service.ok("PUT", f"api/v1/applications/{number}", who="carol", json=NEW)
    assert edited["amount"] == "36000.00" and edited["plan"][-1] == "12000.00"
    # Nobody else sees it; admins do.
    assert service.call("GET", f"api/v1/applications/{number}", who="bob").status_code == 404
    assert service.ok("GET", "api/v1/applications", who="bob")["applications"] == []

    submitted = service.ok("POST", f"api/v1/applications/{number}/submit", who="carol")
    assert submitted["state"] == "submitted" and submitted["submitted"] == "2026-12-01T00:00:00Z"
    frozen = service.call("PUT", f"api/v1/applications/{number}", who="carol", json=NEW)
    assert frozen.status_code == 409 and "read-only" in frozen.json()["message"]
    queue = service.ok("GET", "api/v1/applications?state=submitted", who="centre-admin")
    assert [a["id"] for a in queue["applications"]] == [number]

    service.ok(
        "POST",
        f"api/v1/applications/{number}/comments",
        who="centre-admin",
        status=201,
        json={"body": "Please confirm the H800 hours."},
    )
    answered = service.ok(
        "POST",
        f"api/v1/applications/{number}/comments",
        who="carol",
        status=201,
        json={"body": "Confirmed: 1000 hours."},
    )
    assert [e["kind"] for e in answered["events"]] == [
        "created",
        "edited",
        "submitted",
        "commented",
        "commented",
    ]
    too_generous = service.call(
        "POST",
        f"api/v1/applications/{number}/approve",
        who="centre-admin",
        json={"subsidy_rate": "0.95"},
    )
    assert too_generous.status_code == 400 and "0.9" in too_generous.json()["message"]
    assert (
        service.call(
            "POST",
            f"api/v1/applications/{number}/approve",
            who="carol",
            json={"subsidy_rate": "0.75"},
        ).status_code
        == 403
    )

    approved = service.ok(
        "POST",
        f"api/v1/applications/{number}/approve",
        who="centre-admin",
        json={
            "subsidy_rate": "0.75",
            "quota": {"project_max_gpus": 4},
            "note": "Approved by the panel of 2026-11-28.",
        },
    )
    assert (approved["state"], approved["project"], approved["subsidy_rate"]) == (
        "approved",
        "climate-ml",
        "0.75",
    )
    assert approved["approved_amount"] == "36000.00" and approved["allocation_id"]
    assert approved["events"][-1]["body"].startswith(
        "Approved: HK$36,000.00 of subsidy paying 75% of the list price, from 2026-12-01 to "
        "2027-12-01, as project climate-ml. Approved by the panel"
    )
    with service.db.read() as session:
        project = session.scalars(select(Project).where(Project.slug == "climate-ml")).one()
        assert (project.subsidy_bp, project.limits["project_max_gpus"]) == (7500, 4)
        organisation = session.get(Organisation, project.organisation_id)
        assert organisation is not None
        assert (organisation.slug, organisation.name) == (
            "university-of-hong-kong",
            "University of Hong Kong",
        )
        roles = {
            username: role
            for username, role in session.execute(
                select(Member.username, Member.role).where(Member.project_id == project.id)
            )
        }
        assert roles == {"carol": "manager", "alice": "member"}
        allocation = session.get(Allocation, approved["allocation_id"])
        assert allocation is not None and allocation.amount_micro == 36_000_000_000
        months = session.scalars(
            select(PlanMonth.amount_micro)
            .where(PlanMonth.allocation_id == allocation.id)
            .order_by(PlanMonth.month)
        ).all()
        assert len(months) == 12 and months[:3] == [2_000_000_000] * 3
        assert sum(months) == allocation.amount_micro
        actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions[-1] == "application.approved"
    assert {"project.create", "allocation.add", "quota.set"} <= set(actions)
    # Carol is now the project's manager: its plan is hers to read.
    [position] = service.ok("GET", "api/v1/projects/climate-ml/burn-plan", who="carol")["positions"]
    assert position["granted"] == "36000.00" and position["months"][0] == {
        "month": "2026-12",
        "planned": "2000.00",
        "spent": "0.00",
    }
    assert service.call("GET", "api/v1/projects/climate-ml/burn-plan", who="bob").status_code == 403
    # Each change of state was emailed to her.
    handler, _port = inbox
    subjects = [m["Subject"] for m in handler.messages]
    assert subjects[0].endswith(": submitted") and subjects[-1].endswith(": approved")
    assert any("Please confirm the H800 hours." in m.get_content() for m in handler.messages)


def test_a_rejection_names_its_reason_and_a_decided_application_cannot_change(
    service: Service,
) -> None:
    number = apply(service, "bob", NEW | {"slug": "bob-lab", "email": None})["id"]
    service.ok("POST", f"api/v1/applications/{number}/submit", who="bob")
    empty = service.call(
        "POST", f"api/v1/applications/{number}/reject", who="centre-admin", json={"reason": " "}
    )
    assert empty.status_code == 400
    rejected = service.ok(
        "POST",
        f"api/v1/applications/{number}/reject",
        who="centre-admin",
        json={"reason": "The scheme funds climate work this round."},
    )
    assert rejected["state"] == "rejected" and rejected["reason"].startswith("The scheme")
    again = service.call(
        "POST",
        f"api/v1/applications/{number}/approve",
        who="centre-admin",
        json={"subsidy_rate": "0.70"},
    )
    assert again.status_code == 409 and "is rejected" in again.json()["message"]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"amount": "0"}, "amount 0.00 is out of range; give more than 0"),
        ({"amount": "1e30"}, "amount"),
        ({"amount": "１２３"}, "amount"),
        ({"ends": "2026-11-01"}, "ends"),
        ({"ends": "2032-12-01"}, "at most 60"),
        ({"gpu_hours": {"b200": 5}}, "GPU type 'b200' is not offered"),
        ({"gpu_hours": {"h800": -1}}, "out of range"),
        ({"plan": ["1.00"]}, "adds up to 1.00, not the amount 36000.00"),
        ({"team": ["not a user!"]}, "team"),
        ({"slug": "Bad Slug"}, "slug"),
        ({"title": ""}, "title is empty"),
        ({"email": "carol"}, "not an email address"),
    ],
)
def test_every_field_has_bounds_and_nothing_is_written(
    service: Service, change: dict, fragment: str
) -> None:
    answer = service.call("POST", "api/v1/applications", who="carol", json=NEW | change)
    assert answer.status_code in (400, 422) and fragment in answer.json()["message"]
    assert service.ok("GET", "api/v1/applications", who="carol")["applications"] == []


def test_racing_approvals_of_one_application_make_exactly_one_project(service: Service) -> None:
    number = apply(service, "carol", NEW)["id"]
    service.ok("POST", f"api/v1/applications/{number}/submit", who="carol")
    barrier = threading.Barrier(4)

    def approve(_n: int) -> int:
        barrier.wait()
        return service.call(
            "POST",
            f"api/v1/applications/{number}/approve",
            who="centre-admin",
            json={"subsidy_rate": "0.70"},
        ).status_code

    with ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(approve, range(4)))
    assert codes == [200, 409, 409, 409]
    with service.db.read() as session:
        assert session.scalar(select(func.count(Project.id))) == 1
        assert session.scalar(select(func.count(Allocation.id))) == 1


def test_a_manager_applies_for_a_top_up_and_an_extension(service: Service) -> None:
    number = apply(service, "carol", NEW)["id"]
    service.ok("POST", f"api/v1/applications/{number}/submit", who="carol")
    service.ok(
        "POST",
        f"api/v1/applications/{number}/approve",
        who="centre-admin",
        json={"subsidy_rate": "0.70"},
    )
    top_up = NEW | {"kind": "top_up", "amount": "5000.00", "plan": [], "team": []}
    # Alice is a member, not a manager: only managers apply for their project.
    refused = service.call("POST", "api/v1/applications", who="alice", json=top_up)
    assert refused.status_code == 403 and "does not manage" in refused.json()["message"]
    up = apply(service, "carol", top_up)["id"]
    extension = top_up | {"kind": "extension", "starts": "2027-12-01", "ends": "2028-06-01"}
    more = apply(service, "carol", extension)["id"]
    for number in (up, more):
        service.ok("POST", f"api/v1/applications/{number}/submit", who="carol")
        decided = service.ok(
            "POST",
            f"api/v1/applications/{number}/approve",
            who="centre-admin",
            json={"subsidy_rate": "0.80"},
        )
        assert decided["project"] == "climate-ml"
    with service.db.read() as session:
        project = session.scalars(select(Project).where(Project.slug == "climate-ml")).one()
        windows = session.execute(
            select(Allocation.amount_micro, Allocation.valid_until_ms)
            .where(Allocation.project_id == project.id)
            .order_by(Allocation.id)
        ).all()
    assert project.subsidy_bp == 8000
    assert [amount for amount, _until in windows] == [
        36_000_000_000,
        5_000_000_000,
        5_000_000_000,
    ]
    assert windows[2][1] > windows[0][1]  # the extension runs past the first grant
    scheme = service.ok("GET", "api/v1/reports/scheme", who="centre-admin")
    assert (scheme["approved"], scheme["allocated"], scheme["spent"]) == (
        "46000.00",
        "46000.00",
        "0.00",
    )
    assert [p["project"] for p in scheme["ranking"]] == ["climate-ml"]
    # The month's utilisation report carries the scheme's figures too.
    report = service.ok("GET", "api/v1/reports/utilisation?month=2026-12", who="centre-admin")
    assert report["scheme"] == {key: scheme[key] for key in report["scheme"]}
    assert report["scheme"]["projected_unused"] == "46000.00"
    assert service.call("GET", "api/v1/reports/scheme", who="carol").status_code == 403
