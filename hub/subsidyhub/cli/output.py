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


def limit(value: object, unit: str = "") -> str:
    """A quota value as people read it: ``unlimited`` for None."""
    if value is None:
        return "unlimited"
    if isinstance(value, list):
        return ", ".join(value) if value else "(none allowed)"
    return f"{value}{unit}"


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


def quota_lines(quota: dict[str, Any]) -> list[str]:
    """A project's quota (``describe_quota`` or a summary's ``quota``) as labelled lines."""
    return [
        f"max GPUs at once: {limit(quota['max_gpus'])}",
        f"max GPUs per member: {limit(quota['member_max_gpus'])}",
        f"GPU-hours per week per member: {limit(quota['gpu_hours_per_week'])}",
        f"max session length: {limit(quota['max_session_hours'], ' h')}",
        f"profiles: {limit(quota['profiles']) if quota['profiles'] is not None else 'all'}",
        f"GPU types: {limit(quota['gpu_types']) if quota['gpu_types'] is not None else 'all'}",
    ]


def print_members(members: list[dict[str, Any]], *, title: str) -> None:
    """Members as ``describe_member`` gives them; an unset cap means the project's limit."""
    print_table(
        ["User", "Role", "Max GPUs", "GPU-h/week", "Max session h"],
        (
            [
                m["username"],
                m["role"],
                m["max_gpus"],
                m["gpu_hours_per_week"],
                m["max_session_hours"],
            ]
            for m in members
        ),
        title=f"{title} ({NONE} = the project's limit)",
    )
