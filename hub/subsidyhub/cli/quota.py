"""``subsidyhub admin quota set``: a project's limits on GPUs, hours, profiles and GPU types.

Only the options given change; the word ``none`` lifts a limit. The ledger checks the values
(profiles and GPU types must exist in the config) before it writes.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from subsidyhub.cli import output, values
from subsidyhub.cli.context import Invocation
from subsidyhub.cli.projects import Slug
from subsidyhub.errors import InvalidInput
from subsidyhub.ledger import projects

app = typer.Typer(help="Change a project's quota.", no_args_is_help=True)


@app.command("set")
def set_quota(
    ctx: typer.Context,
    slug: Slug,
    max_gpus: Annotated[
        str | None,
        typer.Option(
            "--max-gpus", metavar="N", help="GPUs the whole project may use at once, or 'none'."
        ),
    ] = None,
    member_max_gpus: Annotated[
        str | None,
        typer.Option(
            "--member-max-gpus",
            metavar="N",
            help="GPUs any one member may use at once, or 'none'.",
        ),
    ] = None,
    gpu_hours_per_week: Annotated[
        str | None,
        typer.Option(
            "--gpu-hours-per-week",
            metavar="HOURS",
            help="GPU-hours each member may use in a rolling week (2 GPUs for 1 hour = 2), "
            "e.g. 40, or 'none'.",
        ),
    ] = None,
    max_session_hours: Annotated[
        str | None,
        typer.Option(
            "--max-session-hours",
            metavar="HOURS",
            help="Longest a server may run before it is stopped, e.g. 12 or 0.5, or 'none'.",
        ),
    ] = None,
    profiles: Annotated[
        str | None,
        typer.Option(
            "--profiles",
            metavar="A,B",
            help="Profiles members may start, comma-separated slugs from the config "
            "(e.g. cpu-small,gpu-1), or 'none' to allow all.",
        ),
    ] = None,
    gpu_types: Annotated[
        str | None,
        typer.Option(
            "--gpu-types",
            metavar="A,B",
            help="GPU types members may use, comma-separated (e.g. h800,a100); 'none' allows "
            "all, an empty value '' allows none.",
        ),
    ] = None,
) -> None:
    """Set a project's quota; only the options given change, 'none' makes a limit unlimited.

    Example:
      subsidyhub admin quota set protein-folding --max-gpus 4 --max-session-hours none
    """
    change: dict[str, Any] = {}
    if max_gpus is not None:
        change["max_gpus"] = values.count_limit(max_gpus, "--max-gpus")
    if member_max_gpus is not None:
        change["member_max_gpus"] = values.count_limit(member_max_gpus, "--member-max-gpus")
    if gpu_hours_per_week is not None:
        change["gpu_hours_per_week"] = values.hours_limit(gpu_hours_per_week)
    if max_session_hours is not None:
        change["max_session_hours"] = values.hours_limit(max_session_hours)
    if profiles is not None:
        change["profiles"] = values.name_list(profiles)
    if gpu_types is not None:
        change["gpu_types"] = values.name_list(gpu_types)
    if not change:
        raise InvalidInput(
            "nothing to change; give at least one of --max-gpus, --member-max-gpus, "
            "--gpu-hours-per-week, --max-session-hours, --profiles, --gpu-types"
        )
    run: Invocation = ctx.obj
    with run.database().write() as session:
        project = projects.set_quota(
            session, run.settings, run.actor, slug, projects.QuotaChange(**change)
        )
        quota = projects.describe_quota(project)
    typer.echo(f"Quota of project {slug}:")
    for line in output.quota_lines(quota):
        typer.echo(f"  {line}")
