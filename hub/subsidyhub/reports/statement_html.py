"""A monthly statement as one printable HTML page: the document attached to a subsidy claim.

Self-contained (inline CSS, no scripts, no external assets) so it prints the same anywhere and
can be archived as one file; each project starts on a new printed page. Autoescaping is on:
project, organisation and user names come from admins and identity providers and are shown
as text, never as markup. Amounts are exact (:func:`subsidyhub.money.format_money_exact`),
not rounded to cents, so every table adds up to its total and the grand total equals the
ledger's charges to the micro-unit, as the CSV and JSON forms do.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from subsidyhub.ledger.statements import Statement
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
            }
        )
    everything = result.as_dict()
    return _ENVIRONMENT.get_template("statement.html.j2").render(
        centre_name=centre_name,
        month=result.month,
        currency=result.currency,
        projects=sections,
        totals=everything["totals"] | {"sessions": sum(line.sessions for line in result.lines)},
        money=money,
    )
