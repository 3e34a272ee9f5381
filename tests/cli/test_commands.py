"""The admin round trip through the CLI, on SQLite and PostgreSQL.

Usage is produced with the ledger API (admission and metering belong to the service), then
the CLI must show the same money: balances from the charges, statements equal to them.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from subsidyhub.ledger import admission, metering, projects
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.migrate import alembic_config
from subsidyhub.ledger.statements import charged_in_month
from subsidyhub.money import to_decimal_string
from subsidyhub.settings import Settings
from subsidyhub.timeutil import MS_PER_HOUR, to_ms

from .conftest import ACTOR, Cli

# A session in a past month, so the month's statement is complete.
STARTED = to_ms(datetime(2025, 3, 10, 9, 0, tzinfo=UTC))
MONTH = "2025-03"


def use_gpu_for_two_hours(ledger: Database, settings: Settings) -> None:
    with ledger.write() as session:
        admitted = admission.admit(
            session,
            settings,
            username="alice",
            project_slug="demo",
            profile_slug="gpu-1",
            server_name="",
            now_ms=STARTED,
        )
    metering.charge_until(ledger, STARTED + 2 * MS_PER_HOUR)
    with ledger.write() as session:
        admission.stop(
            session, admitted.session_id, now_ms=STARTED + 2 * MS_PER_HOUR, reason="user"
        )


@pytest.fixture
def demo(cli: Cli) -> None:
    """Project demo with 500.00 from before the session, and alice as a member."""
    cli.ok("admin", "project", "create", "demo", "--name", "Demo", "--org", "hku")
    cli.ok("admin", "allocate", "demo", "500", "--from", "2025-01-01", "--note", "grant G-1")
    cli.ok("admin", "member", "add", "demo", "alice")


def test_round_trip(cli: Cli, ledger: Database, settings: Settings) -> None:
    created = cli.ok(
        "admin",
        "project",
        "create",
        "demo",
        "--name",
        "Demo",
        "--org",
        "hku",
        "--subsidy-rate",
        "0.7",
    )
    assert "Created project demo (Demo)" in created.stdout
    allocated = cli.ok(
        "admin", "allocate", "demo", "500", "--from", "2025-01-01", "--note", "grant G-1"
    )
    assert "Allocated HK$500.00" in allocated.stdout
    assert "Balance now HK$500.00" in allocated.stdout
    cli.ok(
        "admin",
        "member",
        "add",
        "demo",
        "alice",
        "--member-max-gpus",
        "2",
        "--gpu-hours-per-week",
        "40",
    )
    cli.ok(
        "admin", "quota", "set", "demo", "--project-max-gpus", "4", "--gpu-types", "h800,a100",
        "--max-session-hours", "none",
    )  # fmt: skip
    cli.ok("admin", "price", "set", "--gpu", "h800=32.00", "--note", "cheaper")

    # Admitted in March 2025, the session is charged at the config's prices (version 1):
    # 8 cores × 0.50 + 64 GiB × 0.10 + 1 H800 × 36.00 = 46.40 an hour, 70% subsidised.
    use_gpu_for_two_hours(ledger, settings)

    shown = cli.json("admin", "project", "show", "demo")
    assert shown["balance"] == "435.04"  # 500.00 - 2 h × 46.40 × 0.7
    assert shown["allocated"] == "500.00"
    assert shown["subsidy_rate"] == "0.7"
    assert shown["organisation"] == "hku"
    assert [a["amount"] for a in shown["allocations"]] == ["500.00"]
    assert shown["allocations"][0]["drawn"] == "64.96"
    assert shown["allocations"][0]["note"] == "grant G-1"
    assert shown["members"] == [
        {
            "username": "alice",
            "role": "member",
            "quota": {
                "member_max_gpus": 2,
                "gpu_hours_per_week": "40",
                "max_session_hours": None,
            },
            "source": "manual",
            "name": None,
            "email": None,
        }
    ]
    assert shown["quota"]["project_max_gpus"] == 4
    assert shown["quota"]["gpu_types"] == ["a100", "h800"]
    assert shown["quota"]["max_session_hours"] is None
    assert shown["warnings"] == []

    listed = cli.json("admin", "project", "list")
    assert [(p["slug"], p["balance"]) for p in listed] == [("demo", "435.04")]
    assert cli.json("admin", "member", "list", "demo")[0]["username"] == "alice"
    price_versions = cli.json("admin", "price", "list")
    assert [(v["version"], v["state"], v["gpu"]["h800"]) for v in price_versions] == [
        (1, "superseded", "36.00"),
        (2, "in force", "32.00"),
    ]

    with ledger.read() as session:
        charged = charged_in_month(session, projects.get_project(session, "demo"), MONTH)
    expected = tuple(to_decimal_string(micro) for micro in charged)
    assert expected == ("92.80", "64.96", "27.84")

    rows = list(csv.DictReader(io.StringIO(cli.ok("statement", "demo", "--month", MONTH).stdout)))
    assert [(r["project"], r["username"], r["profile"], r["hours"]) for r in rows] == [
        ("demo", "alice", "gpu-1", "2.0000"),
        ("TOTAL", "", "", "2.0000"),
    ]
    assert (rows[-1]["list"], rows[-1]["subsidy"], rows[-1]["copay"]) == expected

    as_json = json.loads(cli.ok("statement", "--all", "--month", MONTH, "--format", "json").stdout)
    totals = as_json["totals"]
    assert (totals["list"], totals["subsidy"], totals["copay"]) == expected
    assert [p["slug"] for p in as_json["projects"]] == ["demo"]

    actions = [(e["action"], e["target"], e["actor"]) for e in cli.json("admin", "audit")]
    actor = f"cli:{ACTOR}"
    assert actions[:5] == [
        ("price.set", "prices/2", actor),
        ("quota.set", "project:demo/quota", actor),
        ("member.add", "project:demo/members/alice", actor),
        ("allocation.add", "project:demo/allocations", actor),
        ("project.create", "project:demo", actor),
    ]


def test_statement_to_file(
    cli: Cli, demo: None, ledger: Database, settings: Settings, tmp_path: Path
) -> None:
    use_gpu_for_two_hours(ledger, settings)
    target = tmp_path / "march.json"
    result = cli.ok(
        "statement", "demo", "--month", MONTH, "--format", "json", "--output", str(target)
    )
    assert "1 lines, subsidy HK$64.96" in result.stdout
    assert json.loads(target.read_text(encoding="utf-8"))["totals"]["subsidy"] == "64.96"


def test_empty_month_has_only_a_zero_total(cli: Cli, demo: None) -> None:
    rows = list(
        csv.DictReader(io.StringIO(cli.ok("statement", "--all", "--month", "2026-01").stdout))
    )
    assert [(r["project"], r["sessions"], r["subsidy"]) for r in rows] == [("TOTAL", "0", "0.00")]


def test_correction_takes_funds_back(cli: Cli, demo: None) -> None:
    result = cli.ok("admin", "allocate", "demo", "-100", "--correction", "--note", "entered twice")
    assert "Recorded correction of \u2212HK$100.00" in result.stdout
    assert cli.json("admin", "project", "show", "demo")["balance"] == "400.00"
    [entry] = cli.json("admin", "audit", "--target", "project:demo/allocations", "--limit", "1")
    assert entry["action"] == "allocation.correct"
    assert entry["after"]["note"] == "entered twice"


def test_update_and_member_changes(cli: Cli, demo: None) -> None:
    updated = cli.ok(
        "admin", "project", "update", "demo", "--status", "suspended", "--subsidy-rate", "0.5"
    )
    assert "status suspended, subsidy rate 0.5" in updated.stdout
    shown = cli.json("admin", "project", "show", "demo")
    assert (shown["status"], shown["subsidy_rate"]) == ("suspended", "0.5")

    changed = cli.ok("admin", "member", "add", "demo", "alice", "--role", "manager")
    assert changed.stdout.startswith("Updated alice in project demo: role manager")
    cli.ok("admin", "member", "remove", "demo", "alice")
    assert cli.json("admin", "member", "list", "demo") == []
    actions = [
        e["action"] for e in cli.json("admin", "audit", "--target", "project:demo", "--limit", "3")
    ]
    assert actions == ["member.remove", "member.update", "project.update"]


def test_quota_none_lifts_a_limit_and_other_fields_stay(cli: Cli, demo: None) -> None:
    cli.ok(
        "admin", "quota", "set", "demo", "--project-max-gpus", "4", "--profiles", "cpu-small,gpu-1"
    )
    cli.ok("admin", "quota", "set", "demo", "--project-max-gpus", "none")
    quota = cli.json("admin", "project", "show", "demo")["quota"]
    assert quota["project_max_gpus"] is None
    assert quota["profiles"] == ["cpu-small", "gpu-1"]


def test_tables_for_people(cli: Cli, demo: None) -> None:
    listed = cli.ok("admin", "project", "list").stdout
    assert "demo" in listed and "HK$500.00" in listed
    shown = cli.ok("admin", "project", "show", "demo").stdout
    assert "balance HK$500.00" in shown
    assert "grant G-1" in shown
    assert "alice" in cli.ok("admin", "member", "list", "demo").stdout
    assert "h800 36.00" in cli.ok("admin", "price", "list").stdout
    assert "allocation.add" in cli.ok("admin", "audit").stdout


def test_db_upgrade_reports_database_and_revision(cli: Cli, database_url: str) -> None:
    lines = cli.ok("db", "upgrade").stdout.splitlines()
    assert lines[1].startswith("database: ")
    assert lines[1].removeprefix("database: ").split("/")[-1] == database_url.split("/")[-1]
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert lines[2] == f"revision: {head}"
    assert lines[3].startswith("prices: version 1 (config)")


@pytest.mark.parametrize(
    ("args", "old", "new", "where"),
    [
        (["admin", "quota", "set", "demo"], "--max-gpus", "--project-max-gpus", "project"),
        (["admin", "member", "add", "demo", "alice"], "--max-gpus", "--member-max-gpus", "member"),
    ],
)
def test_old_limit_spellings_still_work_and_say_the_new_one(
    cli: Cli, args: list[str], old: str, new: str, where: str
) -> None:
    cli.ok("admin", "project", "create", "demo", "--name", "Demo")
    result = cli(*args, old, "3")
    assert result.exit_code == 0, result.output
    assert result.stderr == f"note: {old} is now {new}\n"
    shown = cli.json("admin", "project", "show", "demo")
    if where == "project":
        assert shown["quota"]["project_max_gpus"] == 3
    else:
        assert shown["members"][0]["quota"]["member_max_gpus"] == 3


def test_a_large_price_move_needs_confirm(cli: Cli) -> None:
    refused = cli("admin", "price", "set", "--gpu", "h800=3.59", "--note", "slipped digit")
    assert refused.exit_code == 2
    assert refused.stderr == (
        "error: These prices change by more than 10×: h800 GPU-h 36.00 → 3.59. Check them; to "
        "apply them anyway, confirm the change with --confirm.\n"
    )
    assert len(cli.json("admin", "price", "list")) == 1
    cli.ok("admin", "price", "set", "--gpu", "h800=3.59", "--note", "really", "--confirm")
    assert [v["gpu"]["h800"] for v in cli.json("admin", "price", "list")][-1] == "3.59"
