"""``subsidyhub report utilisation``: per GPU type, GPU-hours used over capacity, as the funder asks."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from subsidyhub.ledger import admission, metering
from subsidyhub.ledger.db import Database
from subsidyhub.settings import Settings
from subsidyhub.timeutil import MS_PER_HOUR, month_bounds, to_ms

from .conftest import CLI_ENV, Cli

MONTH = "2025-03"
APRIL = month_bounds("2025-04")[0]
MARCH_HOURS = 31 * 24


def use(ledger: Database, settings: Settings, profile: str, start: int, end: int) -> None:
    with ledger.write() as session:
        admitted = admission.admit(
            session,
            settings,
            username="alice",
            project_slug="demo",
            profile_slug=profile,
            server_name=profile,
            now_ms=start,
        )
    metering.charge_until(ledger, end)
    with ledger.write() as session:
        admission.stop(session, admitted.session_id, now_ms=end, reason="user")


@pytest.fixture
def march(cli: Cli, ledger: Database, settings: Settings) -> None:
    """gpu-1 for 2 h on March 10; gpu-2 (2× a100) from 23:00 on March 31 into April."""
    cli.ok("admin", "project", "create", "demo", "--name", "Demo")
    cli.ok("admin", "allocate", "demo", "5000", "--from", "2025-01-01")
    cli.ok("admin", "member", "add", "demo", "alice")
    start = to_ms(datetime(2025, 3, 10, 9, 0, tzinfo=UTC))
    use(ledger, settings, "gpu-1", start, start + 2 * MS_PER_HOUR)
    use(ledger, settings, "gpu-2", APRIL - MS_PER_HOUR, APRIL + 3 * MS_PER_HOUR)


def with_capacity(cli: Cli, tmp_path: Path, capacity: dict[str, int]) -> Cli:
    data = yaml.safe_load(cli.config.read_text(encoding="utf-8"))
    config = tmp_path / "capacity.yaml"
    config.write_text(yaml.safe_dump(data | {"gpu_capacity": capacity}), encoding="utf-8")
    return Cli(config, CliRunner(env=CLI_ENV))


def test_csv_totals_equal_the_statement(cli: Cli, march: None, tmp_path: Path) -> None:
    sized = with_capacity(cli, tmp_path, {"h800": 4, "a100": 2})
    report = sized.ok("report", "utilisation", "--month", MONTH, "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(report)))
    assert [(r["gpu_type"], r["used_gpu_hours"], r["utilisation_percent"]) for r in rows] == [
        ("a100", "2.0000", "0.13"),  # 1 h × 2 GPUs of 2 × 744
        ("h800", "2.0000", "0.07"),  # 2 of 4 × 744
        ("TOTAL", "4.0000", "0.09"),  # 4 of 6 × 744
    ]
    assert rows[0]["capacity_gpu_hours"] == f"{2 * MARCH_HOURS}.0000"
    assert rows[-1]["gpus"] == "6"
    statement = list(
        csv.DictReader(io.StringIO(sized.ok("statement", "--all", "--month", MONTH).stdout))
    )[-1]
    assert (rows[-1]["used_gpu_hours"], rows[-1]["list"], rows[-1]["subsidy"]) == (
        statement["gpu_hours"],
        statement["list"],
        statement["subsidy"],
    )


def test_json_and_table(cli: Cli, march: None, tmp_path: Path) -> None:
    sized = with_capacity(cli, tmp_path, {"h800": 4, "a100": 2})
    document = json.loads(
        sized.ok("report", "utilisation", "--month", "2025-04", "--format", "json").stdout
    )
    assert document["month"] == "2025-04"
    assert document["hours_in_month"] == "720.0000"
    assert document["totals"]["used_gpu_hours"] == "6.0000"  # 3 h × 2 a100 in April
    assert document["unknown_capacity"] == []
    table = sized.ok("report", "utilisation", "--month", MONTH).stdout
    assert "GPU utilisation 2025-03 (744.0000 hours)" in table
    assert "TOTAL" in table and "0.09" in table


def test_unknown_capacity_says_how_to_set_it(cli: Cli, march: None) -> None:
    # The test config prices two GPU types and sets no gpu_capacity or local.gpus.
    result = cli("report", "utilisation", "--month", MONTH, "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["unknown_capacity"] == ["a100", "h800"]
    assert document["totals"]["utilisation_percent"] is None
    assert document["totals"]["used_gpu_hours"] == "4.0000"
    assert result.stderr == (
        "note: capacity unknown for a100, h800; set gpu_capacity: {TYPE: GPUS} in "
        "subsidyhub.yaml (see docs/configuration.md)\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--month", "2025-13"], "error: month '2025-13' is not a month; write it as YYYY-MM"),
        (["--month", "2025-03", "--format", "pdf"], "Invalid value for '--format'"),
    ],
)
def test_bad_input_is_one_clear_line(cli: Cli, args: list[str], message: str) -> None:
    result = cli("report", "utilisation", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_a_capacity_for_an_unpriced_type_is_a_config_error(cli: Cli, tmp_path: Path) -> None:
    result = with_capacity(cli, tmp_path, {"h900": 4})("report", "utilisation", "--month", MONTH)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert "gpu_capacity: 'h900' has no price in prices.gpu; allowed: a100, h800" in result.stderr
