"""``subsidyhub application …``, ``plan …`` and ``report scheme`` (issue 18), on SQLite and
PostgreSQL, in process.

Carol's application is entered from a YAML file and submitted, commented on and approved with
a rate and a quota: the project, its members, rate, quota, allocation and plan exist, and a
second decision is refused. Bob's is rejected with a reason. A grant's plan is read and set
(adding up to its amount, inside its window); the scheme's figures equal the charges. Bad
values, in the file or in flags, are one line naming the field, exit 2, and write nothing.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import Result

from subsidyhub.ledger import admission, metering
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.models import Allocation, AuditEntry, Charge, Member, Project
from subsidyhub.money import parse_amount, to_decimal_string
from subsidyhub.settings import Settings
from subsidyhub.timeutil import MS_PER_HOUR, to_ms

from .conftest import Cli, snapshot


def month_start(offset: int) -> str:
    """The first day of the month ``offset`` months from this one (YYYY-MM-DD)."""
    today = datetime.now(UTC)
    index = today.year * 12 + today.month - 1 + offset
    return f"{index // 12:04d}-{index % 12 + 1:02d}-01"


START, END = month_start(1), month_start(13)  # a year, from next month
PLAN_MONTHS = [month_start(i)[:7] for i in range(1, 13)]

# The file as a PI writes it; values stay the text written (no YAML numbers or dates).
APPLICATION = {
    "kind": "new",
    "slug": "climate-ml",
    "title": "Climate downscaling",
    "organisation": "University of Hong Kong",
    "abstract": "Diffusion models for regional climate.",
    "amount": "36000.00",
    "gpu_hours": "{h800: 1000}",
    "starts": START,
    "ends": END,
    "team": '["alice"]',
    "plan": "[6000.00, 9000.00, 9000.00, 12000.00]",
    "email": "carol@uni.example",
}


def write_application(tmp_path: Path, changes: dict[str, str | None] | None = None) -> Path:
    """``app.yaml`` with the application's fields, some changed (``None``: left out)."""
    fields = APPLICATION | (changes or {})
    path = tmp_path / "app.yaml"
    path.write_text(
        "".join(f"{key}: {value}\n" for key, value in fields.items() if value is not None),
        encoding="utf-8",
    )
    return path


def enter(cli: Cli, tmp_path: Path, applicant: str = "carol", **changes: str | None) -> int:
    """A submitted application from a file; its number."""
    path = write_application(tmp_path, changes)
    shown = cli.json(
        "application", "create", "--file", str(path), "--applicant", applicant, "--submit"
    )
    assert shown["state"] == "submitted"
    return int(shown["id"])


def one_line_error(result: Result, exit_code: int, fragment: str) -> None:
    assert result.exit_code == exit_code, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert fragment in result.stderr, result.stderr


def test_an_application_from_a_file_to_an_approved_project(
    cli: Cli, ledger: Database, tmp_path: Path
) -> None:
    number = enter(cli, tmp_path)
    queue = cli.json("application", "list", "--state", "submitted")["applications"]
    assert [(a["id"], a["applicant"], a["amount"]) for a in queue] == [
        (number, "carol", "36000.00")
    ]
    assert cli.json("application", "list", "--state", "approved")["applications"] == []
    assert "climate-ml" in cli.ok("application", "list").stdout

    said = cli.ok("application", "comment", str(number), "Please confirm the H800 hours.")
    assert "carol reads it" in said.stdout
    approved = cli.ok(
        "application", "approve", str(number), "--rate", "0.75", "--project-max-gpus", "4",
        "--note", "Approved by the panel.",
    )  # fmt: skip
    assert (
        f"Application {number} is approved. Approved: HK$36,000.00 of subsidy paying 75% of the "
        f"list price, from {START} to {END}, as project climate-ml. Approved by the panel."
    ) in approved.stdout

    shown = cli.json("application", "show", str(number))
    assert (shown["state"], shown["project"], shown["subsidy_rate"]) == (
        "approved",
        "climate-ml",
        "0.75",
    )
    assert [e["kind"] for e in shown["events"]] == [
        "created", "submitted", "commented", "approved",
    ]  # fmt: skip
    # Entered by the CLI's actor for carol: her history says so.
    assert shown["events"][0]["actor"] == "cli:tester" and "for carol" in shown["events"][0]["body"]
    assert shown["events"][2]["body"] == "Please confirm the H800 hours."
    assert "History" in cli.ok("application", "show", str(number)).stdout

    with ledger.read() as session:
        project = session.scalars(select(Project).where(Project.slug == "climate-ml")).one()
        assert (project.subsidy_bp, project.limits["project_max_gpus"]) == (7500, 4)
        roles = {
            username: role
            for username, role in session.execute(
                select(Member.username, Member.role).where(Member.project_id == project.id)
            )
        }
        assert roles == {"carol": "manager", "alice": "member"}
        allocation = session.get(Allocation, shown["allocation_id"])
        assert allocation is not None and allocation.amount_micro == 36_000 * 10**6
        assert allocation.created_by == "cli:tester"
        actions = set(session.scalars(select(AuditEntry.action)))
    assert {"application.create", "application.submitted", "project.create", "quota.set",
            "allocation.add", "application.approved"} <= actions  # fmt: skip

    # The applicant's plan per quarter, spread over its months.
    [position] = cli.json("plan", "show", "climate-ml")["positions"]
    assert [m["month"] for m in position["months"]] == PLAN_MONTHS
    assert [m["planned"] for m in position["months"][:4]] == ["2000.00"] * 3 + ["3000.00"]

    # Decided once: a second approval is refused, and changes nothing.
    before = snapshot(ledger)
    one_line_error(
        cli("application", "approve", str(number), "--rate", "0.50"), 1, "is approved (since"
    )
    one_line_error(cli("application", "reject", str(number), "--reason", "No."), 1, "is approved")
    assert snapshot(ledger) == before


def test_a_rejection_carries_its_reason(cli: Cli, ledger: Database, tmp_path: Path) -> None:
    number = enter(cli, tmp_path, "bob", slug="bob-lab")
    before = snapshot(ledger)
    one_line_error(cli("application", "reject", str(number), "--reason", " "), 2, "needs a reason")
    assert snapshot(ledger) == before
    said = cli.ok("application", "reject", str(number), "--reason", "Climate work only this round.")
    assert f"Application {number} is rejected; bob reads the reason." in said.stdout
    shown = cli.json("application", "show", str(number))
    assert (shown["state"], shown["reason"]) == ("rejected", "Climate work only this round.")
    assert shown["project"] is None
    one_line_error(
        cli("application", "approve", str(number), "--rate", "0.70"), 1, "is rejected (since"
    )
    with ledger.read() as session:
        assert session.scalar(select(func.count()).select_from(Project)) == 0


def test_a_draft_waits_for_its_applicant(cli: Cli, ledger: Database, tmp_path: Path) -> None:
    path = write_application(tmp_path)
    said = cli.ok("application", "create", "--file", str(path), "--applicant", "carol")
    assert "It is a draft" in said.stdout
    [draft] = cli.json("application", "list")["applications"]
    assert draft["state"] == "draft"
    one_line_error(cli("application", "approve", str(draft["id"]), "--rate", "0.7"), 1, "is draft")


def test_an_approval_may_change_the_amount_and_window(cli: Cli, tmp_path: Path) -> None:
    number = enter(cli, tmp_path)
    until = month_start(7)
    cli.ok(
        "application", "approve", str(number), "--rate", "0.70", "--amount", "30000",
        "--from", START, "--until", until, "--slug", "climate",
    )  # fmt: skip
    shown = cli.json("application", "show", str(number))
    assert (shown["project"], shown["approved_amount"]) == ("climate", "30000.00")
    plan = cli.json("plan", "show", "climate")
    [grant] = plan["grants"]
    assert (grant["amount"], grant["valid_from"], grant["valid_until"]) == (
        "30000.00",
        f"{START}T00:00:00Z",
        f"{until}T00:00:00Z",
    )
    # Another amount than applied for: the applicant's quarters no longer fit; even instead.
    planned = [parse_amount(m["planned"]) for m in plan["positions"][0]["months"]]
    assert len(planned) == 6 and sum(planned) == 30_000 * 10**6


def test_a_plan_is_set_by_month_inside_its_window(
    cli: Cli, ledger: Database, tmp_path: Path
) -> None:
    number = enter(cli, tmp_path)
    cli.ok("application", "approve", str(number), "--rate", "0.75")
    [grant] = cli.json("plan", "show", "climate-ml")["grants"]
    allocation = str(grant["id"])

    months = [f"--month={m}=3000.00" for m in PLAN_MONTHS]
    said = cli.ok("plan", "set", "climate-ml", allocation, *months)
    assert "is now by month" in said.stdout
    [position] = cli.json("plan", "show", "climate-ml")["positions"]
    assert {m["planned"] for m in position["months"]} == {"3000.00"}

    before = snapshot(ledger)
    short = [*months[:-1], f"--month={PLAN_MONTHS[-1]}=2000.00"]
    one_line_error(
        cli("plan", "set", "climate-ml", allocation, *short),
        2,
        "the plan adds up to 35000.00, not the allocation's 36000.00",
    )
    outside = [*months[:-1], f"--month={month_start(13)[:7]}=3000.00"]
    one_line_error(
        cli("plan", "set", "climate-ml", allocation, *outside),
        2,
        f"month {month_start(13)[:7]} is outside allocation {allocation}'s window",
    )
    one_line_error(
        cli("plan", "set", "climate-ml", "999", *months),
        1,
        "project climate-ml has no allocation 999",
    )
    one_line_error(cli("plan", "set", "climate-ml", allocation), 2, "nothing to set")
    assert snapshot(ledger) == before

    cli.ok("plan", "set", "climate-ml", allocation, "--even")
    [position] = cli.json("plan", "show", "climate-ml")["positions"]
    assert len({m["planned"] for m in position["months"]}) > 1  # in proportion to the days
    assert "Subsidy per month" in cli.ok("plan", "show", "climate-ml").stdout
    cli.ok("admin", "project", "create", "empty", "--name", "Empty")
    assert "has no grant" in cli.ok("plan", "show", "empty").stdout


def use_gpu(ledger: Database, settings: Settings, username: str, project: str, start: int) -> None:
    """Two hours of gpu-1 from ``start``, charged."""
    end = start + 2 * MS_PER_HOUR
    with ledger.write() as session:
        admitted = admission.admit(
            session,
            settings,
            username=username,
            project_slug=project,
            profile_slug="gpu-1",
            server_name="gpu",
            now_ms=start,
        )
    metering.charge_until(ledger, end)
    with ledger.write() as session:
        admission.stop(session, admitted.session_id, now_ms=end, reason="user")


def test_the_scheme_report_adds_up_to_the_charges(
    cli: Cli, ledger: Database, settings: Settings, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    since = (now - timedelta(days=90)).strftime("%Y-%m-%d")
    number = enter(cli, tmp_path)
    cli.ok("application", "approve", str(number), "--rate", "0.75", "--from", since)
    cli.ok("admin", "project", "create", "other", "--name", "Other")
    cli.ok("admin", "allocate", "other", "1000", "--until", END)
    # Used two months ago: nothing in the last 30 days, so the projection is what was spent.
    use_gpu(ledger, settings, "carol", "climate-ml", to_ms(now - timedelta(days=60)))
    with ledger.read() as session:
        spent = int(session.scalar(select(func.sum(Charge.subsidy_micro))) or 0)
    assert spent > 0

    report = json.loads(cli.ok("report", "scheme", "--format", "json").stdout)
    granted = 37_000 * 10**6
    assert {key: report[key] for key in
            ("approved", "allocated", "spent", "remaining", "projected", "projected_unused")} == {
        "approved": "36000.00",
        "allocated": to_decimal_string(granted),
        "spent": to_decimal_string(spent),
        "remaining": to_decimal_string(granted - spent),
        "projected": to_decimal_string(spent),
        "projected_unused": to_decimal_string(granted - spent),
    }  # fmt: skip
    assert [p["project"] for p in report["ranking"]] == ["climate-ml", "other"]
    climate = report["ranking"][0]
    assert climate["status"] == "under_plan" and "left unused" in climate["message"]
    assert report["under_plan"] >= 1

    rows = list(csv.DictReader(io.StringIO(cli.ok("report", "scheme", "--format", "csv").stdout)))
    assert [r["project"] for r in rows] == ["climate-ml", "other", "TOTAL"]
    assert (rows[-1]["granted"], rows[-1]["spent_to_date"], rows[-1]["projected_unused"]) == (
        report["allocated"],
        report["spent"],
        report["projected_unused"],
    )
    assert rows[0]["remaining"] == to_decimal_string(36_000 * 10**6 - spent)
    table = cli.ok("report", "scheme").stdout
    assert "Scheme: approved HK$36,000.00" in table and "climate-ml" in table


def test_an_empty_scheme(cli: Cli) -> None:
    assert "No grants yet" in cli.ok("report", "scheme").stdout
    assert cli.json("application", "list") == {"applications": []}


FILE_ERRORS = [
    pytest.param({"amount": "1e30"}, "app.yaml: amount: amount '1e30' is not a plain decimal", id="file-exponent"),
    pytest.param({"amount": "１２３"}, "app.yaml: amount: amount '１２３' is not a plain decimal", id="file-fullwidth"),
    pytest.param({"amount": "1,000"}, "app.yaml: amount: amount '1,000' is not a plain decimal", id="file-comma"),
    pytest.param({"amount": "-5"}, "app.yaml: amount: amount '-5' is negative", id="file-negative"),
    pytest.param({"amount": "1_000"}, "app.yaml: amount: amount '1_000' is not a plain decimal", id="file-underscore"),
    pytest.param({"amount": None}, "app.yaml: amount: missing; required: kind, slug", id="file-missing"),
    pytest.param({"plan": "[6000, 1e30]"}, "app.yaml: plan[1]: amount '1e30' is not a plain decimal", id="file-plan"),
    pytest.param({"starts": "soon"}, "app.yaml: starts: starts 'soon' is not a date", id="file-date"),
    pytest.param({"ends": START}, "app.yaml: the period ends (", id="file-period"),
    pytest.param({"team": '["bad user"]'}, "app.yaml: team[0]: username 'bad user' is not valid", id="file-team"),
    pytest.param({"gpu_hours": "{h800: 1.5}"}, "app.yaml: gpu_hours.h800: GPU-hours '1.5' is not a whole number", id="file-hours"),
    pytest.param({"colour": "red"}, "app.yaml: colour: unknown key; allowed: kind, slug", id="file-unknown-key"),
    pytest.param({"title": "[a, b]"}, "app.yaml: title: give text here, not a list", id="file-title-list"),
    pytest.param({"slug": "demo"}, "app.yaml: a project demo exists already", id="file-slug-taken"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "message"), FILE_ERRORS)
def test_a_bad_file_is_one_line_naming_the_key_and_writes_nothing(
    cli: Cli, ledger: Database, tmp_path: Path, changes: dict[str, str | None], message: str
) -> None:
    cli.ok("admin", "project", "create", "demo", "--name", "Demo")
    path = write_application(tmp_path, changes)
    before = snapshot(ledger)
    result = cli("application", "create", "--file", str(path), "--applicant", "carol", "--submit")
    exit_code = 1 if "exists already" in message else 2
    one_line_error(result, exit_code, message)
    assert snapshot(ledger) == before


FLAG_ERRORS = [
    pytest.param(["--rate", "0.95"], "subsidy rate 0.95 is out of range; the scheme pays 0 to 0.9", id="rate-above-cap"),
    pytest.param(["--rate", "1.5"], "subsidy rate '1.5' is not a fraction", id="rate-above-1"),
    pytest.param(["--rate", "0.7", "--amount", "1e30"], "amount '1e30' is not a plain decimal", id="amount-exponent"),
    pytest.param(["--rate", "0.7", "--amount", "１２３"], "amount '１２３' is not a plain decimal", id="amount-fullwidth"),
    pytest.param(["--rate", "0.7", "--amount", "1,000"], "amount '1,000' is not a plain decimal", id="amount-comma"),
    pytest.param(["--rate", "0.7", "--amount", "-5"], "amount '-5' is negative", id="amount-negative"),
    pytest.param(["--rate", "0.7", "--from", END, "--until", START], f"--until {START}T00:00:00Z is not after --from {END}T00:00:00Z", id="until-before-from"),
    pytest.param(["--rate", "0.7", "--from", "soon"], "--from 'soon' is not a date", id="bad-from"),
    pytest.param(["--rate", "0.7", "--project-max-gpus", "lots"], "project_max_gpus 'lots' is not a whole number", id="bad-quota"),
]  # fmt: skip


@pytest.mark.parametrize(("flags", "message"), FLAG_ERRORS)
def test_a_bad_decision_is_one_line_naming_the_field_and_writes_nothing(
    cli: Cli, ledger: Database, tmp_path: Path, flags: list[str], message: str
) -> None:
    number = enter(cli, tmp_path)
    before = snapshot(ledger)
    one_line_error(cli("application", "approve", str(number), *flags), 2, message)
    assert snapshot(ledger) == before


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (["application", "show", "１２３"], 2, "ID '１２３' is not a whole number"),
        (["application", "show", "99"], 1, "no application 99"),
        (["application", "comment", "99", "Hello"], 1, "no application 99"),
        (["plan", "set", "demo", "1", "--month", "2027-01=1e30"], 2, "--month '2027-01=1e30': amount '1e30'"),
        (["plan", "set", "demo", "1", "--month", "2027-13=5"], 2, "month '2027-13' is not a month"),
        (["plan", "set", "demo", "1", "--month", "2027-01"], 2, "is not YYYY-MM=AMOUNT"),
        (["plan", "set", "demo", "1", "--even", "--month", "2027-01=5"], 2, "or --even, not both"),
        (["plan", "show", "nope"], 1, "No such project: nope"),
        (["application", "create", "--file", "missing.yaml", "--applicant", "carol"], 2, "missing.yaml: cannot read the file"),
    ],
)  # fmt: skip
def test_other_bad_input(
    cli: Cli, ledger: Database, args: list[str], exit_code: int, message: str
) -> None:
    before = snapshot(ledger)
    one_line_error(cli(*args), exit_code, message)
    assert snapshot(ledger) == before
