"""The live balance widget a notebook cell shows: the status bar's figures, in the notebook.

``from jupyterlab_subsidy import balance`` then ``balance`` (or ``balance()``) in a cell shows
the project's balance, burn rate, time left, warnings and this server's running cost, refreshed
from the service every ``refresh_seconds``. It stays live for ``live_minutes`` (default 60)
and then pauses with a button to resume: every widget update is kernel output, which counts as
activity, and a widget refreshing for ever would keep an idle server (and its charges) from
ever being culled.
"""

from __future__ import annotations

import html
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import ipywidgets

from jupyterlab_subsidy.figures import (
    NO_MATH,
    choose_project,
    currency_of,
    duration,
    money,
    severity,
    status_line,
    week_line,
)
from jupyterlab_subsidy.kernel import KernelClient, SubsidyError

_COLOURS = {"ok": "#2e7d32", "warning": "#e65100", "critical": "#c62828"}


def _clock(iso: str | None) -> str | None:
    """``14:32 UTC`` of an ISO time from the service today, ``Sun 23 Nov 14:32 UTC`` later."""
    if not iso:
        return None
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC)
    if moment.date() == datetime.now(UTC).date():
        return moment.strftime("%H:%M UTC")
    return moment.strftime("%a %d %b %H:%M UTC")


def _warning_text(project: dict[str, Any], warning: dict[str, Any]) -> str:
    """The service's message; a stop forecast with a readable time instead of a timestamp."""
    if warning.get("code") == "stop_soon" and warning.get("at"):
        return (
            f"Save your work: servers in project {project['slug']} stop at "
            f"{_clock(warning['at'])} because its subsidy runs out."
        )
    return str(warning["message"])


def _limit_rows(project: dict[str, Any], declared: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """A course student's rows: their limits (labels and units as the service declares them)
    and this week's GPU-hours, not the course's money."""
    rows = [("GPU-hours", week_line(project))]
    for limit in declared:
        value = project.get("quota", {}).get(limit["name"])
        if value is None or limit["name"] == "gpu_hours_per_week":
            continue
        shown = ", ".join(value) if isinstance(value, list) else f"{value} {limit['unit']}"
        rows.append((limit["label"], shown))
    return rows


def _balance_rows(project: dict[str, Any], currency: dict[str, Any]) -> list[tuple[str, str]]:
    allocated = Decimal(project["allocated"])
    balance = Decimal(project["balance"])
    rows = [
        ("Allocated", money(allocated, currency)),
        ("Used", money(allocated - balance, currency)),
        ("Left", money(balance, currency)),
        ("Available (after holds)", money(project["available"], currency)),
        ("Subsidy rate", f"{Decimal(project['subsidy_rate']) * 100:.0f}%"),
        (
            "Burn rate",
            f"{money(project['burn_rate_per_hour'], currency)}/h of subsidy "
            f"({money(project['list_rate_per_hour'], currency)}/h list) · "
            f"{project['running_servers']} server(s)",
        ),
    ]
    left = duration(project.get("time_left_seconds"))
    if left is not None:
        rows.append(("Time left", f"{left} (until {_clock(project.get('exhaustion_at'))})"))
    return rows


def render_balance(me: dict[str, Any], preferred: str | None, server_name: str = "") -> str:
    """The widget's HTML for a ``GET me`` answer; pure, for tests."""
    project = choose_project(me.get("projects", []), preferred)
    if project is None:
        return (
            f"<div class='jp-subsidy-widget {NO_MATH}'>You are not a member of any project.</div>"
        )
    currency = currency_of(me)
    level = severity(project)
    if project.get("student"):
        rows = _limit_rows(project, me.get("limits", []))
    else:
        rows = _balance_rows(project, currency)
    own = next(
        (
            s
            for s in me.get("sessions", [])
            if s.get("server_name") == server_name and s.get("project") == project["slug"]
        ),
        None,
    )
    if own is not None:
        rows.append(
            (
                "This server",
                f"{own['profile']} at {money(own['list_rate_per_hour'], currency)}/h "
                f"({money(own['subsidy_rate_per_hour'], currency)}/h subsidy); so far "
                f"{money(own['cost']['list'], currency)}, co-pay {money(own['cost']['copay'], currency)}",
            )
        )
    table = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
        f"<td>{html.escape(v)}</td></tr>"
        for k, v in rows
    )
    warnings = "".join(
        f"<li class='jp-subsidy-widget-{html.escape(str(w.get('level')))}'>"
        f"{html.escape(_warning_text(project, w))}</li>"
        for w in project.get("warnings", [])
    )
    if warnings:
        warnings = f"<ul style='color:{_COLOURS[level]}'>{warnings}</ul>"
    return (
        f"<div class='jp-subsidy-widget {NO_MATH}' data-severity='{level}'>"
        f"<div class='jp-subsidy-widget-line' style='font-weight:600;color:{_COLOURS[level]}'>"
        f"{html.escape(status_line(project))}</div>"
        f"<table>{table}</table>"
        f"{warnings}"
        f"<div style='color:#777;font-size:85%'>Updated {_clock(me.get('at'))}</div></div>"
    )


class BalanceWidget(ipywidgets.VBox):
    """A live view of one project's balance; see the module docstring."""

    def __init__(
        self,
        client: KernelClient,
        project: str | None = None,
        refresh_seconds: float = 10.0,
        live_minutes: float = 60.0,
    ) -> None:
        self.client = client
        self.project = project or client.location.project
        self.refresh_seconds = max(2.0, refresh_seconds)
        self.live_seconds = live_minutes * 60
        self.view = ipywidgets.HTML(value="Loading the subsidy balance…")
        self.button = ipywidgets.Button(description="Refresh", icon="refresh")
        self.button.on_click(lambda _button: self.start())
        super().__init__([self.view, self.button])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.start()

    def refresh(self) -> None:
        """Fetch once and show the figures, or the service's message."""
        try:
            me = self.client.me()
        except SubsidyError as error:
            self.view.value = (
                f"<div class='jp-subsidy-widget jp-subsidy-widget-error {NO_MATH}' style='color:#c62828'>"
                f"{html.escape(error.message)}</div>"
            )
            return
        self.view.value = render_balance(me, self.project, self.client.location.server_name)

    def start(self) -> None:
        """Refresh now and keep refreshing for ``live_minutes``."""
        self.stop()
        self.refresh()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._stop,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self, stop: threading.Event) -> None:
        until = time.monotonic() + self.live_seconds
        self.button.description = "Refresh"
        while not stop.wait(self.refresh_seconds):
            if time.monotonic() > until:
                self.button.description = "Resume live updates"
                return
            self.refresh()

    def close(self) -> None:
        self.stop()
        super().close()
