"""``subsidyhub admin course …``: teaching labs, their lecturers and their students.

``create`` is ``project create`` (kind course) plus ``quota set`` (each student's allowance)
plus ``member add --role manager`` (the lecturers), in one transaction. ``enrol`` is a dry
run unless ``--apply`` is given: it prints what the roster would change, and with ``--apply``
writes exactly that in one transaction (see :mod:`subsidyhub.ledger.courses`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from subsidyhub import limits, shapes
from subsidyhub.cli import output, values
from subsidyhub.cli.context import CliError, Invocation
from subsidyhub.cli.limit_options import with_limit_options
from subsidyhub.cli.projects import JsonFlag, Slug, SubsidyRate
from subsidyhub.ledger import courses, projects
from subsidyhub.ledger.db import now_ms

WEEK = limits.get("gpu_hours_per_week")
LONGEST = limits.get("max_session_hours")

app = typer.Typer(
    help="Teaching labs: create a course, enrol its students from a roster CSV, show their use.",
    no_args_is_help=True,
)


@app.command("create")
@with_limit_options(limits.LIMITS, "course create")
def create(
    ctx: typer.Context,
    slug: Annotated[
        str,
        typer.Argument(help="Short unique name: lowercase letters, digits, dashes, e.g. comp3340."),
    ],
    name: Annotated[
        str, typer.Option("--name", help="Display name, e.g. 'COMP3340 Deep Learning'.")
    ],
    lecturers: Annotated[
        list[str],
        typer.Option(
            "--lecturer",
            metavar="USER",
            help="JupyterHub user name of a lecturer, who manages the course (repeatable).",
        ),
    ],
    quota: dict[str, str],
    subsidy_rate: SubsidyRate = None,
    org: Annotated[
        str | None,
        typer.Option(
            "--org", help="Organisation slug (e.g. hku-cs); created if it does not exist."
        ),
    ] = None,
) -> None:
    """Create a course with its lecturers as managers and each student's allowance (the
    course's limits: --member-max-gpus, --gpu-hours-per-week … apply to each student).

    Example:
      subsidyhub admin course create comp3340 --name "COMP3340 Deep Learning" \\
        --lecturer drwong --gpu-hours-per-week 4 --max-session-hours 2 --profiles cpu-small,gpu-1
    """
    bp = None if subsidy_rate is None else values.subsidy_bp(subsidy_rate)
    run: Invocation = ctx.obj
    with run.database().write() as session:
        project = courses.create_course(
            session,
            run.settings,
            run.actor,
            slug=slug,
            name=name,
            lecturers=lecturers,
            at_ms=now_ms(),
            allowance=quota,
            subsidy_bp=bp,
            organisation=org,
        )
        quota = shapes.describe_quota(project)
        managers = [m.username for m in projects.members_of(session, project)]
    typer.echo(
        f"Created course {slug} ({project.name}), lecturers {', '.join(managers)}. Each student:"
    )
    for line in output.quota_lines(quota):
        typer.echo(f"  {line}")
    typer.echo(
        f"Give it money with: subsidyhub admin allocate {slug} AMOUNT; "
        f"enrol students with: subsidyhub admin course enrol {slug} roster.csv"
    )


def read_roster(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CliError(f"cannot read the roster {path}: {error.strerror}", exit_code=2) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CliError(
            f"the roster {path} is not UTF-8 text (byte {error.start}); save it as 'CSV UTF-8'",
            exit_code=2,
        ) from None


def _diff_rows(plan: courses.Enrolment) -> list[list[object]]:
    rows: list[list[object]] = []
    for change in plan.added:
        after = change.after or {}
        rows.append(["added", change.username, after.get("name"), after.get("email"), ""])
    for change in plan.removed:
        before = change.before or {}
        rows.append(
            ["removed", change.username, before.get("name"), before.get("email"), "not in roster"]
        )
    for change in plan.updated:
        before, after = change.before or {}, change.after or {}
        detail = ", ".join(
            f"{key}: {before.get(key) or output.NONE} -> {after.get(key)}"
            for key in ("name", "email")
            if before.get(key) != after.get(key)
        )
        rows.append(["updated", change.username, after.get("name"), after.get("email"), detail])
    for kept in plan.kept:
        rows.append(["kept", kept["username"], None, None, f"not in roster ({kept['reason']})"])
    return rows


@app.command("enrol")
def enrol(
    ctx: typer.Context,
    slug: Slug,
    roster: Annotated[
        Path,
        typer.Argument(
            help="CSV with a header row: username, and optionally name and email.",
            dir_okay=False,
        ),
    ],
    apply: Annotated[
        bool,
        typer.Option("--apply", help="Write the changes. Without it, only show what would change."),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Add and remove a course's students to match a roster; a dry run unless --apply.

    Only students added by a roster are removed; lecturers and members added by hand or by SSO
    are kept. All changes are written in one transaction, each with an audit entry.

    Example:
      subsidyhub admin course enrol comp3340 roster.csv            # show the changes
      subsidyhub admin course enrol comp3340 roster.csv --apply    # make them
    """
    text = read_roster(roster)
    try:
        students = courses.parse_roster(text)
    except courses.RosterInvalid as invalid:
        for error in invalid.errors:
            typer.echo(f"error: {error}", err=True)
        typer.echo(
            f"error: {roster} has {len(invalid.errors)} problem(s) above; nothing was changed",
            err=True,
        )
        raise typer.Exit(2) from None
    run: Invocation = ctx.obj
    db = run.database()
    with db.write() if apply else db.read() as session:
        plan = courses.enrol(session, run.actor, slug, students, at_ms=now_ms(), apply=apply)
    if as_json:
        output.print_json(plan.describe())
        return
    rows = _diff_rows(plan)
    if rows:
        output.print_table(["Change", "User", "Name", "Email", "Detail"], rows)
    typer.echo(plan.summary() if plan.applied else f"{plan.summary()} Run again with --apply.")


@app.command("show")
def show(ctx: typer.Context, slug: Slug, as_json: JsonFlag = False) -> None:
    """List a course's lecturers and students with their allowance and use this week."""
    run: Invocation = ctx.obj
    with run.database().read() as session:
        project = projects.get_project(session, slug)
        found = courses.students(session, project, now_ms())
        name = project.name
    if as_json:
        output.print_json(found)
        return
    if not found:
        typer.echo(f"Course {slug} has no members; enrol with: subsidyhub admin course enrol")
        return
    output.print_table(
        ["User", "Name", "Email", "Role", "Source", "GPU-h used", "GPU-h/week", "Max session h"],
        (
            [
                s["username"],
                s["name"],
                s["email"],
                "lecturer" if s["role"] == "manager" else "student",
                s["source"],
                s["usage"]["gpu_hours_per_week"],
                output.limit_text(s["quota_in_force"]["gpu_hours_per_week"], WEEK),
                output.limit_text(s["quota_in_force"]["max_session_hours"], LONGEST),
            ]
            for s in found
        ),
        title=f"Course {slug}: {name} (GPU use in the last 7 days)",
    )
    students = sum(1 for s in found if s["role"] != "manager")
    typer.echo(f"Students: {students}; lecturers: {len(found) - students}.")
