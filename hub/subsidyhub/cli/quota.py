"""``subsidyhub admin quota show`` and ``set``: a project's limits on GPUs, hours, profiles and GPU types.

One option per limit of :mod:`subsidyhub.limits`; only the options given change, and the word
``none`` lifts a limit. The ledger checks every value against its declaration (and profiles
and GPU types against the config) before it writes.
"""

from __future__ import annotations

import typer

from subsidyhub import limits, shapes
from subsidyhub.cli import output
from subsidyhub.cli.context import Invocation
from subsidyhub.cli.limit_options import with_limit_options
from subsidyhub.cli.projects import JsonFlag, Slug
from subsidyhub.errors import InvalidInput
from subsidyhub.ledger import projects

app = typer.Typer(help="Show or change a project's quota.", no_args_is_help=True)


@app.command("set")
@with_limit_options(limits.LIMITS, "quota set")
def set_quota(ctx: typer.Context, slug: Slug, quota: dict[str, str]) -> None:
    """Set a project's quota; only the options given change, 'none' lifts a limit.

    Example:
      subsidyhub admin quota set protein-folding --project-max-gpus 4 --max-session-hours none
    """
    if not quota:
        raise InvalidInput(
            "nothing to change; give at least one of "
            + ", ".join(limit.flag for limit in limits.LIMITS)
        )
    run: Invocation = ctx.obj
    with run.database().write() as session:
        project = projects.set_quota(session, run.settings, run.actor, slug, quota)
        shown = shapes.describe_quota(project)
    typer.echo(f"Quota of project {slug}:")
    for line in output.quota_lines(shown):
        typer.echo(f"  {line}")


@app.command("show")
def show_quota(ctx: typer.Context, slug: Slug, as_json: JsonFlag = False) -> None:
    """Show a project's quota and each member's own limits ('-': the project's applies)."""
    run: Invocation = ctx.obj
    with run.database().read() as session:
        project = projects.get_project(session, slug)
        shown = shapes.describe_quota(project)
        members = [shapes.describe_member(m) for m in projects.members_of(session, project)]
    if as_json:
        output.print_json({"quota": shown, "members": members})
        return
    typer.echo(f"Quota of project {slug}:")
    for line in output.quota_lines(shown):
        typer.echo(f"  {line}")
    if members:
        output.print_members(members, title="Members' own limits")
