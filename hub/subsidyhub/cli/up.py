"""``subsidyhub up``: run the whole platform on this machine (see :mod:`subsidyhub.launcher`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from subsidyhub.cli.context import CliError


def up(
    ctx: typer.Context,
    data_dir: Annotated[
        Path,
        typer.Option(
            "--data-dir",
            metavar="DIR",
            help="Where the hub's state, the embedded ledger and user homes live.",
        ),
    ] = Path(".subsidyhub"),
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Port to serve the hub on.")
    ] = 8000,
    ip: Annotated[
        str,
        typer.Option(
            "--ip", help="Address to bind; 0.0.0.0 makes the hub reachable from other machines."
        ),
    ] = "127.0.0.1",
    demo: Annotated[
        bool,
        typer.Option(
            "--demo/--no-demo",
            help="Seed project demo (HK$500 at 70%) with members alice and bob, admin as hub admin.",
        ),
    ] = True,
) -> None:
    """Start JupyterHub, the proxy and the subsidy service in the foreground; Ctrl-C stops all.

    Prints the URL and how to log in. The demo password is $SUBSIDYHUB_DEMO_PASSWORD, or a new
    one printed at start.
    """
    # Imported here: the launcher brings JupyterHub, which no other command needs.
    from subsidyhub.launcher import LaunchError, run_foreground

    config = ctx.obj.config if ctx.obj is not None else None
    try:
        code = run_foreground(
            config=str(config) if config else None, data_dir=data_dir, port=port, ip=ip, demo=demo
        )
    except LaunchError as error:
        raise CliError(str(error)) from None
    raise typer.Exit(code)
