"""``server list`` / ``server stop`` and ``admin quota show``: what the admin page does, typed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from subsidyhub.ledger import admission
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.models import SpawnSession
from subsidyhub.settings import Settings
from subsidyhub.timeutil import to_ms

from .conftest import ACTOR, Cli, snapshot

STARTED = to_ms(datetime(2025, 3, 10, 9, 0, tzinfo=UTC))


@pytest.fixture
def running(cli: Cli, ledger: Database, settings: Settings) -> int:
    """alice runs her server ``gpu`` in project demo; the session's id."""
    cli.ok("admin", "project", "create", "demo", "--name", "Demo")
    cli.ok("admin", "allocate", "demo", "500", "--from", "2025-01-01")
    cli.ok("admin", "member", "add", "demo", "alice")
    with ledger.write() as session:
        admitted = admission.admit(
            session,
            settings,
            username="alice",
            project_slug="demo",
            profile_slug="gpu-1",
            server_name="gpu",
            now_ms=STARTED,
        )
    return admitted.session_id


def test_list_then_stop_with_a_note(cli: Cli, running: int, ledger: Database) -> None:
    [listed] = cli.json("server", "list")["sessions"]
    assert (listed["id"], listed["user"], listed["server_name"]) == (running, "alice", "gpu")
    assert "alice/gpu" in cli.ok("server", "list", "--project", "demo").stdout

    stopped = cli.ok("server", "stop", "alice/gpu", "--note", "left running over the holidays")
    assert stopped.stdout.startswith("Stopped alice/gpu in project demo (reason admin): ")
    assert "asks the hub to stop the server 20 s after this" in stopped.stdout
    assert cli.json("server", "list")["sessions"] == []
    [entry] = cli.json("admin", "audit", "--target", "project:demo/servers", "--limit", "1")
    assert (entry["action"], entry["actor"]) == ("server.stop", f"cli:{ACTOR}")
    assert entry["after"]["reason"] == "admin"
    assert entry["after"]["note"] == "left running over the holidays"
    with ledger.read() as session:
        row = session.get(SpawnSession, running)
        # The owner is shown the reason and the note (GET me's stops, the hub's pages).
        assert row is not None
        assert (row.stop_reason, row.stop_note) == ("admin", "left running over the holidays")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["alice", "--note", "x"], 1, "alice's default server has no running session"),
        (["bob/gpu", "--note", "x"], 1, "bob/gpu has no running session"),
        (["/gpu", "--note", "x"], 2, "'/gpu' names no user"),
        (["alice/gpu", "--note", "x" * 501], 2, "the note is 501 characters"),
    ],
)
def test_stop_refusals_are_one_line_and_write_nothing(
    cli: Cli, running: int, ledger: Database, args: list[str], code: int, message: str
) -> None:
    before = snapshot(ledger)
    result = cli("server", "stop", *args)
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1
    assert snapshot(ledger) == before


def test_stop_needs_a_note(cli: Cli, running: int) -> None:
    assert cli("server", "stop", "alice/gpu").exit_code == 2


def test_quota_show(cli: Cli, running: int) -> None:
    cli.ok("admin", "quota", "set", "demo", "--project-max-gpus", "4")
    shown = cli.ok("admin", "quota", "show", "demo").stdout
    assert shown.startswith("Quota of project demo:")
    assert "4 GPUs" in shown and "alice" in shown
    data = cli.json("admin", "quota", "show", "demo")
    assert data["quota"]["project_max_gpus"] == 4
    assert [m["username"] for m in data["members"]] == ["alice"]
    assert cli("admin", "quota", "show", "nope").exit_code == 1
