"""``subsidyhub admin member …``: who may start servers in a project, and their own limits.

A member's own value of a member-level limit (:mod:`subsidyhub.limits`) takes the place of the
project's for that person; one left unset (or set to ``none``) means the project's applies.
``member add`` on an existing member changes just the options given, so it is safe to re-run.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from subsidyhub import limits, shapes
from subsidyhub.cli import output
from subsidyhub.cli.context import Invocation
from subsidyhub.cli.limit_options import with_limit_options
from subsidyhub.cli.projects import JsonFlag, Slug
from subsidyhub.ledger import projects
from subsidyhub.ledger.db import now_ms

app = typer.Typer(help="Add, remove and list a project's members.", no_args_is_help=True)


class Role(StrEnum):
    manager = "manager"
    member = "member"


Username = Annotated[str, typer.Argument(help="The JupyterHub user name, e.g. alice.")]


@app.command("add")
@with_limit_options(limits.MEMBER_LIMITS, "member add", "the project's limit applies")
def add(
    ctx: typer.Context,
    slug: Slug,
    username: Username,
    quota: dict[str, str],
    role: Annotated[
        Role | None,
        typer.Option(
            "--role",
            help="The member's role in the project. Default for a new member: member; "
            "unchanged for an existing one.",
        ),
    ] = None,
) -> None:
    """Add a member to a project, or change an existing member's role and own limits
    ('none' for a limit: the project's applies).

    Example:
      subsidyhub admin member add protein-folding alice --member-max-gpus 2 --gpu-hours-per-week 40
    """
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
            quota=quota,
        )
        described = shapes.describe_member(member)
    typer.echo(
        f"{'Updated' if existed else 'Added'} {username} {'in' if existed else 'to'} project "
        f"{slug}: role {described['role']}; "
        + "; ".join(output.quota_lines(described["quota"], limits.MEMBER_LIMITS))
        + " (unlimited: the project's limit applies)."
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
    """List a project's members with their role and own limits."""
    run: Invocation = ctx.obj
    with run.database().read() as session:
        project = projects.get_project(session, slug)
        members = [shapes.describe_member(m) for m in projects.members_of(session, project)]
    if as_json:
        output.print_json(members)
        return
    if not members:
        typer.echo(f"Project {slug} has no members; add one with: subsidyhub admin member add")
        return
    output.print_members(members, title=f"Members of {slug}")
