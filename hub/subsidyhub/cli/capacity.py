"""``subsidyhub capacity show``, ``reservation create|list|cancel`` and ``queue show|remove``.

The CLI works on the ledger directly (as ``server list`` does), so it needs no service:
the same ledger functions as the API decide, and every change is audited with the CLI's actor.
"""

from __future__ import annotations

from typing import Annotated

import typer

from subsidyhub import shapes
from subsidyhub.cli import output, values
from subsidyhub.cli.context import Invocation
from subsidyhub.cli.projects import JsonFlag
from subsidyhub.cli.servers import parse_server
from subsidyhub.ledger import capacity, queue, reservations
from subsidyhub.ledger.db import now_ms
from subsidyhub.timeutil import format_duration

capacity_app = typer.Typer(help="GPUs per type: capacity, use, reservations, queue.")
reservation_app = typer.Typer(
    help="Keep GPUs of a type for a project or course.", no_args_is_help=True
)
queue_app = typer.Typer(help="Who waits for GPUs, in order.", no_args_is_help=True)


def _wait(at: str | None) -> str:
    return "unknown" if at is None else at


@capacity_app.command("show")
def show_capacity(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Per GPU type: GPUs, in use, reserved now, free now, waiting, and when one frees."""
    run: Invocation = ctx.obj
    now = now_ms()
    with run.database().read() as session:
        shown = [
            shapes.describe_type_view(queue.view(session, run.settings, gpu_type, now))
            for gpu_type in capacity.gpu_types(run.settings)
        ]
    if as_json:
        output.print_json({"gpu_types": shown})
        return
    output.print_table(
        [
            "GPU type",
            "GPUs",
            "In use",
            "Reserved now",
            "Free now",
            "Waiting",
            "Next free",
            "At the latest",
        ],
        (
            [
                item["label"],
                item["gpus"] if item["gpus"] is not None else f"unknown ({item['source']})",
                item["in_use"],
                item["reserved_now"],
                item["free_now"],
                item["waiting"],
                _wait(item["next_free"]),
                _wait(item["next_free_latest"]),
            ]
            for item in shown
        ),
        title="GPU capacity",
    )


@reservation_app.command("create")
def create_reservation(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(metavar="PROJECT", help="The project or course.")],
    gpu_type: Annotated[str, typer.Option("--gpu-type", metavar="TYPE", help="e.g. h800.")],
    gpus: Annotated[str, typer.Option("--gpus", metavar="N", help="GPUs to keep.")],
    starts: Annotated[
        str, typer.Option("--starts", metavar="WHEN", help="First window's start (ISO 8601).")
    ],
    ends: Annotated[
        str, typer.Option("--ends", metavar="WHEN", help="First window's end (ISO 8601).")
    ],
    weeks: Annotated[
        str, typer.Option("--weeks", metavar="N", help="Weekly windows in all (1: once).")
    ] = "1",
    note: Annotated[str, typer.Option("--note", help="What it is for, e.g. 'COMP3340 labs'.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Reserve GPUs for a project over a window, once or weekly (e.g. Tuesdays 14:00-16:00)."""
    run: Invocation = ctx.obj
    request = reservations.Request(
        project,
        gpu_type,
        values.whole(gpus, "--gpus", 1, 100_000),
        values.moment(starts, "--starts"),
        values.moment(ends, "--ends"),
        values.whole(weeks, "--weeks", 1, reservations.MAX_WEEKS),
        note,
    )
    with run.database().write() as session:
        row = reservations.create(session, run.settings, request, actor=run.actor, now_ms=now_ms())
        shown = shapes.describe_reservation(row, project)
    if as_json:
        output.print_json(shown)
        return
    repeat = f", weekly × {shown['weeks']}" if shown["weeks"] > 1 else ""
    typer.echo(
        f"Reserved {shown['gpus']} {capacity.gpu_label(gpu_type)} GPUs for {project}: "
        f"{shown['starts']} to {shown['ends']}{repeat} (reservation {shown['id']})"
    )


@reservation_app.command("list")
def list_reservations(
    ctx: typer.Context,
    project: Annotated[
        str | None, typer.Option("--project", metavar="SLUG", help="Only this project's.")
    ] = None,
    include_past: Annotated[
        bool, typer.Option("--all", help="Also ended and cancelled reservations.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Reservations whose last window has not ended, by first start."""
    run: Invocation = ctx.obj
    with run.database().read() as session:
        rows = reservations.listing(session, now_ms(), project=project, include_past=include_past)
        shown = [shapes.describe_reservation(row, slug) for row, slug in rows]
    if as_json:
        output.print_json({"reservations": shown})
        return
    output.print_table(
        ["Id", "Project", "GPUs", "First window", "Weeks", "Note", "Cancelled"],
        (
            [
                item["id"],
                item["project"],
                f"{item['gpus']} × {capacity.gpu_label(item['gpu_type'])}",
                f"{item['starts']} – {item['ends']}",
                item["weeks"],
                item["note"],
                item["cancelled"],
            ]
            for item in shown
        ),
        title=f"Reservations ({len(shown)})",
    )


@reservation_app.command("cancel")
def cancel_reservation(
    ctx: typer.Context,
    reservation_id: Annotated[str, typer.Argument(metavar="ID", help="From `reservation list`.")],
) -> None:
    """Cancel a reservation: its GPUs admit anyone again (harmless to repeat)."""
    run: Invocation = ctx.obj
    number = values.whole(reservation_id, "ID", 1, 2**63 - 1)
    with run.database().write() as session:
        row = reservations.cancel(session, number, actor=run.actor, now_ms=now_ms())
    typer.echo(f"Reservation {row.id} is cancelled.")


@queue_app.command("show")
def show_queue(
    ctx: typer.Context,
    gpu_type: Annotated[
        str | None, typer.Option("--gpu-type", metavar="TYPE", help="Only this GPU type.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Everyone waiting or holding an offer, in the order GPUs go to them."""
    run: Invocation = ctx.obj
    now = now_ms()
    with run.database().read() as session:
        places = queue.all_places(session, run.settings, now, gpu_type=gpu_type)
        shown = [shapes.describe_place(place) for place in places]
    if as_json:
        output.print_json({"places": shown})
        return
    output.print_table(
        ["#", "Server", "Project", "GPUs", "Waiting since", "Expected start", "At the latest"],
        (
            [
                "offer" if item["position"] == 0 else item["position"],
                f"{item['user']}/{item['server_name']}" if item["server_name"] else item["user"],
                item["project"],
                f"{item['gpus']} × {capacity.gpu_label(item['gpu_type'])}",
                item["joined"],
                _wait(item["estimated_start"]),
                _wait(item["latest_start"]),
            ]
            for item in shown
        ),
        title=f"Queue ({len(shown)})",
    )


@queue_app.command("remove")
def remove_from_queue(
    ctx: typer.Context,
    server: Annotated[str, typer.Argument(metavar="USER[/SERVER]", help="Whose place.")],
) -> None:
    """Take a server out of its queue (an offer it held passes on)."""
    run: Invocation = ctx.obj
    user, server_name = parse_server(server)
    now = now_ms()
    with run.database().write() as session:
        entry = queue.leave(session, user, server_name, now_ms=now, actor=run.actor)
        waited = format_duration(now - entry.joined_ms)
    typer.echo(f"{server} left the queue for {capacity.gpu_label(entry.gpu_type)} after {waited}.")
