"""``subsidyhub server list`` and ``server stop``: running servers across projects, stopped by an admin.

``stop`` is the ledger's half of the admin page's Stop button
(:func:`subsidyhub.ledger.server_stops.stop_by_admin`): the session is charged to now, closed
with reason ``admin`` and the note, and audited. The CLI has no hub token, so it does not
reach the hub itself: the subsidy service's enforcer sees the admin's stop in the ledger within
a second (:func:`subsidyhub.ledger.enforcement.closed_in_ledger_only`) and asks the hub to stop
the server after ``metering.admin_stop_grace_seconds``, as for the admin page's Stop button.
"""

from __future__ import annotations

from typing import Annotated

import typer

from subsidyhub import shapes
from subsidyhub.cli import output
from subsidyhub.cli.context import Invocation
from subsidyhub.cli.projects import JsonFlag
from subsidyhub.errors import InvalidInput, NotFound
from subsidyhub.ledger import projects
from subsidyhub.ledger.admission import find_running, list_running
from subsidyhub.ledger.db import now_ms
from subsidyhub.ledger.server_stops import stop_by_admin
from subsidyhub.money import format_money, parse_amount

app = typer.Typer(help="List running servers and stop one.", no_args_is_help=True)


def parse_server(text: str) -> tuple[str, str]:
    """``USER`` or ``USER/SERVER`` → (user, server name); the default server's name is ``''``."""
    user, _, server = text.partition("/")
    if not user:
        raise InvalidInput(f"'{text}' names no user; write USER or USER/SERVER, e.g. alice/gpu")
    projects.check_username(user)
    return user, server


@app.command("list")
def list_servers(
    ctx: typer.Context,
    project: Annotated[
        str | None, typer.Option("--project", metavar="SLUG", help="Only this project's servers.")
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", metavar="NAME", help="Only this user's servers.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Running servers with their project, profile and what they have cost so far."""
    run: Invocation = ctx.obj
    now = now_ms()
    with run.database().read() as session:
        project_id = projects.get_project(session, project).id if project else None
        rows = list_running(session, username=user, project_id=project_id)
        shown = [shapes.describe_session(row, slug, now) for row, slug in rows]
    if as_json:
        output.print_json({"sessions": shown})
        return
    currency = run.settings.currency
    output.print_table(
        ["Server", "Project", "Profile", "GPUs", "Started", "Cost so far (list)", "Subsidy"],
        (
            [
                f"{item['user']}/{item['server_name']}" if item["server_name"] else item["user"],
                item["project"],
                item["profile"],
                item["gpu_count"],
                item["started"],
                format_money(parse_amount(item["cost"]["list"]), currency),
                format_money(parse_amount(item["cost"]["subsidy"]), currency),
            ]
            for item in shown
        ),
        title=f"Running servers ({len(shown)})",
    )


@app.command("stop")
def stop_server(
    ctx: typer.Context,
    server: Annotated[
        str,
        typer.Argument(
            metavar="USER[/SERVER]", help="Whose server: alice (default server) or alice/gpu."
        ),
    ],
    note: Annotated[
        str,
        typer.Option(
            "--note",
            metavar="TEXT",
            help="Why, for the audit log and the user, e.g. 'left running over the holidays'.",
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Stop a running server now: charge it, close it with reason 'admin' and the note.

    Charges end at once; the subsidy service asks the hub to stop the server after
    metering.admin_stop_grace_seconds, the time its user is given to save their work.

    Example:
      subsidyhub server stop alice/gpu --note "left running over the holidays"
    """
    run: Invocation = ctx.obj
    user, name = parse_server(server)
    with run.database().write() as session:
        row = find_running(session, user, name)
        if row is None:
            label = f"{user}/{name}" if name else f"{user}'s default server"
            raise NotFound(
                f"{label} has no running session; 'subsidyhub server list' shows those running"
            )
        stopped = stop_by_admin(session, row.id, actor=run.actor, now_ms=now_ms(), note=note)
        shown = shapes.describe_stopped(stopped)
    if as_json:
        output.print_json(shown)
        return
    currency = run.settings.currency
    totals = shown["totals"]
    typer.echo(
        f"Stopped {server} in project {stopped.project} (reason admin): "
        f"{format_money(parse_amount(totals['list']), currency)} list, "
        f"{format_money(parse_amount(totals['subsidy']), currency)} subsidy."
    )
    grace = run.settings.metering.admin_stop_grace_seconds
    typer.echo(
        f"Charges ended now; {user} is told why in JupyterLab, and the subsidy service asks the "
        f"hub to stop the server {grace:g} s after this (metering.admin_stop_grace_seconds)."
    )
