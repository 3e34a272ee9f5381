"""How the CLI prints: JSON for scripts, rich tables for people.

``--json`` output is the ledger's own dictionaries (amounts as decimal strings, times as ISO
8601 UTC), so a script reads the same numbers as the service's API returns. Tables show money
rounded to cents with the currency symbol. Cell text is never parsed as rich markup, so a
project called "[red]x" prints as written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from subsidyhub.limits import LIMITS, MEMBER_LIMITS, Limit

NONE = "-"
PIPED_WIDTH = 1000


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def print_table(
    columns: Sequence[str], rows: Iterable[Sequence[object]], *, title: str | None = None
) -> None:
    table = Table(*columns, title=title, title_justify="left")
    for row in rows:
        table.add_row(*(Text(NONE if cell is None else str(cell)) for cell in row))
    console = Console(highlight=False)
    if not console.is_terminal:
        # Piped or redirected output is read whole: let columns take the width they need.
        console.width = PIPED_WIDTH
    console.print(table)


def duration(seconds: int | None) -> str:
    """Time left as ``2d 4h``, ``5h 12m`` or ``12m``; ``-`` when nothing is burning."""
    if seconds is None:
        return NONE
    minutes = seconds // 60
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


def quota_lines(quota: dict[str, Any], declared: tuple[Limit, ...] = LIMITS) -> list[str]:
    """One line per limit ("GPUs at once per member: 2"), as ``limits.show_all`` gives them."""
    return [f"{item.label}: {limit_text(quota[item.name], item)}" for item in declared]


def limit_text(value: Any, item: Limit) -> str:
    """A shown limit as people read it: ``unlimited``, ``2 GPUs``, ``12 hours``, ``a, b``."""
    if item.kind == "names":
        return "all" if value is None else (", ".join(value) or "none")
    return "unlimited" if value is None else f"{value} {item.unit}"


def print_members(members: list[dict[str, Any]], *, title: str) -> None:
    """Members as ``describe_member`` gives them; an unset limit means the project's applies."""
    print_table(
        ["User", "Role", *(item.label for item in MEMBER_LIMITS)],
        (
            [m["username"], m["role"], *(m["quota"][item.name] for item in MEMBER_LIMITS)]
            for m in members
        ),
        title=f"{title} ({NONE} = the project's limit)",
    )
