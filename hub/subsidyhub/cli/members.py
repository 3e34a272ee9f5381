"""``subsidyhub admin member …``: who may start servers in a project, and their personal caps.

A member's own caps take the place of the project's per-member limits for that person; a cap
left unset (or set to ``none``) means the project's limit applies. ``member add`` on an existing member changes just the options
given, so it is safe to re-run.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from subsidyhub.cli import output, values
from subsidyhub.cli.context import Invocation
from subsidyhub.cli.projects import JsonFlag, Slug
from subsidyhub.ledger import projects
from subsidyhub.ledger.db import now_ms

app = typer.Typer(help="Add, remove and list a project's members.", no_args_is_help=True)


class Role(StrEnum):
    manager = "manager"
    member = "member"


Username = Annotated[str, typer.Argument(help="The JupyterHub user name, e.g. alice.")]


@app.command("add")
def add(
    ctx: typer.Context,
    slug: Slug,
    username: Username,
    role: Annotated[
        Role | None,
        typer.Option(
            "--role",
            help="The member's role in the project. Default for a new member: member; "
            "unchanged for an existing one.",
        ),
    ] = None,
    max_gpus: Annotated[
        str | None,
        typer.Option(
            "--max-gpus",
            metavar="N",
            help="GPUs this member may use at once, or 'none' for the project's per-member limit.",
        ),
    ] = None,
    gpu_hours_per_week: Annotated[
        str | None,
        typer.Option(
            "--gpu-hours-per-week",
            metavar="HOURS",
            help="GPU-hours this member may use in a rolling week (2 GPUs for 1 hour = 2), "
            "e.g. 40, or 'none' for the project's limit.",
        ),
    ] = None,
    max_session_hours: Annotated[
        str | None,
        typer.Option(
            "--max-session-hours",
            metavar="HOURS",
            help="Longest a server of this member may run before it is stopped, e.g. 12 or 0.5, "
            "or 'none' for the project's limit.",
        ),
    ] = None,
) -> None:
    """Add a member to a project, or change an existing member's role and caps.

    Example:
      subsidyhub admin member add protein-folding alice --max-gpus 2 --gpu-hours-per-week 40
    """
    caps: dict[str, Any] = {}
    if max_gpus is not None:
        caps["max_gpus"] = values.count_limit(max_gpus, "--max-gpus")
    if gpu_hours_per_week is not None:
        caps["gpu_hours_per_week"] = values.hours_limit(gpu_hours_per_week)
    if max_session_hours is not None:
        caps["max_session_hours"] = values.hours_limit(max_session_hours)
    run: Invocation = ctx.obj
    at = now_ms()
    with run.database().write() as session:
        existed = (
            projects.get_member(session, projects.get_project(session, slug), username) is not None
        )
        member = projects.set_member(
            session,
            run.actor,
            slug,
            username,
            at_ms=at,
            role=None if role is None else role.value,
            **caps,
        )
        described = projects.describe_member(member)
    typer.echo(
        f"{'Updated' if existed else 'Added'} {username} {'in' if existed else 'to'} project "
        f"{slug}: role "
        f"{described['role']}, max GPUs {output.limit(described['max_gpus'])}, GPU-hours per week "
        f"{output.limit(described['gpu_hours_per_week'])}, max session "
        f"{output.limit(described['max_session_hours'], ' h')} (unlimited = the project's limit)."
    )


@app.command("remove")
def remove(ctx: typer.Context, slug: Slug, username: Username) -> None:
    """Remove a member from a project; they can no longer start servers charged to it."""
    run: Invocation = ctx.obj
    with run.database().write() as session:
        projects.remove_member(session, run.actor, slug, username)
    typer.echo(f"Removed {username} from project {slug}.")


@app.command("list")
def list_members(ctx: typer.Context, slug: Slug, as_json: JsonFlag = False) -> None:
    """List a project's members with their role and personal caps."""
    run: Invocation = ctx.obj
    with run.database().read() as session:
        project = projects.get_project(session, slug)
        members = [projects.describe_member(m) for m in projects.members_of(session, project)]
    if as_json:
        output.print_json(members)
        return
    if not members:
        typer.echo(f"Project {slug} has no members; add one with: subsidyhub admin member add")
        return
    output.print_members(members, title=f"Members of {slug}")
