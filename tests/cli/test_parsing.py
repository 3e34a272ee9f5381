"""Pure pieces of the CLI: where ``--config`` may go, how typed values and durations read."""

from __future__ import annotations

import pytest

from subsidyhub.cli import hoist_config
from subsidyhub.cli.audit import change_text
from subsidyhub.cli.context import actor, display_url
from subsidyhub.cli.output import duration
from subsidyhub.cli.values import gpu_prices
from subsidyhub.errors import InvalidInput


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["admin", "project", "list"], ["admin", "project", "list"]),
        (["--config", "a.yaml", "admin"], ["--config", "a.yaml", "admin"]),
        (["admin", "project", "list", "--config", "a.yaml"], ["--config", "a.yaml", "admin", "project", "list"]),
        (["admin", "--config=a.yaml", "audit"], ["--config", "a.yaml", "admin", "audit"]),
        (["--config", "a.yaml", "admin", "--config", "b.yaml"], ["--config", "b.yaml", "admin"]),
        (["admin", "allocate", "--", "--config", "x"], ["admin", "allocate", "--", "--config", "x"]),
    ],
)  # fmt: skip
def test_hoist_config(args: list[str], expected: list[str]) -> None:
    assert hoist_config(args) == expected


def test_hoist_config_without_a_file() -> None:
    with pytest.raises(ValueError, match="'--config' requires an argument"):
        hoist_config(["admin", "audit", "--config"])


def test_gpu_prices() -> None:
    assert gpu_prices(["h800=36", "a100=24.50"]) == {"h800": 36_000_000, "a100": 24_500_000}
    with pytest.raises(InvalidInput, match="not TYPE=PRICE"):
        gpu_prices(["H800=36"])
    with pytest.raises(InvalidInput, match="amount 'x' is not a plain decimal"):
        gpu_prices(["h800=x"])


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(None, "-"), (0, "0m"), (59, "0m"), (720, "12m"), (3600 * 5 + 720, "5h 12m"), (86400 * 2 + 3600 * 4 + 60, "2d 4h")],
)  # fmt: skip
def test_duration(seconds: int | None, expected: str) -> None:
    assert duration(seconds) == expected


def test_change_text() -> None:
    assert change_text(None, {"role": "member", "max_gpus": None}) == "role=member, max_gpus=none"
    assert change_text({"status": "active", "name": "A"}, {"status": "closed", "name": "A"}) == (
        "status: active → closed"
    )
    assert change_text({"role": "member"}, None) == "removed"


def test_display_url_hides_the_password() -> None:
    assert display_url("postgresql://u:secret@db:5432/hub") == "postgresql://u:***@db:5432/hub"
    assert display_url("sqlite:////var/lib/x.sqlite") == "sqlite:////var/lib/x.sqlite"


def test_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUBSIDYHUB_ACTOR", "ops-bot")
    assert actor() == "cli:ops-bot"
    monkeypatch.delenv("SUBSIDYHUB_ACTOR")
    assert actor().startswith("cli:") and len(actor()) > len("cli:")
