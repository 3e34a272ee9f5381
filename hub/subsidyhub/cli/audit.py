"""``subsidyhub admin audit``: who changed what, newest first, from the ledger's audit log."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from subsidyhub.cli import output
from subsidyhub.cli.context import Invocation
from subsidyhub.cli.projects import JsonFlag
from subsidyhub.ledger import audit
from subsidyhub.timeutil import iso

# Longer changes are cut in the table; --json has them whole.
CHANGE_WIDTH = 100


def _compact(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def change_text(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """One line for a table: the new fields of a creation, or ``key: old → new`` of a change."""
    if after is None:
        return "removed"
    if before is None:
        return ", ".join(f"{k}={_compact(v)}" for k, v in after.items())
    changed = [
        f"{k}: {_compact(before.get(k))} → {_compact(v)}"
        for k, v in after.items()
        if before.get(k) != v
    ]
    return ", ".join(changed) or "(no change)"


def _shorten(text: str) -> str:
    return text if len(text) <= CHANGE_WIDTH else text[: CHANGE_WIDTH - 1] + "…"


def show_audit(
    ctx: typer.Context,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            help="Only entries about this target and its parts, e.g. project:protein-folding "
            "(also its allocations, members and quota) or prices.",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10_000, help="At most this many entries.")
    ] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Show the audit log, newest first: time, actor, action, target and what changed.

    Example:
      subsidyhub admin audit --target project:protein-folding --limit 20
    """
    run: Invocation = ctx.obj
    with run.database().read() as session:
        rows = [
            {
                "id": e.id,
                "at": iso(e.at_ms),
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "before": e.before,
                "after": e.after,
            }
            for e in audit.entries(session, target=target, limit=limit)
        ]
    if as_json:
        output.print_json(rows)
        return
    output.print_table(
        ["Id", "At", "Actor", "Action", "Target", "Change"],
        (
            [
                r["id"],
                r["at"],
                r["actor"],
                r["action"],
                r["target"],
                _shorten(change_text(r["before"], r["after"])),
            ]
            for r in rows
        ),
    )
