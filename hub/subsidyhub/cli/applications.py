"""``subsidyhub application …`` and ``subsidyhub plan …``: applications for grants and burn plans.

The centre's admins list the applications waiting for a decision, read one with its history,
comment on it, and approve it (a subsidy rate; optionally another amount, window, project slug
and the project's quota) or reject it with a reason the applicant reads. The commands call
the ledger functions the API calls (:mod:`subsidyhub.ledger.applications`,
:mod:`subsidyhub.ledger.burn_plan`): an approval creates the project, its members, rate,
quota, allocation and plan in one transaction, audited, and a second decision on the same
application is refused.

``application create`` enters an application from a YAML file with the API's field names,
for a PI who prefers a file or an admin entering one for them. Its scalars are read as the
text written there (no YAML numbers, dates or booleans), so an amount is exactly what was
typed: ``1e30``, ``010``, ``1_000`` or ``1,000`` are refused with the file and key named,
never read as some other number. Every file error is one line, exit 2, before the database
is opened.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.orm import Session

from subsidyhub import shapes
from subsidyhub.cli import output, values
from subsidyhub.cli.context import CliError, Invocation
from subsidyhub.cli.limit_options import with_limit_options
from subsidyhub.cli.projects import JsonFlag
from subsidyhub.errors import InvalidInput, SubsidyError
from subsidyhub.ledger import applications, burn_plan, projects
from subsidyhub.ledger.applications import Decision, Fields
from subsidyhub.ledger.db import now_ms
from subsidyhub.ledger.models import Application
from subsidyhub.limits import LIMITS
from subsidyhub.money import format_money, to_decimal_string
from subsidyhub.timeutil import iso, month_of
from subsidyhub.yamlfile import LiteralLoader, read_yaml

app = typer.Typer(
    help="Applications for grants: list and read them, comment, approve or reject; enter one "
    "from a YAML file.",
    no_args_is_help=True,
)
plan_app = typer.Typer(
    help="A project's burn plan: the subsidy planned per month against the subsidy spent.",
    no_args_is_help=True,
)

MAX_ID = 2**63 - 1
KIND_WORDS = {"new": "new project", "top_up": "top-up of", "extension": "extension of"}


class State(StrEnum):
    draft = "draft"
    submitted = "submitted"
    approved = "approved"
    rejected = "rejected"
    withdrawn = "withdrawn"


ApplicationId = Annotated[
    str,
    typer.Argument(
        metavar="ID", help="The application's number, from `subsidyhub application list`."
    ),
]
ProjectSlug = Annotated[
    str, typer.Argument(metavar="PROJECT", help="The project's slug, e.g. climate-ml.")
]


def _number(text: str) -> int:
    return values.whole(text, "ID", 1, MAX_ID)


def _day(ms: int | None) -> str:
    """A date as people read it: ``2027-01-31`` (UTC)."""
    return output.NONE if ms is None else str(iso(ms))[:10]


def _shown(session: Session, application: Application) -> dict[str, Any]:
    """One application with its history, as the API shows it."""
    return shapes.describe_application(
        application,
        applications.project_slug(session, application),
        applications.events(session, application.id),
    )


# --- An application from a YAML file -------------------------------------------------------

FILE_KEYS = (
    "kind",
    "slug",
    "title",
    "organisation",
    "abstract",
    "amount",
    "gpu_hours",
    "starts",
    "ends",
    "team",
    "plan",
    "email",
)
REQUIRED_KEYS = ("kind", "slug", "title", "amount", "starts", "ends")


def _file_error(path: Path | str, key: str, message: str) -> CliError:
    """One line naming the file and the key, as a config error does; exit 2."""
    return CliError(f"{path}: {key}: {message}" if key else f"{path}: {message}", exit_code=2)


def read_application_file(path: Path) -> Any:
    """The file's YAML document, scalars as written; unreadable or bad YAML is one line."""
    return read_yaml(path, _file_error, LiteralLoader)


def _what(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    return "a list" if isinstance(value, list) else type(value).__name__


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"give text here, not {_what(value)}")
    return value


def _amount(value: object) -> int:
    return values.amount(_text(value))


def _gpu_hours(value: object) -> int:
    return values.whole(_text(value), "GPU-hours", 0, applications.MAX_GPU_HOURS)


def _username(value: object) -> str:
    return projects.check_username(_text(value))


def _moment(name: str) -> Callable[[object], int]:
    def parse(value: object) -> int:
        return values.moment(_text(value), name)

    return parse


def _list_of(what: str) -> Callable[[object], list[Any]]:
    def parse(value: object) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise InvalidInput(f"give a list of {what} (one '- ' line each), not {_what(value)}")
        return value

    return parse


def _in_file[T](path: Path, key: str, parse: Callable[[object], T], value: object) -> T:
    """``parse(value)``, its bad input reported with the file and key."""
    try:
        return parse(value)
    except InvalidInput as error:
        raise _file_error(path, key, error.message) from None


def _gpu_hours_of(path: Path, value: object) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _file_error(
            path, "gpu_hours", f"give GPU-hours per GPU type (h800: 1000), not {_what(value)}"
        )
    hours: dict[str, int] = {}
    for gpu_type, number in value.items():
        key = f"gpu_hours.{gpu_type}"
        hours[_in_file(path, key, _text, gpu_type)] = _in_file(path, key, _gpu_hours, number)
    return hours


def fields_from_document(path: Path, document: object) -> Fields:
    """An application's fields from a file's document, in ledger units. Every value is parsed
    here with the CLI's parsers (amounts, dates, user names); the ledger checks the rest."""
    if not isinstance(document, dict):
        raise _file_error(
            path,
            "",
            "the file must hold the application's fields as keys: "
            + ", ".join(f"{key}:" for key in FILE_KEYS),
        )
    for key in document:
        if key not in FILE_KEYS:
            raise _file_error(path, str(key)[:40], f"unknown key; allowed: {', '.join(FILE_KEYS)}")
    for key in REQUIRED_KEYS:
        if document.get(key) is None:
            raise _file_error(path, key, f"missing; required: {', '.join(REQUIRED_KEYS)}")

    def text(key: str) -> str:
        value = document.get(key)
        return "" if value is None else _in_file(path, key, _text, value)

    def each[T](key: str, what: str, parse: Callable[[object], T]) -> list[T]:
        items = _in_file(path, key, _list_of(what), document.get(key))
        return [_in_file(path, f"{key}[{i}]", parse, item) for i, item in enumerate(items)]

    return Fields(
        kind=text("kind"),
        slug=text("slug"),
        title=text("title"),
        organisation=text("organisation"),
        abstract=text("abstract"),
        amount_micro=_in_file(path, "amount", _amount, document["amount"]),
        gpu_hours=_gpu_hours_of(path, document.get("gpu_hours")),
        starts_ms=_in_file(path, "starts", _moment("starts"), document["starts"]),
        ends_ms=_in_file(path, "ends", _moment("ends"), document["ends"]),
        team=each("team", "user names", _username),
        plan=each("plan", "amounts, one per quarter", _amount),
        email=None if document.get("email") is None else text("email"),
    )


@app.command("create")
def create(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Option(
            "--file",
            metavar="FILE",
            help="A YAML file with the API's field names: kind (new, top_up or extension), "
            "slug, title, amount, starts, ends (YYYY-MM-DD), and optionally organisation, "
            "abstract, gpu_hours (per GPU type), team (user names), plan (an amount per "
            "quarter, adding up to amount) and email.",
        ),
    ],
    applicant: Annotated[
        str,
        typer.Option(
            "--applicant",
            metavar="USER",
            help="The hub user name of the person applying (the project's manager once "
            "approved); they read the application and its comments on the usage page.",
        ),
    ],
    submit: Annotated[
        bool,
        typer.Option(
            "--submit",
            help="Submit it for review at once. Without it the application is a draft, which "
            "the applicant edits and submits on the usage page.",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Enter an application from a YAML file, for its applicant (a PI).

    A top-up or extension names an existing project as slug; entered here it need not come from one of the project's managers. When someone other than the applicant runs the command, a comment in the application's history says who entered it.

    Amounts are plain decimals (36000.00) and dates YYYY-MM-DD (midnight UTC) or ISO 8601 times; a bad value is reported with the file and the key.

    Example file (app.yaml):
      kind: new
      slug: climate-ml
      title: Climate downscaling with diffusion models
      organisation: University of Hong Kong
      amount: 36000.00
      gpu_hours: {h800: 1000}
      starts: 2027-01-01
      ends: 2028-01-01
      team: ["alice"]
      plan: [6000.00, 9000.00, 9000.00, 12000.00]
      email: carol@uni.example

    Examples:
      subsidyhub application create --file app.yaml --applicant carol
      subsidyhub application create --file app.yaml --applicant carol --submit
    """
    fields = fields_from_document(file, read_application_file(file))
    projects.check_username(applicant)
    run: Invocation = ctx.obj
    now = now_ms()
    try:
        with run.database().write() as session:
            application = applications.create(
                session, run.settings, applicant, fields, now, is_admin=True, actor=run.actor
            )
            if submit:
                application = applications.submit(
                    session, run.settings, application.id, applicant, now
                )
            shown = _shown(session, application)
    except SubsidyError as error:
        # The ledger names the field; the file is what the admin opens to fix it.
        raise type(error)(f"{file}: {error.message}", reason=error.reason) from None
    if as_json:
        output.print_json(shown)
        return
    typer.echo(
        f"Application {shown['id']} by {applicant}: {KIND_WORDS[shown['kind']]} "
        f"{shown['slug']}, "
        f"{format_money(application.amount_micro, run.settings.currency)} from "
        f"{_day(application.starts_ms)} to {_day(application.ends_ms)}."
    )
    if submit:
        typer.echo(
            f"Submitted for review; decide with: subsidyhub application approve {shown['id']} "
            "--rate FRACTION (or reject --reason TEXT)"
        )
    else:
        typer.echo(
            f"It is a draft: {applicant} edits and submits it on the usage page (the hub's "
            "Services menu, subsidy)."
        )


# --- Reading ---------------------------------------------------------------------------------


@app.command("list")
def list_applications(
    ctx: typer.Context,
    state: Annotated[
        State | None,
        typer.Option(
            "--state", help="Only applications in this state; submitted ones await a decision."
        ),
    ] = None,
    applicant: Annotated[
        str | None,
        typer.Option("--applicant", metavar="USER", help="Only this person's applications."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List applications, oldest first: kind, state, applicant, project, amount, period.

    Examples:
      subsidyhub application list --state submitted
      subsidyhub application list --applicant carol --json
    """
    run: Invocation = ctx.obj
    with run.database().read() as session:
        rows = applications.listing(
            session, state=None if state is None else state.value, applicant=applicant
        )
        shown = [shapes.describe_application(row, slug) for row, slug in rows]
    if as_json:
        output.print_json({"applications": shown})
        return
    if not shown:
        which = f" {state.value}" if state else ""
        typer.echo(f"No{which} applications.")
        return
    currency = run.settings.currency
    output.print_table(
        ["Id", "Kind", "State", "Applicant", "Project", "Title", "Amount", "Period", "Submitted"],
        (
            [
                item["id"],
                item["kind"],
                item["state"],
                item["applicant"],
                item["project"] or item["slug"],
                item["title"],
                format_money(row.amount_micro, currency),
                f"{_day(row.starts_ms)} – {_day(row.ends_ms)}",
                _day(row.submitted_ms),
            ]
            for item, (row, _slug) in zip(shown, rows, strict=True)
        ),
        title=f"Applications ({len(shown)})",
    )


@app.command("show")
def show(ctx: typer.Context, application_id: ApplicationId, as_json: JsonFlag = False) -> None:
    """Show one application: what was asked for, the decision, and its history of comments.

    Example:
      subsidyhub application show 7
    """
    number = _number(application_id)
    run: Invocation = ctx.obj
    with run.database().read() as session:
        application = applications.get(session, number, run.actor, True)
        shown = _shown(session, application)
    if as_json:
        output.print_json(shown)
        return
    currency = run.settings.currency

    def money(micro: int) -> str:
        return format_money(micro, currency)

    row = application
    typer.echo(
        f"Application {row.id}: {KIND_WORDS[row.kind]} {row.slug}, {row.title!r} ({row.state})"
    )
    contact = f" <{row.email}>" if row.email else ""
    typer.echo(
        f"  applicant {row.applicant}{contact}, organisation {row.organisation or output.NONE}"
    )
    typer.echo(
        f"  asks {money(row.amount_micro)} from {_day(row.starts_ms)} to {_day(row.ends_ms)}"
    )
    if row.gpu_hours:
        hours = ", ".join(f"{t} {h}" for t, h in sorted(row.gpu_hours.items()))
        typer.echo(f"  GPU-hours: {hours}")
    typer.echo(f"  team: {', '.join(row.team) or output.NONE}")
    if row.plan:
        typer.echo(f"  plan per quarter: {', '.join(money(a) for a in row.plan)}")
    if row.state in (applications.APPROVED, applications.REJECTED):
        typer.echo(f"  {row.state} {_day(row.decided_ms)} by {row.decided_by}")
    if row.state == applications.APPROVED:
        approved = money(row.approved_micro or 0)
        typer.echo(
            f"  subsidy rate {shown['subsidy_rate']}, {approved} as project {shown['project']}, "
            f"allocation {row.allocation_id or output.NONE}"
        )
    if row.abstract.strip():
        typer.echo("Abstract:")
        for line in row.abstract.splitlines():
            typer.echo(f"  {line}")
    output.print_table(
        ["At", "By", "What", "Text"],
        ([e["at"], e["actor"], e["kind"], e["body"]] for e in shown["events"]),
        title="History",
    )


# --- Deciding --------------------------------------------------------------------------------


@app.command("comment")
def comment(
    ctx: typer.Context,
    application_id: ApplicationId,
    text: Annotated[
        str,
        typer.Argument(
            metavar="TEXT",
            help="What the applicant should know or do; they read it in the application's "
            "history on the usage page.",
        ),
    ],
) -> None:
    """Comment on an application: a question for the applicant, or a note for the panel.

    Example:
      subsidyhub application comment 7 "Please confirm the H800 hours."
    """
    number = _number(application_id)
    run: Invocation = ctx.obj
    with run.database().write() as session:
        applications.comment(session, number, run.actor, True, text, now_ms())
        applicant = applications.get(session, number, run.actor, True).applicant
    typer.echo(f"Commented on application {number}; {applicant} reads it in its history.")


@app.command("approve")
@with_limit_options(LIMITS, "application approve")
def approve(
    ctx: typer.Context,
    application_id: ApplicationId,
    rate: Annotated[
        str,
        typer.Option(
            "--rate",
            metavar="FRACTION",
            help="The subsidy rate: the share of the list price the scheme pays, e.g. 0.75 "
            "for 75% (at most the config's scheme.max_subsidy_rate).",
        ),
    ],
    amount: Annotated[
        str | None,
        typer.Option(
            "--amount",
            metavar="AMOUNT",
            help="The subsidy granted, e.g. 36000 or 36000.00. Default: the amount applied "
            "for. The applicant's plan per quarter is kept only with that amount; otherwise "
            "the plan is even (change it with `subsidyhub plan set`).",
        ),
    ] = None,
    valid_from: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="DATE",
            help="Start of the grant: YYYY-MM-DD (midnight UTC) or an ISO 8601 time. "
            "Default: the start applied for.",
        ),
    ] = None,
    valid_until: Annotated[
        str | None,
        typer.Option(
            "--until",
            metavar="DATE",
            help="End of the grant (exclusive), same forms as --from; what is left then "
            "lapses. Default: the end applied for.",
        ),
    ] = None,
    slug: Annotated[
        str | None,
        typer.Option(
            "--slug",
            metavar="SLUG",
            help="A new project's slug, when not the one proposed (e.g. it is taken).",
        ),
    ] = None,
    note: Annotated[
        str,
        typer.Option(
            "--note",
            metavar="TEXT",
            help="Told to the applicant with the decision, e.g. the panel.",
        ),
    ] = "",
    *,
    quota: dict[str, str],
) -> None:
    """Approve a submitted application in one step: project, members, rate, quota, allocation, plan.

    For a new project: the project (the applicant its manager, the team its members), its subsidy rate and quota, the allocation over the grant's window and its burn plan. For a top-up or an extension: the project's rate and quota, and a new allocation. All in one transaction, audited; an application is decided once. The quota options are those of `admin quota set`.

    Examples:
      subsidyhub application approve 7 --rate 0.75
      subsidyhub application approve 7 --rate 0.70 --amount 30000 --until 2027-07-01 --project-max-gpus 4
    """
    number = _number(application_id)
    decision = Decision(
        rate_bp=values.subsidy_bp(rate),
        amount_micro=None if amount is None else values.amount(amount),
        valid_from_ms=None if valid_from is None else values.moment(valid_from, "--from"),
        valid_until_ms=None if valid_until is None else values.moment(valid_until, "--until"),
        slug=slug,
        quota=quota,
        note=note,
    )
    start, end = decision.valid_from_ms, decision.valid_until_ms
    if start is not None and end is not None and end <= start:
        raise CliError(
            f"--until {iso(end)} is not after --from {iso(start)}; give an end after the start",
            exit_code=2,
        )
    run: Invocation = ctx.obj
    with run.database().write() as session:
        application = applications.approve(
            session, run.settings, number, run.actor, decision, now_ms()
        )
        shown = _shown(session, application)
    typer.echo(f"Application {number} is approved. {shown['events'][-1]['body']}")
    if shown["allocation_id"]:
        typer.echo(
            f"Allocation {shown['allocation_id']} holds it; its burn plan: subsidyhub plan show "
            f"{shown['project']}"
        )


@app.command("reject")
def reject(
    ctx: typer.Context,
    application_id: ApplicationId,
    reason: Annotated[
        str,
        typer.Option(
            "--reason", metavar="TEXT", help="Why; the applicant reads it with the decision."
        ),
    ],
) -> None:
    """Reject a submitted application with a reason the applicant reads.

    Example:
      subsidyhub application reject 8 --reason "The scheme funds climate work this round."
    """
    number = _number(application_id)
    run: Invocation = ctx.obj
    with run.database().write() as session:
        application = applications.reject(session, number, run.actor, reason, now_ms())
        applicant = application.applicant
    typer.echo(f"Application {number} is rejected; {applicant} reads the reason.")


# --- Burn plans ------------------------------------------------------------------------------

STATUS_WORDS = {
    burn_plan.OK: "on plan",
    burn_plan.OVER: "over plan",
    burn_plan.UNDER: "under plan",
}


def plan_months(items: list[str]) -> dict[str, int]:
    """``YYYY-MM=AMOUNT`` pairs ("2027-01=1000.00") as micro-units per month."""
    months: dict[str, int] = {}
    for item in items:
        month, sep, amount = item.partition("=")
        if not sep:
            raise InvalidInput(
                f"--month {item[:40]!r} is not YYYY-MM=AMOUNT; write it like 2027-01=1000.00"
            )
        try:
            month = values.month(month)
            micro = values.amount(amount)
        except InvalidInput as error:
            raise InvalidInput(f"--month {item[:40]!r}: {error.message}") from None
        if month in months:
            raise InvalidInput(f"--month {month} is given twice; give each month once")
        months[month] = micro
    return months


def _print_position(position: dict[str, Any], currency: str, now: int) -> None:
    typer.echo(f"Project {position['project']} ({position['name']}): {position['message']}")
    deviation = position["deviation_percent"]
    typer.echo(
        f"  {STATUS_WORDS[position['status']]}: granted {position['granted']}, planned to date "
        f"{position['planned_to_date']}, "
        f"spent to date {position['spent_to_date']}"
        + (f" ({deviation}% against the plan)" if deviation is not None else "")
        + f"; projected by the end ({str(position['ends'])[:10]}) {position['projected']}, "
        f"unused {position['projected_unused']} ({currency})"
    )
    current = month_of(now)
    output.print_table(
        ["Month", f"Planned ({currency})", f"Spent ({currency})"],
        (
            [m["month"] + (" (now)" if m["month"] == current else ""), m["planned"], m["spent"]]
            for m in position["months"]
        ),
        title="Subsidy per month",
    )


@plan_app.command("show")
def show_plan(ctx: typer.Context, project: ProjectSlug, as_json: JsonFlag = False) -> None:
    """Show a project's burn plan: per month, subsidy planned against subsidy spent.

    With its status (over or under the plan to date by more than the config's scheme.plan_margin_percent), the projection at the last 30 days' pace, and the project's grants (allocations with an end), whose plans `plan set` changes.

    Examples:
      subsidyhub plan show climate-ml
      subsidyhub plan show climate-ml --json
    """
    run: Invocation = ctx.obj
    now = now_ms()
    currency = run.settings.currency
    with run.database().read() as session:
        found = projects.get_project(session, project)
        positions = burn_plan.positions(session, run.settings, now, [found.id])
        grants = [
            shapes.describe_allocation(a)
            for a in projects.allocations_of(session, found)
            if a.valid_until_ms is not None and a.amount_micro > 0
        ]
    shown = [shapes.describe_position(p, currency, now) for p in positions]
    if as_json:
        output.print_json({"positions": shown, "grants": grants})
        return
    if not shown:
        typer.echo(
            f"Project {project} has no grant (an allocation with an end), so no burn plan; "
            "approving an application gives it one."
        )
        return
    for position in shown:
        _print_position(position, currency, now)
    output.print_table(
        ["Allocation", f"Amount ({currency})", "From", "Until", "Note"],
        ([g["id"], g["amount"], g["valid_from"], g["valid_until"], g["note"]] for g in grants),
        title=f"Grants (change a plan: subsidyhub plan set {project} ALLOCATION --month …)",
    )


@plan_app.command("set")
def set_plan(
    ctx: typer.Context,
    project: ProjectSlug,
    allocation_id: Annotated[
        str,
        typer.Argument(
            metavar="ALLOCATION", help="The grant's allocation id, from `subsidyhub plan show`."
        ),
    ],
    months: Annotated[
        list[str] | None,
        typer.Option(
            "--month",
            metavar="YYYY-MM=AMOUNT",
            help="The subsidy planned in one UTC month of the grant, e.g. 2027-01=1000.00; "
            "repeat for each month. Months left out plan nothing; together they add up to "
            "the allocation's amount.",
        ),
    ] = None,
    even: Annotated[
        bool,
        typer.Option(
            "--even",
            help="Clear the plan: the grant is then planned evenly over its window.",
        ),
    ] = False,
) -> None:
    """Set a grant's burn plan per month, or back to even over its window.

    Examples:
      subsidyhub plan set climate-ml 3 --month 2027-01=1000.00 --month 2027-02=2000.00
      subsidyhub plan set climate-ml 3 --even
    """
    if even and months:
        raise InvalidInput("give --month YYYY-MM=AMOUNT for the months, or --even, not both")
    if not even and not months:
        raise InvalidInput(
            "nothing to set; give --month YYYY-MM=AMOUNT for each month of the grant (adding "
            "up to its amount), or --even"
        )
    planned = plan_months(months or [])
    number = values.whole(allocation_id, "ALLOCATION", 1, MAX_ID)
    run: Invocation = ctx.obj
    with run.database().write() as session:
        after = burn_plan.set_plan(session, run.actor, project, number, planned)
    currency = run.settings.currency
    how = "by month" if planned else "even over its window"
    typer.echo(f"Plan of allocation {number} of project {project} is now {how}.")
    output.print_table(
        ["Month", f"Planned ({currency})"],
        ([month, to_decimal_string(amount)] for month, amount in sorted(after.items())),
    )
