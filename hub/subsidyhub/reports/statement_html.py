"""A monthly statement as one printable HTML page: the document attached to a subsidy claim.

Self-contained (inline CSS, no scripts, no external assets) so it prints the same anywhere and
can be archived as one file; each project starts on a new printed page. Autoescaping is on:
project, organisation and user names come from admins and identity providers and are shown
as text, never as markup. Amounts are exact (:func:`subsidyhub.money.format_money_exact`),
not rounded to cents, so every table adds up to its total and the grand total equals the
ledger's charges to the micro-unit, as the CSV and JSON forms do.

Under each project's charges, a second table says per user how much of them paid for idle GPUs
(:mod:`subsidyhub.ledger.waste`); it is labelled as part of the charges above, since its
amounts are already in them, and a funder must not add the two.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from subsidyhub.ledger import waste
from subsidyhub.ledger.statements import Statement, StatementLine, idle_columns
from subsidyhub.money import format_money_exact, parse_amount

_ENVIRONMENT = Environment(
    loader=PackageLoader("subsidyhub.reports", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _percent(fraction: str) -> str:
    """A subsidy rate fraction ("0.7") as people read it ("70%")."""
    return f"{(Decimal(fraction) * 100).normalize():f}%"


def idle_rows(lines: list[StatementLine]) -> list[dict[str, Any]]:
    """Idle GPU figures per user and GPU type (summed over profiles), users with some only."""
    per_user: dict[tuple[str, str], waste.Idle] = {}
    for line in lines:
        if line.idle.gpu_ms and line.gpu_type:
            key = (line.username, line.gpu_type)
            per_user[key] = per_user.get(key, waste.NONE) + line.idle
    return [
        {"username": username, "gpu_type": gpu_type, "sessions": idle.sessions} | idle_columns(idle)
        for (username, gpu_type), idle in sorted(per_user.items())
    ]


def render_statement_html(result: Statement, centre_name: str) -> str:
    """The statement ``result`` as an HTML document headed with ``centre_name``."""

    def money(decimal: str) -> str:
        return format_money_exact(parse_amount(decimal, allow_negative=True), result.currency)

    sections: list[dict[str, Any]] = []
    for project in result.projects:
        lines = [line for line in result.lines if line.project == project["slug"]]
        part = Statement(result.month, result.currency, [project], lines).as_dict()
        sections.append(
            {
                **project,
                "subsidy_percent": _percent(project["subsidy_rate"]),
                "lines": part["lines"],
                "totals": part["totals"] | {"sessions": sum(line.sessions for line in lines)},
                "idle": idle_rows(lines),
            }
        )
    everything = result.as_dict()
    return _ENVIRONMENT.get_template("statement.html.j2").render(
        centre_name=centre_name,
        month=result.month,
        currency=result.currency,
        projects=sections,
        totals=everything["totals"] | {"sessions": sum(line.sessions for line in result.lines)},
        idle_shown=result.total_idle.gpu_ms > 0,
        money=money,
    )
