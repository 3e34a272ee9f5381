"""Bad input: a 4xx ``{"status", "message"}`` naming the field and value, and nothing written."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select

from subsidyhub.ledger.models import Allocation, AuditEntry, Member, PriceVersion, Project

from .helpers import Service, seed

pytestmark = pytest.mark.hub

ALLOCATIONS = "api/v1/projects/alpha/allocations"

# (method, path, JSON body or raw bytes, status, phrases the message must contain)
CASES: list[tuple[str, str, Any, int, tuple[str, ...]]] = [
    ("POST", ALLOCATIONS, {"amount": "-5"}, 400, ("amount is negative", '"correction": true')),
    ("POST", ALLOCATIONS, {"amount": 12.5}, 400, ("field 'amount'", "12.5", '"12.50"')),
    (
        "POST",
        ALLOCATIONS,
        {"amount": "lots"},
        400,
        ("field 'amount'", "'lots' is not a plain decimal"),
    ),
    ("POST", ALLOCATIONS, {"amount": "1.0000001"}, 400, ("more than 6 decimal places",)),
    ("POST", ALLOCATIONS, {"amount": None}, 400, ("field 'amount'", "not an amount")),
    ("POST", ALLOCATIONS, {}, 400, ("field 'amount' is required",)),
    (
        "POST",
        ALLOCATIONS,
        {"ammount": "5"},
        400,
        ("unknown field 'ammount'", "allowed: amount, valid_from, valid_until, note, correction"),
    ),
    (
        "POST",
        ALLOCATIONS,
        {"amount": "5", "valid_from": "2027-02-01", "valid_until": "2027-01-01"},
        400,
        ("valid until 2027-01-01T00:00:00Z is not after valid from 2027-02-01T00:00:00Z",),
    ),
    (
        "POST",
        ALLOCATIONS,
        {"amount": "5", "valid_from": "next week"},
        400,
        ("field 'valid_from'", "'next week' is not a date", "YYYY-MM-DD"),
    ),
    ("POST", ALLOCATIONS, b'{"amount": "5"', 400, ("not valid JSON",)),
    ("POST", ALLOCATIONS, ["5"], 400, ("must be a JSON object",)),
    ("POST", "api/v1/projects/nope/allocations", {"amount": "5"}, 404, ("No such project: nope",)),
    (
        "POST",
        "api/v1/projects",
        {"slug": "gamma", "name": "Gamma", "subsidy_rate": "1.5"},
        400,
        ("field 'subsidy_rate'", "'1.5' is not a fraction from 0 to 1"),
    ),
    (
        "POST",
        "api/v1/projects",
        {"slug": "gamma", "name": "Gamma", "subsidy_rate": "0.95"},
        400,
        ("subsidy rate 0.95 is outside 0..0.90",),
    ),
    (
        "POST",
        "api/v1/projects",
        {"slug": "Gamma Ray", "name": "Gamma"},
        400,
        ("project slug 'Gamma Ray' is not valid", "lowercase"),
    ),
    ("POST", "api/v1/projects", {"slug": "alpha", "name": "Again"}, 409, ("already exists",)),
    ("PATCH", "api/v1/projects/alpha", {}, 400, ("nothing to change",)),
    (
        "PATCH",
        "api/v1/projects/alpha",
        {"status": "gone"},
        400,
        ("status 'gone' is not one of active, suspended, closed",),
    ),
    (
        "PUT",
        "api/v1/projects/alpha/quota",
        {"project_max_gpus": -1},
        400,
        ("field 'project_max_gpus'", "project_max_gpus -1 is out of range", "0 to 100000 GPUs"),
    ),
    (
        "PUT",
        "api/v1/projects/alpha/quota",
        {"profiles": ["tpu"]},
        400,
        ("unknown profiles tpu", "cpu-small, gpu-1, gpu-2"),
    ),
    (
        "PUT",
        "api/v1/projects/alpha/members/dave",
        {"role": "owner"},
        400,
        ("role 'owner' is not one of manager, member",),
    ),
    (
        "PUT",
        "api/v1/projects/alpha/members/dave",
        {"quota": {"gpu_hours_per_week": "-3"}},
        400,
        ("field 'quota.gpu_hours_per_week'", "gpu_hours_per_week '-3' is not a number of hours"),
    ),
    (
        "PUT",
        "api/v1/projects/alpha/quota",
        {"max_session_hours": "１２"},
        400,
        ("field 'max_session_hours'", "'１２' is not a number of hours", "write digits"),
    ),
    ("POST", "api/v1/prices", {"cpu_core": 0.5}, 400, ("field 'cpu_core'", '"0.50"')),
    ("POST", "api/v1/prices", {"gpu": {"h800": "-1"}}, 400, ("field 'gpu.h800'", "negative")),
    (
        "POST",
        "api/v1/prices",
        {"cpu_core": "0.60", "effective_from": "2020-01-01"},
        400,
        ("effective_from is in the past",),
    ),
    ("POST", "api/v1/prices", {"note": "nothing"}, 400, ("nothing to change",)),
    (
        "GET",
        "api/v1/projects/alpha/statement?month=2026-13",
        None,
        400,
        ("month '2026-13' is not a month", "YYYY-MM"),
    ),
    (
        "GET",
        "api/v1/projects/alpha/statement?format=xml",
        None,
        400,
        ("query parameter 'format'", "'json', 'csv' or 'html'", "'xml'"),
    ),
    (
        "GET",
        "api/v1/audit?limit=5000",
        None,
        400,
        ("query parameter 'limit'", "less than or equal to 1000"),
    ),
    ("DELETE", "api/v1/projects/alpha/members/dave", None, 404, ("dave is not a member",)),
    ("GET", "api/v1/nowhere", None, 404, ("No such endpoint", "openapi.json")),
    ("DELETE", "api/v1/prices", None, 405, ("DELETE is not allowed", "GET, POST")),
]


def ledger_counts(service: Service) -> dict[str, int]:
    with service.db.read() as session:
        return {
            model.__name__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (AuditEntry, Allocation, Project, Member, PriceVersion)
        }


def problems_with(service: Service, case: tuple[str, str, Any, int, tuple[str, ...]]) -> list[str]:
    """What is wrong with the answer to one bad request; empty when it is right."""
    method, path, body, status, phrases = case
    kwargs: dict[str, Any] = {"json": body}
    if isinstance(body, bytes):
        kwargs = {"content": body, "headers": {"Content-Type": "application/json"}}
    before = ledger_counts(service)
    response = service.call(method, path, who="centre-admin", **kwargs)
    label = f"{method} {path} {body!r}"
    if response.status_code != status:
        return [f"{label}: status {response.status_code}, expected {status}: {response.text}"]
    answer = response.json()
    found = []
    if not {"status", "message"} <= set(answer) <= {"status", "message", "reason"} or (
        answer["status"] != status
    ):
        found.append(f"{label}: body {answer!r} is not {{status, message}}")
    found += [
        f"{label}: message lacks {phrase!r}: {answer['message']!r}"
        for phrase in phrases
        if phrase not in answer.get("message", "")
    ]
    if re.search(r"--[a-z]|`admin ", answer.get("message", "")):
        found.append(f"{label}: an API answer names a CLI flag or command: {answer['message']!r}")
    if ledger_counts(service) != before:
        found.append(f"{label}: the ledger changed")
    return found


def test_bad_input_is_explained_and_changes_nothing(service: Service) -> None:
    # One service for the whole table: each case also checks that it wrote nothing, so the
    # cases cannot disturb each other, and the table runs in a second per database.
    seed(service)
    problems = [problem for case in CASES for problem in problems_with(service, case)]
    assert not problems, "\n".join(problems)


def test_a_correction_needs_a_note(service: Service) -> None:
    seed(service)
    before = ledger_counts(service)
    response = service.call(
        "POST", ALLOCATIONS, who="centre-admin", json={"amount": "-5", "correction": True}
    )
    assert response.status_code == 400
    assert "a correction needs a note" in response.json()["message"]
    assert ledger_counts(service) == before
    allocations = service.ok("GET", ALLOCATIONS, who="centre-admin")["allocations"]
    assert [a["amount"] for a in allocations] == ["500.00"]
