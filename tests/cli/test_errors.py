"""Bad input: one readable ``error:`` line, a non-zero exit, and not one row written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from subsidyhub.cli import app
from subsidyhub.ledger.db import Database

from .conftest import CLI_ENV, Cli, snapshot

BAD_INPUT = [
    pytest.param(
        ["admin", "allocate", "demo", "-5"],
        2,
        "amount -5.00 is negative; to take funds back, add --correction and a --note saying why",
        id="negative-amount",
    ),
    pytest.param(
        ["admin", "allocate", "demo", "lots"],
        2,
        "amount 'lots' is not a plain decimal; write digits with an optional point",
        id="non-numeric-amount",
    ),
    pytest.param(
        ["admin", "allocate", "demo", "1.0000001"],
        2,
        "amount '1.0000001' has more than 6 decimal places",
        id="too-precise-amount",
    ),
    pytest.param(
        ["admin", "allocate", "nope", "5"],
        1,
        "No such project: nope. Projects include: demo, other",
        id="unknown-project",
    ),
    pytest.param(
        ["admin", "project", "create", "x", "--name", "X", "--subsidy-rate", "1.5"],
        2,
        "subsidy rate '1.5' is not a fraction from 0 to 1 in steps of 0.0001; give one such as 0.70",
        id="rate-above-1",
    ),
    pytest.param(
        ["admin", "project", "create", "x", "--name", "X", "--subsidy-rate", "-0.1"],
        2,
        "subsidy rate '-0.1' is not a fraction from 0 to 1 in steps of 0.0001; give one such as 0.70",
        id="rate-negative",
    ),
    pytest.param(
        ["admin", "project", "create", "x", "--name", "X", "--subsidy-rate", "0.95"],
        2,
        "subsidy rate 0.95 is outside 0..0.90 (the scheme pays at most 90%)",
        id="rate-above-cap",
    ),
    pytest.param(
        ["admin", "project", "update", "demo", "--subsidy-rate", "1.5"],
        2,
        "subsidy rate '1.5' is not a fraction from 0 to 1",
        id="update-rate-above-1",
    ),
    pytest.param(
        ["admin", "project", "create", "demo", "--name", "Again"],
        1,
        "Project demo already exists",
        id="duplicate-project",
    ),
    pytest.param(
        ["admin", "project", "create", "Bad_Slug", "--name", "X"],
        2,
        "project slug 'Bad_Slug' is not valid",
        id="bad-slug",
    ),
    pytest.param(
        ["admin", "project", "update", "demo"],
        2,
        "nothing to change; give --name, --status or --subsidy-rate",
        id="update-nothing",
    ),
    pytest.param(
        ["admin", "allocate", "demo", "5", "--from", "2026-02-01", "--until", "2026-01-01"],
        2,
        "valid until 2026-01-01T00:00:00Z is not after valid from 2026-02-01T00:00:00Z",
        id="until-before-from",
    ),
    pytest.param(
        ["admin", "allocate", "demo", "5", "--from", "soon"],
        2,
        "--from 'soon' is not a date; write it as YYYY-MM-DD or an ISO 8601 time",
        id="bad-date",
    ),
    pytest.param(
        ["admin", "allocate", "demo", "-5", "--correction"],
        2,
        "a correction needs a --note saying why it is made",
        id="correction-without-note",
    ),
    pytest.param(
        ["admin", "member", "add", "demo", "bad user"],
        2,
        "username 'bad user' is not valid",
        id="bad-username",
    ),
    pytest.param(
        ["admin", "member", "remove", "demo", "bob"],
        1,
        "bob is not a member of project demo; members: alice",
        id="remove-non-member",
    ),
    pytest.param(
        ["admin", "quota", "set", "demo", "--project-max-gpus", "lots"],
        2,
        "project_max_gpus 'lots' is not a whole number of GPUs; give 0 to 100000 GPUs, or 'none' for no limit",
        id="quota-not-a-number",
    ),
    pytest.param(
        ["admin", "quota", "set", "demo", "--project-max-gpus", "-1"],
        2,
        "project_max_gpus '-1' is not a whole number of GPUs",
        id="quota-negative",
    ),
    pytest.param(
        ["admin", "quota", "set", "demo", "--profiles", "gpu-9"],
        2,
        "unknown profiles gpu-9; profiles include: cpu-small, gpu-1, gpu-2",
        id="quota-unknown-profile",
    ),
    pytest.param(
        ["admin", "quota", "set", "demo"],
        2,
        "nothing to change; give at least one of --project-max-gpus, --member-max-gpus",
        id="quota-nothing",
    ),
    pytest.param(
        ["admin", "price", "set", "--gpu", "h800"],
        2,
        "--gpu 'h800' is not TYPE=PRICE; write it like h800=36.00",
        id="price-not-a-pair",
    ),
    pytest.param(
        ["admin", "price", "set", "--cpu-core", "-1"],
        2,
        "amount '-1' is negative",
        id="price-negative",
    ),
    pytest.param(
        ["admin", "price", "set", "--cpu-core", "1", "--effective-from", "2020-01-01"],
        2,
        "effective_from is in the past",
        id="price-in-the-past",
    ),
    pytest.param(
        ["statement", "demo", "--month", "2026-13"],
        2,
        "month '2026-13' is not a month; write it as YYYY-MM, e.g. 2026-11",
        id="bad-month",
    ),
    pytest.param(
        ["statement", "nope", "--month", "2026-11"],
        1,
        "No such project: nope. Projects include: demo, other",
        id="statement-unknown-project",
    ),
    pytest.param(
        ["statement", "demo", "--all", "--month", "2026-11"],
        2,
        "give one or more project slugs, or --all, but not both",
        id="statement-slug-and-all",
    ),
]


@pytest.fixture
def populated(cli: Cli) -> None:
    cli.ok("admin", "project", "create", "demo", "--name", "Demo")
    cli.ok("admin", "project", "create", "other", "--name", "Other")
    cli.ok("admin", "allocate", "demo", "500")
    cli.ok("admin", "member", "add", "demo", "alice")


@pytest.mark.parametrize(("args", "exit_code", "message"), BAD_INPUT)
def test_bad_input_is_one_line_and_writes_nothing(
    cli: Cli, populated: None, ledger: Database, args: list[str], exit_code: int, message: str
) -> None:
    before = snapshot(ledger)
    result = cli(*args)
    assert result.exit_code == exit_code, result.output
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""
    assert snapshot(ledger) == before


def test_usage_errors_exit_non_zero(cli: Cli) -> None:
    assert cli("admin", "allocate", "demo").exit_code == 2
    assert cli("admin", "project", "create", "demo").exit_code == 2  # --name is required
    assert cli("admin", "project", "update", "demo", "--status", "gone").exit_code == 2
    assert cli("admin", "nonsense").exit_code == 2


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "key", "detail"),
    [
        (
            "prices:\n  gpu: {h800: lots}\n",
            "prices.gpu.h800",
            "amount 'lots' is not a plain decimal",
        ),
        ("prices:\n  gpus: {}\n", "prices.gpus", "unknown key; allowed here: cpu_core"),
        ("subsidy_rate: 0.95\n", "subsidy_rate", "exceeds the scheme's 90% cap"),
        ("currency: [HKD\n", "line 2", "not valid YAML"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, key: str, detail: str) -> None:
    config = write(tmp_path / "broken.yaml", text)
    result = CliRunner(env=CLI_ENV).invoke(
        app, ["admin", "project", "list", "--config", str(config)]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {config}: {key}: ")
    assert detail in result.stderr
    assert result.stderr.count("\n") == 1


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    result = CliRunner(env=CLI_ENV).invoke(app, ["--config", str(missing), "admin", "audit"])
    assert result.exit_code == 2
    assert result.stderr == f"error: {missing}: cannot read the file (No such file or directory)\n"


def test_help_works_with_a_broken_config(tmp_path: Path) -> None:
    config = write(tmp_path / "broken.yaml", "prices: {gpus: {}}\n")
    result = CliRunner(env=CLI_ENV).invoke(
        app, ["admin", "project", "list", "--help", "--config", str(config)]
    )
    assert result.exit_code == 0
    assert "--json" in result.stdout


def test_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.yaml", "database_url: postgresql://admin:s3cret@127.0.0.1:1/ledger\n"
    )
    result = CliRunner(env=CLI_ENV).invoke(app, ["db", "upgrade", "--config", str(config)])
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: cannot open the database postgresql://admin:***@127.0.0.1:1/ledger: "
    )
    assert "s3cret" not in result.output
    assert result.stderr.count("\n") == 1


def test_admin_commands_never_create_a_ledger(bare_cli: Cli, tmp_path: Path) -> None:
    # A second shell without SUBSIDYHUB_DATA_DIR points at a data dir where 'up' never ran.
    data_dir = tmp_path / "elsewhere"
    config = write(tmp_path / "c.yaml", f"data_dir: {data_dir}\n")
    runner = CliRunner(env=CLI_ENV)
    for args in (["admin", "project", "create", "x", "--name", "X"], ["admin", "audit"]):
        result = runner.invoke(app, [*args, "--config", str(config)])
        assert result.exit_code == 1, result.output
        assert result.stderr == (
            f"error: no SubsidyHub ledger at {data_dir / 'subsidyhub.sqlite'}; run 'subsidyhub "
            "up' (or 'subsidyhub db upgrade') to create one there, or set SUBSIDYHUB_DATA_DIR "
            "to the data dir that 'subsidyhub up' printed (or --config to the config that "
            "names your database)\n"
        )
        assert not data_dir.exists()
    # An existing database without a ledger in it (PostgreSQL, or an empty SQLite file).
    result = bare_cli("admin", "project", "list")
    assert result.exit_code == 1
    assert "error: no SubsidyHub ledger at " in result.stderr
    # 'db upgrade' is how one is made; after it the same command works.
    bare_cli.ok("db", "upgrade")
    assert bare_cli.ok("admin", "project", "list").stdout
