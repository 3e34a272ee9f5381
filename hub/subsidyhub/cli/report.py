"""``subsidyhub report utilisation`` and ``report scheme``: what the funder asks about.

``report scheme`` is the subsidy scheme over every grant (allocations with an end):
approved, allocated, spent, remaining and projected, and the projects ranked by the subsidy
projected to go unused (:func:`subsidyhub.ledger.burn_plan.scheme`, as the API's
``GET reports/scheme`` gives it).

``report utilisation``: GPU-hours used over GPU capacity, per GPU type and month.

The numbers come from :func:`subsidyhub.ledger.utilisation.utilisation`, which sums the same
charge lines as the statements, so the report's GPU-hours, list and subsidy totals equal the
month's statements. A type whose capacity is unknown is reported, not an error: the report
says which key to set. Idle GPU-hours (GPUs that did no work) and the subsidy spent on them
are shown per type and, in the table and JSON, per project.
"""

from __future__ import annotations

import csv
import io
from enum import StrEnum
from typing import Annotated

import typer

from subsidyhub import shapes
from subsidyhub.cli import output, values
from subsidyhub.cli.context import Invocation
from subsidyhub.ledger import burn_plan
from subsidyhub.ledger.db import now_ms
from subsidyhub.ledger.utilisation import utilisation
from subsidyhub.money import format_money, parse_amount, to_decimal_string

app = typer.Typer(help="Reports for the funder.", no_args_is_help=True)

COLUMNS = (
    "gpu_type",
    "gpus",
    "capacity_source",
    "capacity_gpu_hours",
    "used_gpu_hours",
    "utilisation_percent",
    "reserved_gpu_hours",
    "reserved_unused_gpu_hours",
    "sessions",
    "list",
    "subsidy",
    "idle_gpu_hours",
    "idle_percent",
    "idle_list",
    "idle_subsidy",
)


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@app.command("utilisation")
def report_utilisation(
    ctx: typer.Context,
    month: Annotated[
        str, typer.Option("--month", metavar="YYYY-MM", help="Calendar month in UTC, e.g. 2026-11.")
    ],
    fmt: Annotated[
        Format,
        typer.Option(
            "--format",
            help="table for people; csv (one row per GPU type plus TOTAL) or json (also per "
            "project) for the claim.",
        ),
    ] = Format.table,
) -> None:
    """Print GPU utilisation per GPU type: GPU-hours used over GPU capacity in the month.

    Used GPU-hours are those charged to admitted sessions (GPUs × hours each server held
    them, cut at month bounds exactly as statements are). Capacity is the type's GPUs
    (config key gpu_capacity, else local.gpus/docker.gpus when the pool is one type) × the
    hours of the month. List and subsidy are the sessions' whole charges; a cpu-only row
    holds sessions without GPUs, so the totals equal the month's statements. Reserved
    GPU-hours are what reservations kept (up to now); reserved unused, what the reserving
    projects did not use of them. Idle GPU-hours are the used ones while every GPU of a
    server did no work, with their share of used GPU-hours and the GPUs' part of the list and
    subsidy over them (included in list and subsidy, not added); the table and JSON also
    give them per project.

    Examples:
      subsidyhub report utilisation --month 2026-11
      subsidyhub report utilisation --month 2026-11 --format csv > utilisation-2026-11.csv
    """
    month = values.month(month)
    run: Invocation = ctx.obj
    with run.database().read() as session:
        result = utilisation(session, run.settings, month, now_ms())
    document = result.as_dict()
    rows = [*document["rows"], document["totals"]]
    if fmt is Format.json:
        output.print_json(document)
    elif fmt is Format.csv:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["month", *COLUMNS], lineterminator="\n")
        writer.writeheader()
        writer.writerows({"month": month} | row for row in rows)
        typer.echo(buffer.getvalue(), nl=False)
    else:
        output.print_table(
            [
                "GPU type",
                "GPUs",
                "Capacity GPU-h",
                "Used GPU-h",
                "Utilisation %",
                "Reserved GPU-h",
                "Reserved unused",
                "Sessions",
                f"List ({result.currency})",
                f"Subsidy ({result.currency})",
                "Idle GPU-h",
                "Idle %",
                f"Idle subsidy ({result.currency})",
            ],
            (
                [
                    row["gpu_type"],
                    row["gpus"],
                    row["capacity_gpu_hours"],
                    row["used_gpu_hours"],
                    row["utilisation_percent"],
                    row["reserved_gpu_hours"],
                    row["reserved_unused_gpu_hours"],
                    row["sessions"],
                    row["list"],
                    row["subsidy"],
                    row["idle_gpu_hours"],
                    row["idle_percent"],
                    row["idle_subsidy"],
                ]
                for row in rows
            ),
            title=f"GPU utilisation {month} ({document['hours_in_month']} hours)",
        )
        if document["projects"]:
            output.print_table(
                [
                    "Project",
                    "Used GPU-h",
                    "Idle GPU-h",
                    "Idle %",
                    f"Idle list ({result.currency})",
                    f"Idle subsidy ({result.currency})",
                ],
                (
                    [
                        row["project"],
                        row["used_gpu_hours"],
                        row["idle_gpu_hours"],
                        row["idle_percent"],
                        row["idle_list"],
                        row["idle_subsidy"],
                    ]
                    for row in document["projects"]
                ),
                title=f"Idle GPUs per project {month} (part of the figures above)",
            )
        if document["scheme"] is not None and document["scheme"]["allocated"] != "0.00":
            scheme = document["scheme"]
            typer.echo(
                f"Scheme now ({result.currency}): approved {scheme['approved']}, allocated "
                f"{scheme['allocated']}, spent {scheme['spent']}, remaining {scheme['remaining']}, "
                f"projected at the current burn {scheme['projected']} (unused "
                f"{scheme['projected_unused']}); per project: subsidyhub report scheme"
            )
    if result.unknown_types:
        typer.echo(
            f"note: capacity unknown for {', '.join(result.unknown_types)}; set "
            "gpu_capacity: {TYPE: GPUS} in subsidyhub.yaml (see docs/configuration.md)",
            err=True,
        )


SCHEME_COLUMNS = (
    "project",
    "name",
    "status",
    "granted",
    "planned_to_date",
    "spent_to_date",
    "remaining",
    "deviation_percent",
    "projected",
    "projected_unused",
    "runs_out_at",
    "ends",
)


@app.command("scheme")
def report_scheme(
    ctx: typer.Context,
    fmt: Annotated[
        Format,
        typer.Option(
            "--format",
            help="table for people; csv (one row per project, most projected unused first, "
            "plus TOTAL) or json (as the API's reports/scheme) for the funder.",
        ),
    ] = Format.table,
) -> None:
    """Print the subsidy scheme: approved, allocated, spent, remaining, projected, projected unused.

    Approved is the subsidy of approved applications; allocated, spent and projected are over every grant (an allocation with an end). Projected is what the grants will have spent by their ends at the last 30 days' pace, and projected unused what that leaves: under-spent subsidy is lost to the scheme. The projects follow, ranked by projected unused (most first), each with its status against its burn plan (over or under by more than the config's scheme.plan_margin_percent).

    Examples:
      subsidyhub report scheme
      subsidyhub report scheme --format csv > scheme.csv
    """
    run: Invocation = ctx.obj
    now = now_ms()
    currency = run.settings.currency
    with run.database().read() as session:
        view = burn_plan.scheme(session, run.settings, now)
    document = shapes.describe_scheme(view, currency, now)
    rows = [
        shown | {"remaining": to_decimal_string(p.granted_micro - p.spent_to_date_micro)}
        for p, shown in zip(view.ranking(), document["ranking"], strict=True)
    ]
    if fmt is Format.json:
        output.print_json(document)
    elif fmt is Format.csv:
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer, fieldnames=SCHEME_COLUMNS, extrasaction="ignore", lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(rows)
        writer.writerow(
            {
                "project": "TOTAL",
                "granted": document["allocated"],
                "spent_to_date": document["spent"],
                "remaining": document["remaining"],
                "projected": document["projected"],
                "projected_unused": document["projected_unused"],
            }
        )
        typer.echo(buffer.getvalue(), nl=False)
    else:

        def money(key: str) -> str:
            return format_money(parse_amount(document[key], allow_negative=True), currency)

        typer.echo(
            f"Scheme: approved {money('approved')}, allocated {money('allocated')}, spent "
            f"{money('spent')}, remaining {money('remaining')}; projected by the grants' ends "
            f"{money('projected')}, projected unused {money('projected_unused')}."
        )
        if not rows:
            typer.echo("No grants yet (allocations with an end).")
            return
        typer.echo(
            f"{len(rows)} project{'' if len(rows) == 1 else 's'} with grants: "
            f"{document['over_plan']} over plan, "
            f"{document['under_plan']} under plan."
        )
        output.print_table(
            [
                "Project",
                "Status",
                f"Granted ({currency})",
                f"Planned to date ({currency})",
                f"Spent to date ({currency})",
                "Deviation %",
                f"Projected ({currency})",
                f"Projected unused ({currency})",
                "Runs out",
                "Ends",
            ],
            (
                [
                    row["project"],
                    row["status"].replace("_", " "),
                    row["granted"],
                    row["planned_to_date"],
                    row["spent_to_date"],
                    row["deviation_percent"],
                    row["projected"],
                    row["projected_unused"],
                    row["runs_out_at"],
                    row["ends"],
                ]
                for row in rows
            ),
            title="Projects by subsidy projected to go unused (most first)",
        )
