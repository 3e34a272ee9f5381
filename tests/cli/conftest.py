"""CLI fixtures: a config file naming the test database, and a runner that uses it.

The runner puts ``--config`` after the command name, the position the root command has to
lift out of argv, so every CLI test also exercises that.

Typer's ``CliRunner`` converts the Typer app into its click command on every ``invoke``, which
took about half of a short command's time; the ``subsidyhub`` console script does that once
per process. So these tests convert it once (per app) too, and reuse the command.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.testing
import yaml
from sqlalchemy import select
from typer.testing import CliRunner, Result

from subsidyhub.cli import app
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.models import Base

from ..conftest import TEST_CONFIG

ACTOR = "tester"
CLI_ENV = {"SUBSIDYHUB_ACTOR": ACTOR, "SUBSIDYHUB_CONFIG": None}


@pytest.fixture(scope="session", autouse=True)
def click_command_built_once() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(typer.testing, "_get_command", functools.cache(typer.testing._get_command))
        yield


@pytest.fixture
def config_file(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "subsidyhub.yaml"
    path.write_text(yaml.safe_dump(TEST_CONFIG | {"database_url": database_url}), encoding="utf-8")
    return path


@dataclass
class Cli:
    config: Path
    runner: CliRunner

    def __call__(self, *args: str) -> Result:
        return self.runner.invoke(app, [*args, "--config", str(self.config)])

    def ok(self, *args: str) -> Result:
        result = self(*args)
        assert result.exit_code == 0, result.output
        assert result.stderr == ""
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)


@pytest.fixture
def bare_cli(config_file: Path) -> Cli:
    """The CLI on a database where no ledger was created yet."""
    return Cli(config_file, CliRunner(env=CLI_ENV))


@pytest.fixture
def cli(bare_cli: Cli, ledger_url: str) -> Cli:
    """The CLI on an existing ledger (admin commands never create one): a copy of the session's
    migrated template, which is what ``db upgrade`` makes (``bare_cli`` tests that)."""
    return bare_cli


@pytest.fixture
def ledger(database_url: str) -> Iterator[Database]:
    """Direct access to the database the CLI writes, for setting up usage and checking rows."""
    db = Database(database_url)
    yield db
    db.dispose()


def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every ledger table: equal snapshots mean nothing was written."""
    with db.read() as session:
        return {
            table.name: sorted((tuple(row) for row in session.execute(select(table))), key=repr)
            for table in Base.metadata.sorted_tables
        }
