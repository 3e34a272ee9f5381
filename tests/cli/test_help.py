"""Every command and every option explains itself in ``--help``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from subsidyhub.cli import app

from .conftest import CLI_ENV


def walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from walk(sub, (*path, name))


COMMANDS = dict(walk(typer.main.get_command(app)))


def test_the_documented_commands_exist() -> None:
    leaves = {
        " ".join(path) for path, command in COMMANDS.items() if not hasattr(command, "commands")
    }
    assert leaves == {
        "application list",
        "application show",
        "application create",
        "application comment",
        "application approve",
        "application reject",
        "plan show",
        "plan set",
        "report scheme",
        "db upgrade",
        "admin project create", "admin project list", "admin project show", "admin project update",
        "admin allocate",
        "admin member add", "admin member remove", "admin member list",
        "admin quota set", "admin quota show",
        "admin course create", "admin course enrol", "admin course show",
        "admin price list", "admin price set",
        "admin audit",
        "server list", "server stop",
        "capacity show", "reservation create", "reservation list", "reservation cancel",
        "queue show", "queue remove",
        "statement",
        "report utilisation",
        "kubernetes prepuller-values",
        "up",
    }  # fmt: skip


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=lambda p: " ".join(p) or "subsidyhub")
def test_help(path: tuple[str, ...]) -> None:
    command = COMMANDS[path]
    if path:
        assert command.help, f"{' '.join(path)} has no help text"
    for param in command.params:
        assert getattr(param, "help", None), f"{' '.join(path)} {param.name} has no help text"
    result = CliRunner(env=CLI_ENV).invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: subsidyhub" in result.stdout


def test_help_states_the_exit_codes() -> None:
    result = CliRunner(env=CLI_ENV).invoke(app, ["--help"])
    assert "Exit status: 0 done; 1 refused" in " ".join(result.stdout.split())
