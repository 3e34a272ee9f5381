"""``subsidyhub statement``: a month's usage per user and profile, for a subsidy claim.

The numbers come from :func:`subsidyhub.ledger.statements.statement`, which sums the charge
lines themselves, so the totals equal what was charged to the micro-unit. Each line also says
how much of its charges paid for idle GPUs (the ``idle_*`` columns), a part of them.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from subsidyhub.cli import values
from subsidyhub.cli.context import CliError, Invocation
from subsidyhub.errors import InvalidInput
from subsidyhub.ledger import projects, statements
from subsidyhub.money import format_money
from subsidyhub.reports.statement_html import render_statement_html
from subsidyhub.timeutil import format_hours


class Format(StrEnum):
    csv = "csv"
    json = "json"
    html = "html"


def statement(
    ctx: typer.Context,
    month: Annotated[
        str, typer.Option("--month", metavar="YYYY-MM", help="Calendar month in UTC, e.g. 2026-11.")
    ],
    slugs: Annotated[
        list[str] | None,
        typer.Argument(help="Project slugs to include; or give --all.", show_default=False),
    ] = None,
    all_projects: Annotated[bool, typer.Option("--all", help="Include every project.")] = False,
    fmt: Annotated[
        Format,
        typer.Option(
            "--format",
            help="csv: one row per project, user and profile plus a TOTAL row; json: the same "
            "with project details; html: a self-contained printable page, one project per "
            "printed page, headed with centre_name. Each form says how much of the charges "
            "paid for idle GPUs (idle_* columns).",
        ),
    ] = Format.csv,
    output_file: Annotated[
        Path | None,
        typer.Option("--output", metavar="FILE", help="Write to FILE instead of standard output."),
    ] = None,
) -> None:
    """Print a monthly statement: hours, list price, subsidy and co-pay per user and profile.

    Amounts are decimal strings in the config's currency; totals equal the charges.

    The idle_* columns are the part of the charges spent on idle GPUs: included, not added.

    Examples:
      subsidyhub statement protein-folding --month 2026-11
      subsidyhub statement --all --month 2026-11 --format json --output 2026-11.json
      subsidyhub statement --all --month 2026-11 --format html --output 2026-11.html
    """
    if bool(slugs) == all_projects:
        raise InvalidInput("give one or more project slugs, or --all, but not both")
    month = values.month(month)
    run: Invocation = ctx.obj
    currency = run.settings.currency
    with run.database().read() as session:
        chosen = None if all_projects else [projects.get_project(session, s) for s in slugs or []]
        result = statements.statement(session, month, currency, chosen)
    if fmt is Format.html:
        text = render_statement_html(result, run.settings.centre_name)
    elif fmt is Format.csv:
        text = result.as_csv()
    else:
        text = json.dumps(result.as_dict(), indent=2) + "\n"
    if output_file is None:
        typer.echo(text, nl=False)
        return
    try:
        output_file.write_text(text, encoding="utf-8")
    except OSError as error:
        raise CliError(f"cannot write {output_file}: {error.strerror}") from None
    idle = result.total_idle
    typer.echo(
        f"Wrote the {month} statement ({len(result.lines)} lines, subsidy "
        f"{format_money(result.total_subsidy, currency)}, of which "
        f"{format_money(idle.subsidy_micro, currency)} on "
        f"{format_hours(idle.gpu_ms, 2)} idle GPU-hours) to {output_file}."
    )
