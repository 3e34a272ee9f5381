"""``subsidyhub db upgrade``: create or migrate the ledger database and load the config's prices."""

from __future__ import annotations

import typer

from subsidyhub.cli.context import Invocation, display_url
from subsidyhub.ledger import prices
from subsidyhub.ledger.db import now_ms
from subsidyhub.ledger.migrate import current_revision
from subsidyhub.settings import config_path
from subsidyhub.timeutil import iso

app = typer.Typer(help="Create or migrate the ledger database.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Bring the schema to the newest revision and load the config's prices; safe to repeat.

    Every other command migrates too before it runs, but only this one (and 'up') creates a
    ledger where there is none; it is for deploy scripts and a first setup.
    It prints the database (password hidden), the schema revision and the prices in force.
    """
    run: Invocation = ctx.obj
    db = run.database(create=True)
    with db.engine.connect() as connection:
        revision = current_revision(connection)
    with db.read() as session:
        version = prices.current_version(session, now_ms())
    typer.echo(f"config: {config_path(run.config)}")
    typer.echo(f"database: {display_url(db.url)}")
    typer.echo(f"revision: {revision}")
    typer.echo(
        f"prices: version {version.id} ({version.source}), in force from "
        f"{iso(version.effective_from_ms)}"
    )
