"""``subsidyhub admin price …``: the versioned list prices that sessions are charged at.

A change never rewrites a version: it adds one, in force from now or a later date, and a
server keeps the prices it started with. Prices are shown as exact decimal strings, since a
price per hour may have more digits than cents.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from subsidyhub import shapes
from subsidyhub.cli import output, values
from subsidyhub.cli.context import CliError, Invocation
from subsidyhub.cli.projects import JsonFlag
from subsidyhub.errors import InvalidInput, NotFound
from subsidyhub.ledger import prices
from subsidyhub.ledger.db import now_ms
from subsidyhub.ledger.models import PriceVersion
from subsidyhub.money import to_decimal_string

app = typer.Typer(help="List and change list prices.", no_args_is_help=True)


def _state(version: PriceVersion, current_id: int | None, at_ms: int) -> str:
    if version.id == current_id:
        return "in force"
    return "scheduled" if version.effective_from_ms > at_ms else "superseded"


def _gpu_text(version: PriceVersion) -> str:
    gpu = sorted(version.gpu_micro.items())
    return ", ".join(f"{k} {to_decimal_string(int(v))}" for k, v in gpu) or output.NONE


@app.command("list")
def list_prices(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List every price version, oldest first, and which one is in force now."""
    run: Invocation = ctx.obj
    at = now_ms()
    with run.database().read() as session:
        all_versions = prices.versions(session)
        try:
            current_id: int | None = prices.current_version(session, at).id
        except NotFound:
            current_id = None
        rows = [
            shapes.describe_price_version(v) | {"state": _state(v, current_id, at)}
            for v in all_versions
        ]
    if as_json:
        output.print_json(rows)
        return
    output.print_table(
        ["Version", "State", "Effective from", "CPU core", "Memory GiB", "GPU", "Source", "Note"],
        (
            [
                r["version"],
                r["state"],
                r["effective_from"],
                r["cpu_core"],
                r["memory_gib"],
                _gpu_text(v),
                r["source"],
                r["note"],
            ]
            for v, r in zip(all_versions, rows, strict=True)
        ),
        title=f"List prices ({run.settings.currency} per hour)",
    )


@app.command("set")
def set_prices(
    ctx: typer.Context,
    cpu_core: Annotated[
        str | None,
        typer.Option("--cpu-core", metavar="PRICE", help="Price per CPU core-hour, e.g. 0.50."),
    ] = None,
    memory_gib: Annotated[
        str | None,
        typer.Option(
            "--memory-gib", metavar="PRICE", help="Price per GiB-hour of memory, e.g. 0.10."
        ),
    ] = None,
    gpu: Annotated[
        list[str] | None,
        typer.Option(
            "--gpu",
            metavar="TYPE=PRICE",
            help="Price per GPU-hour of one GPU type, e.g. h800=36.00; repeat for more types.",
        ),
    ] = None,
    effective_from: Annotated[
        str | None,
        typer.Option(
            "--effective-from",
            metavar="DATE",
            help="When the new prices take effect: YYYY-MM-DD (midnight UTC) or an ISO 8601 "
            "time, not in the past. Default: now.",
        ),
    ] = None,
    note: Annotated[str, typer.Option("--note", help="Why the prices change.")] = "",
    confirm: Annotated[
        bool,
        typer.Option(
            "--confirm",
            help="Apply prices that change by more than bounds.price_change_factor (10× by "
            "default) from the price in force; without it such a change is refused.",
        ),
    ] = False,
) -> None:
    """Add a price version: the prices in force with the given ones replaced.

    Servers already running keep the prices they started with.

    Example:
      subsidyhub admin price set --gpu h800=32.00 --effective-from 2027-01-01 --note "2027"
    """
    cpu = None if cpu_core is None else values.amount(cpu_core)
    memory = None if memory_gib is None else values.amount(memory_gib)
    gpus = values.gpu_prices(gpu or [])
    if cpu is None and memory is None and not gpus:
        raise InvalidInput("nothing to change; give --cpu-core, --memory-gib or --gpu TYPE=PRICE")
    effective = (
        None if effective_from is None else values.moment(effective_from, "--effective-from")
    )
    run: Invocation = ctx.obj
    with run.database().write() as session, _confirm_hint():
        version = prices.set_prices(
            session,
            run.settings,
            run.actor,
            at_ms=now_ms(),
            effective_from_ms=effective,
            cpu_core=cpu,
            memory_gib=memory,
            gpu=gpus,
            note=note,
            confirm=confirm,
        )
        described = shapes.describe_price_version(version)
    typer.echo(
        f"Price version {described['version']} in force from {described['effective_from']} "
        f"({run.settings.currency} per hour): CPU core {described['cpu_core']}, memory GiB "
        f"{described['memory_gib']}, GPU {_gpu_text(version)}. Running servers keep their "
        "prices."
    )


@contextmanager
def _confirm_hint() -> Iterator[None]:
    """The ledger asks for a confirmation; on the command line that is ``--confirm``."""
    try:
        yield
    except prices.NeedsConfirmation as error:
        raise CliError(f"{error.message[:-1]} with --confirm.", exit_code=2) from None
