"""The figures a researcher reads, computed from the service's answers; pure, no I/O.

Amounts arrive as decimal strings and stay :class:`~decimal.Decimal`: money never passes
through a float. A job's cost is rate × hours, rounded once to the micro-unit (half to even,
as the ledger rounds), and shown to the currency's minor units. The same functions serve the
notebook widget and :func:`jupyterlab_subsidy.cost`, and match what the JupyterLab status bar
shows: this package runs in users' servers without the hub's ``subsidyhub``, so :func:`money`
and :func:`duration` restate its rule, and ``tests/data/display_cases.json`` holds the cases
that both (and the TypeScript) must show alike (docs/decisions/display.md).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

MICRO = Decimal("0.000001")
# Notebook HTML output is typeset by MathJax, which reads "HK$1 … HK$2" as mathematics;
# these classes (MathJax 3's and JupyterLab's) tell it to leave money alone.
NO_MATH = "tex2jax_ignore mathjax_ignore"
# A true minus sign (U+2212), as the service writes it.
MINUS = "\u2212"

_LEVELS = {"warning": 1, "critical": 2}


def decimal_of(value: Any, what: str) -> Decimal:
    """A finite Decimal from a decimal string, int or Decimal (a float goes through its repr)."""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{what} must be a number, not {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    return number


def money(amount: Decimal | str, currency: dict[str, Any]) -> str:
    """``HK$1,234.50``, ``−HK$3.20``, ``JP¥1,235``: rounded half to even to ``currency``'s
    ``minor_units`` (``GET me``'s ``currency_display``); a zero has no sign."""
    places = int(currency["minor_units"])
    shown = decimal_of(amount, "amount").quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN)
    sign = MINUS if shown < 0 else ""
    return f"{sign}{currency['symbol']}{abs(shown):,.{places}f}"


def currency_of(me: dict[str, Any]) -> dict[str, Any]:
    """How ``GET me`` says to show its currency; a service too old to say: the code, 2 places."""
    code = str(me.get("currency", ""))
    return me.get("currency_display") or {"code": code, "symbol": f"{code} ", "minor_units": 2}


def duration(seconds: int | None) -> str | None:
    """``< 1 m``, ``24 m``, ``11 h 24 m`` (under two days), ``3 d 4 h``, cut down to the whole
    minute so a time left never promises more than there is; ``None`` when nothing burns."""
    if seconds is None:
        return None
    minutes = max(0, int(seconds)) // 60
    if minutes < 1:
        return "< 1 m"
    hours, minutes = divmod(minutes, 60)
    if hours < 1:
        return f"{minutes} m"
    if hours < 48:
        return f"{hours} h {minutes} m"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def choose_project(projects: list[dict[str, Any]], preferred: str | None) -> dict[str, Any] | None:
    """The server's own project when it is listed, else the first one; ``None`` without any."""
    for project in projects:
        if preferred and project.get("slug") == preferred:
            return project
    return projects[0] if projects else None


def severity(project: dict[str, Any]) -> str:
    """``ok``, ``warning`` or ``critical``: the most severe of the project's warnings."""
    levels = [_LEVELS.get(str(w.get("level")), 1) for w in project.get("warnings", [])]
    top = max(levels, default=0)
    return {0: "ok", 1: "warning", 2: "critical"}[top]


def week_line(project: dict[str, Any]) -> str:
    """A member's week of GPU-hours: ``1.50 of 4 GPU-h this week``."""
    week = project.get("quota", {}).get("gpu_hours_per_week")
    if week is None:
        return "no weekly GPU-hour limit"
    used = project.get("usage", {}).get("gpu_hours_per_week", "0.00")
    return f"{used} of {week} GPU-h this week"


def status_line(project: dict[str, Any]) -> str:
    """``demo · HK$412.30 · 11 h 24 m left``, the status bar's text.

    A course's student gets their allowance instead: ``comp1 · 1.50 of 4 GPU-h this week``.
    """
    if project.get("student"):
        return f"{project['slug']} · {week_line(project)}"
    parts = [str(project["slug"]), str(project["balance_display"])]
    left = duration(project.get("time_left_seconds"))
    if left is not None:
        parts.append(f"{left} left")
    return " · ".join(parts)


@dataclass(frozen=True)
class CostEstimate:
    """What ``hours`` of ``profile`` would cost in ``project`` at today's prices."""

    project: str
    profile: str
    hours: Decimal
    currency: dict[str, Any]  # GET me's currency_display: symbol and minor units
    list: Decimal
    subsidy: Decimal
    copay: Decimal
    available: Decimal | None  # None for a course's student: the course's money is not shown
    allowed: bool
    message: str | None = None

    @property
    def covered(self) -> bool:
        """The project's available subsidy pays the subsidised part and the profile is allowed."""
        return self.allowed and (self.available is None or self.subsidy <= self.available)

    @property
    def verdict(self) -> str:
        """Whether the balance covers the job, and why not when it does not."""
        if not self.allowed and self.message:
            return f"not allowed: {self.message}"
        if self.available is None:
            return "paid by your course within your weekly GPU-hours"
        available = money(self.available, self.currency)
        if self.covered:
            return f"covered: {available} of subsidy available"
        return f"not covered: it needs {money(self.subsidy, self.currency)} of subsidy, {available} is available"

    def summary(self) -> str:
        return (
            f"{self.hours.normalize():f} h of {self.profile} in {self.project}: "
            f"list {money(self.list, self.currency)}, subsidy {money(self.subsidy, self.currency)}, "
            f"co-pay {money(self.copay, self.currency)}; {self.verdict}"
        )

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        colour = "#2e7d32" if self.covered else "#c62828"
        rows = "".join(
            f"<tr><th style='text-align:left;padding-right:1em'>{label}</th>"
            f"<td style='text-align:right'>{money(value, self.currency)}</td></tr>"
            for label, value in (
                ("List price", self.list),
                ("Subsidy (from the grant)", self.subsidy),
                ("Co-pay", self.copay),
                ("Available subsidy", self.available),
            )
            if value is not None
        )
        return (
            f"<div class='jp-subsidy-cost {NO_MATH}'><b>{self.hours.normalize():f} h of "
            f"{html.escape(self.profile)} in {html.escape(self.project)}</b>"
            f"<table>{rows}</table><div style='color:{colour}'>"
            f"{html.escape(self.verdict[:1].upper() + self.verdict[1:])}</div></div>"
        )


def estimate_cost(
    offers: dict[str, Any],
    profile: str,
    hours: Any,
    project: str | None,
    currency: dict[str, Any],
) -> CostEstimate:
    """Cost of ``hours`` of ``profile`` from a ``GET users/{name}/profiles`` answer.

    ``currency`` is how to show amounts (``GET me``'s ``currency_display``). Raises ``ValueError`` naming the valid choices for an unknown project or profile.
    """
    span = decimal_of(hours, "hours")
    if span < 0:
        raise ValueError(f"hours must be 0 or more, not {hours!r}")
    projects = offers.get("projects", [])
    if not projects:
        raise ValueError(f"{offers.get('user', 'You')} are not a member of any project")
    chosen = choose_project(projects, project)
    if chosen is None or (project and chosen.get("slug") != project):
        names = ", ".join(p["slug"] for p in projects)
        raise ValueError(f"No such project: {project}. Options include: {names}")
    offer = next((p for p in chosen["profiles"] if p["slug"] == profile), None)
    if offer is None:
        names = ", ".join(p["slug"] for p in chosen["profiles"])
        raise ValueError(f"No such profile: {profile}. Options include: {names}")
    list_cost = (decimal_of(offer["list_rate_per_hour"], "rate") * span).quantize(
        MICRO, rounding=ROUND_HALF_EVEN
    )
    subsidy = (decimal_of(offer["subsidy_rate_per_hour"], "rate") * span).quantize(
        MICRO, rounding=ROUND_HALF_EVEN
    )
    return CostEstimate(
        project=str(chosen["slug"]),
        profile=profile,
        hours=span,
        currency=currency,
        list=list_cost,
        subsidy=subsidy,
        copay=list_cost - subsidy,
        available=None
        if chosen.get("available") is None
        else decimal_of(chosen["available"], "available"),
        allowed=bool(offer.get("allowed", True)),
        message=offer.get("message"),
    )
