"""``subsidyhub admin project …`` and ``admin allocate``: projects and the money they are given.

Commands parse and print; :mod:`subsidyhub.ledger.projects` validates, writes and audits in
one transaction, so a refused change leaves nothing behind.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer
from sqlalchemy.orm import Session

from subsidyhub import shapes
from subsidyhub.cli import output, values
from subsidyhub.cli.context import CliError, Invocation
from subsidyhub.errors import InvalidInput
from subsidyhub.ledger import projects
from subsidyhub.ledger.accounts import Account, load_account, load_accounts
from subsidyhub.ledger.db import now_ms
from subsidyhub.ledger.models import Organisation, Project
from subsidyhub.ledger.summary import project_summary
from subsidyhub.money import bp_to_fraction_string, format_money, parse_amount, to_decimal_string
from subsidyhub.timeutil import iso

app = typer.Typer(help="Create, list, show and change projects.", no_args_is_help=True)


class Kind(StrEnum):
    research = "research"
    course = "course"


class Status(StrEnum):
    active = "active"
    suspended = "suspended"
    closed = "closed"


Slug = Annotated[str, typer.Argument(help="The project's slug, e.g. protein-folding.")]
JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print JSON (amounts as decimal strings) instead of a table.")
]
SubsidyRate = Annotated[
    str | None,
    typer.Option(
        "--subsidy-rate",
        metavar="FRACTION",
        help="Share of the list price the scheme pays, as a fraction from 0 to 0.90, e.g. 0.7 "
        "for 70%. Applies to servers started after the change.",
    ),
]


@app.command("create")
def create(
    ctx: typer.Context,
    slug: Annotated[
        str,
        typer.Argument(
            help="Short unique name: 1-63 lowercase letters, digits and dashes, e.g. protein-folding."
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="Display name, e.g. 'Protein folding'.")],
    org: Annotated[
        str | None,
        typer.Option(
            "--org", help="Organisation slug (e.g. hku-chem); created if it does not exist."
        ),
    ] = None,
    subsidy_rate: SubsidyRate = None,
    kind: Annotated[
        Kind, typer.Option("--kind", help="research: a research group; course: a taught course.")
    ] = Kind.research,
) -> None:
    """Create a project with the config's default quotas and subsidy rate.

    Example:
      subsidyhub admin project create protein-folding --name "Protein folding" --org hku-chem
    """
    bp = None if subsidy_rate is None else values.subsidy_bp(subsidy_rate)
    run: Invocation = ctx.obj
    with run.database().write() as session:
        project = projects.create_project(
            session,
            run.settings,
            run.actor,
            slug=slug,
            name=name,
            at_ms=now_ms(),
            organisation=org,
            subsidy_bp=bp,
            kind=kind.value,
        )
        described = shapes.describe_project(project)
    typer.echo(
        f"Created project {slug} ({described['name']}): {described['kind']}, subsidy rate "
        f"{described['subsidy_rate']}. Give it money with: subsidyhub admin allocate {slug} AMOUNT"
    )


@app.command("list")
def list_projects(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List every project with its money: allocated, balance, burn per hour and time left."""
    run: Invocation = ctx.obj
    at = now_ms()
    with run.database().read() as session:
        rows = projects.list_projects(session)
        accounts = load_accounts(session, rows, at)
        summaries = [project_summary(session, run.settings, p, accounts[p.id]) for p in rows]
    if as_json:
        output.print_json(summaries)
        return
    if not summaries:
        typer.echo(
            "No projects yet; create one with: subsidyhub admin project create SLUG --name N"
        )
        return
    currency = run.settings.currency
    output.print_table(
        ["Slug", "Name", "Status", "Subsidy", "Allocated", "Balance", "Burn/h", "Time left"],
        (
            [
                p.slug,
                p.name,
                p.status,
                bp_to_fraction_string(p.subsidy_bp),
                format_money(accounts[p.id].allocated, currency),
                format_money(accounts[p.id].balance, currency),
                format_money(accounts[p.id].burn_rate_per_hour, currency),
                output.duration(s["time_left_seconds"]),
            ]
            for p, s in zip(rows, summaries, strict=True)
        ),
    )


def _details(
    session: Session, run: Invocation, project: Project, account: Account
) -> dict[str, Any]:
    """The summary ``GET me`` shows, plus what only an admin needs: allocations and members."""
    organisation = (
        session.get(Organisation, project.organisation_id) if project.organisation_id else None
    )
    return project_summary(session, run.settings, project, account) | {
        "organisation": organisation.slug if organisation else None,
        "created": iso(project.created_ms),
        "allocations": [
            shapes.describe_allocation(a) for a in projects.allocations_of(session, project)
        ],
        "members": [shapes.describe_member(m) for m in projects.members_of(session, project)],
    }


@app.command("show")
def show(ctx: typer.Context, slug: Slug, as_json: JsonFlag = False) -> None:
    """Show one project: balance, burn rate, time left, quota, warnings, allocations, members."""
    run: Invocation = ctx.obj
    with run.database().read() as session:
        project = projects.get_project(session, slug)
        account = load_account(session, project, now_ms())
        details = _details(session, run, project, account)
    if as_json:
        output.print_json(details)
        return
    currency = run.settings.currency

    def money(micro: int) -> str:
        return format_money(micro, currency)

    typer.echo(f"Project {details['slug']}: {details['name']}")
    typer.echo(
        f"  {details['kind']}, {details['status']}, organisation "
        f"{details['organisation'] or output.NONE}, subsidy rate {details['subsidy_rate']}"
    )
    typer.echo(
        f"  allocated {money(account.allocated)}, balance {money(account.balance)}, "
        f"available {money(account.available)} (held for running servers {money(account.holds)})"
    )
    typer.echo(
        f"  burn {money(account.burn_rate_per_hour)}/h subsidy "
        f"({money(account.list_rate_per_hour)}/h list), time left "
        f"{output.duration(details['time_left_seconds'])}, {details['running_servers']} servers, "
        f"{details['gpus_in_use']} GPUs"
    )
    overdraft = parse_amount(details["overdraft"])
    if overdraft:
        typer.echo(
            f"  overdraft {money(overdraft)}: charged beyond every allocation while servers "
            "could not be stopped in time; the next allocation pays it first"
        )
    typer.echo("Quota:")
    for line in output.quota_lines(details["quota"]):
        typer.echo(f"  {line}")
    for warning in details["warnings"]:
        typer.echo(f"{warning['level'].upper()}: {warning['message']}")
    output.print_table(
        ["Id", "Amount", "Drawn", "Valid from", "Valid until", "By", "Note"],
        (
            [
                a["id"],
                a["amount"],
                a["drawn"],
                a["valid_from"],
                a["valid_until"],
                a["created_by"],
                a["note"],
            ]
            for a in details["allocations"]
        ),
        title=f"Allocations ({currency})",
    )
    output.print_members(details["members"], title="Members")


@app.command("update")
def update(
    ctx: typer.Context,
    slug: Slug,
    name: Annotated[str | None, typer.Option("--name", help="New display name.")] = None,
    status: Annotated[
        Status | None,
        typer.Option(
            "--status",
            help="active: servers may start; suspended: no new servers; closed: finished.",
        ),
    ] = None,
    subsidy_rate: SubsidyRate = None,
) -> None:
    """Change a project's name, status or subsidy rate; only the options given change.

    Example:
      subsidyhub admin project update protein-folding --status suspended
    """
    if name is None and status is None and subsidy_rate is None:
        raise InvalidInput("nothing to change; give --name, --status or --subsidy-rate")
    bp = None if subsidy_rate is None else values.subsidy_bp(subsidy_rate)
    run: Invocation = ctx.obj
    with run.database().write() as session:
        project = projects.update_project(
            session,
            run.actor,
            slug,
            name=name,
            status=None if status is None else status.value,
            subsidy_bp=bp,
        )
        described = shapes.describe_project(project)
    typer.echo(
        f"Updated project {slug}: name {described['name']!r}, status {described['status']}, "
        f"subsidy rate {described['subsidy_rate']}."
    )


def allocate(
    ctx: typer.Context,
    slug: Slug,
    amount: Annotated[
        str,
        typer.Argument(
            help="Amount in the config's currency, e.g. 5000 or 1250.50; negative only with "
            "--correction."
        ),
    ],
    valid_from: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="DATE",
            help="Start of the allocation's window: YYYY-MM-DD (midnight UTC) or an ISO 8601 "
            "time. Default: now.",
        ),
    ] = None,
    valid_until: Annotated[
        str | None,
        typer.Option(
            "--until",
            metavar="DATE",
            help="End of the window (exclusive), same forms as --from; what is left then lapses. "
            "Default: no end.",
        ),
    ] = None,
    note: Annotated[
        str, typer.Option("--note", help="Why: grant number, invoice, reason for a correction.")
    ] = "",
    correction: Annotated[
        bool,
        typer.Option(
            "--correction",
            help="Record a correction, which may be negative to take funds back; needs --note.",
        ),
    ] = False,
) -> None:
    """Give a project money: add an allocation, optionally limited to a time window.

    Examples:
      subsidyhub admin allocate protein-folding 5000 --until 2027-11-01 --note "grant G-123"
      subsidyhub admin allocate protein-folding -250 --correction --note "entered twice"
    """
    micro = values.amount(amount, allow_negative=True)
    # The ledger's refusals name no flags (the API and admin page share them); these two do.
    if micro < 0 and not correction:
        raise CliError(
            f"amount {to_decimal_string(micro)} is negative; to take funds back, add "
            "--correction and a --note saying why",
            exit_code=2,
        )
    if correction and not note.strip():
        raise CliError("a correction needs a --note saying why it is made", exit_code=2)
    start = None if valid_from is None else values.moment(valid_from, "--from")
    end = None if valid_until is None else values.moment(valid_until, "--until")
    run: Invocation = ctx.obj
    at = now_ms()
    currency = run.settings.currency
    with run.database().write() as session:
        allocation = projects.add_allocation(
            session,
            run.settings,
            run.actor,
            slug,
            amount_micro=micro,
            at_ms=at,
            valid_from_ms=start,
            valid_until_ms=end,
            note=note,
            correction=correction,
        )
        account = load_account(session, projects.get_project(session, slug), at)
    window = f"valid from {iso(allocation.valid_from_ms)}"
    if allocation.valid_until_ms is not None:
        window += f" until {iso(allocation.valid_until_ms)}"
    verb = "Recorded correction of" if correction else "Allocated"
    typer.echo(
        f"{verb} {format_money(micro, currency)} ({to_decimal_string(micro)} {currency}) to project "
        f"{slug}: allocation {allocation.id}, {window}. Balance now "
        f"{format_money(account.balance, currency)}."
    )
