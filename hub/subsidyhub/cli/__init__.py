"""The ``subsidyhub`` command line: administer the ledger directly in its database.

Design, in the order a newcomer asks about it:

* **Same rules as the service.** Commands parse their arguments, then call the ledger functions
  the service calls (:mod:`subsidyhub.ledger.projects`, ``prices``, ``statements``…), which
  validate first, write the change and its audit entry in one transaction, and raise
  :class:`~subsidyhub.errors.SubsidyError` for people. The service need not be running.
* **The config in force decides the database.** ``--config FILE`` (accepted before or after any
  command name), else ``$SUBSIDYHUB_CONFIG``, else the embedded default; see
  :func:`subsidyhub.settings.config_path`.
* **Every command brings the database up to date first** (the ``upgrade`` that
  ``subsidyhub db upgrade`` runs): a no-op on a current database. Only ``up`` and
  ``db upgrade`` create a ledger; any other command pointed at a place without one fails, so a
  second shell that forgot ``SUBSIDYHUB_DATA_DIR`` cannot write to a fresh, unread ledger.
* **Expected errors are one line, with one exit-code convention** (:data:`EXIT_CODES`): 0 done;
  1 refused by the ledger (not found, conflict, refused, no ledger, database unreachable);
  2 usage, bad input or config. ``error: …`` goes to stderr and nothing is written. A traceback
  means a bug.
* **Scripts get JSON.** ``--json`` prints the ledger's dictionaries: amounts as decimal strings.
* **Adding a command** is ``app.command("up")(function)`` or ``app.add_typer(...)`` below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from subsidyhub.cli import (
    applications,
    audit,
    capacity,
    courses,
    database,
    kubernetes,
    members,
    prices,
    projects,
    quota,
    report,
    servers,
    statement,
    up,
)
from subsidyhub.cli.context import CliError, Invocation
from subsidyhub.errors import InvalidInput, SubsidyError
from subsidyhub.settings import CONFIG_ENV, ConfigError

CONFIG_OPTION = "--config"
DEBUG_ENV = "SUBSIDYHUB_DEBUG"


def hoist_config(args: list[str]) -> list[str]:
    """Move ``--config FILE`` / ``--config=FILE`` from anywhere to the front, for the root option.

    Options normally belong to the command they follow; the config is the one that applies to
    every command, so ``subsidyhub admin project list --config x.yaml`` must work too. Arguments
    after ``--`` are left alone; when given twice, the last wins. Raises ``ValueError`` when
    ``--config`` ends the line without a FILE.
    """
    rest: list[str] = []
    config: str | None = None
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest.extend(args[index:])
            break
        if arg == CONFIG_OPTION:
            if index + 1 == len(args):
                raise ValueError(f"Option '{CONFIG_OPTION}' requires an argument (FILE).")
            config = args[index + 1]
            index += 2
            continue
        if arg.startswith(CONFIG_OPTION + "="):
            config = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        index += 1
    return rest if config is None else [CONFIG_OPTION, config, *rest]


EXIT_CODES = (
    "Exit status: 0 done; 1 refused (not found, conflict, over a limit, no ledger, database "
    "unreachable); 2 usage, bad input or a config problem. Errors are one 'error:' line on "
    "stderr, and nothing is written."
)


def _exit_code(error: Exception) -> int:
    if isinstance(error, CliError):
        return error.exit_code
    return 2 if isinstance(error, InvalidInput | ConfigError) else 1


class SubsidyHubGroup(TyperGroup):
    """The root command: lifts ``--config`` out of argv and reports expected errors as one line."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            hoisted = hoist_config(args)
        except ValueError as error:
            ctx.fail(str(error))
        return super().parse_args(ctx, hoisted)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (CliError, SubsidyError, ConfigError) as error:
            message = error.message if isinstance(error, CliError | SubsidyError) else str(error)
            typer.echo(f"error: {' '.join(message.split())}", err=True)
            raise typer.Exit(_exit_code(error)) from None
        except (TyperException, typer.Exit, typer.Abort):
            raise
        except Exception as error:
            # A bug, not bad input: still one line, and nothing half-written (every command's
            # writes are one transaction, rolled back by the exception).
            if os.environ.get(DEBUG_ENV):
                raise
            detail = " ".join(str(error).split())[:200]
            typer.echo(
                f"error: unexpected {type(error).__name__}: {detail} (nothing was changed; "
                f"this is a bug, please report it; {DEBUG_ENV}=1 shows the traceback)",
                err=True,
            )
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=SubsidyHubGroup,
    name="subsidyhub",
    help="Run SubsidyHub ('up') and administer its ledger: projects, allocations, members, "
    "quotas, prices, applications and burn plans, audit log and monthly statements. Admin "
    "commands work directly on the database named by the config; each first migrates it if "
    "needed, and only 'up' and 'db upgrade' create one.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            CONFIG_OPTION,
            metavar="FILE",
            show_default=False,
            help=f"The subsidyhub.yaml to use; may also follow the command name. Default: "
            f"${CONFIG_ENV}, else the embedded default config.",
        ),
    ] = None,
) -> None:
    invocation = Invocation(config)
    ctx.obj = invocation
    ctx.call_on_close(invocation.close)


admin = typer.Typer(
    help="Change and inspect projects, money, members, quotas and prices; every change is "
    "audited with the actor cli:$SUBSIDYHUB_ACTOR (default: your user name).",
    no_args_is_help=True,
)
admin.add_typer(projects.app, name="project")
# A negative AMOUNT (a correction) must reach the command instead of being read as an option.
admin.command("allocate", context_settings={"ignore_unknown_options": True})(projects.allocate)
admin.add_typer(members.app, name="member")
admin.add_typer(quota.app, name="quota")
admin.add_typer(courses.app, name="course")
admin.add_typer(prices.app, name="price")
admin.command("audit")(audit.show_audit)

app.add_typer(database.app, name="db")
app.add_typer(admin, name="admin")
app.add_typer(servers.app, name="server")
app.add_typer(capacity.capacity_app, name="capacity")
app.add_typer(capacity.reservation_app, name="reservation")
app.add_typer(capacity.queue_app, name="queue")
app.command("statement")(statement.statement)
app.add_typer(report.app, name="report")
app.add_typer(applications.app, name="application")
app.add_typer(applications.plan_app, name="plan")
app.add_typer(kubernetes.app, name="kubernetes")
app.command("up")(up.up)


def main() -> None:
    """The ``subsidyhub`` console script."""
    app(prog_name="subsidyhub")
