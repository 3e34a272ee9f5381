"""How long a member can run: the least of what the balance buys, the week's GPU-hours left and
the session cap, and which of them binds.

A "time left" that ignores a limit lies: a project with three weeks of subsidy and a 12-hour
session cap gives 12 hours, not three weeks. The spawn form (per profile, before a start) and
``GET me`` (for the member's running servers) both take their figure from here, so the page
and the status bar name the same binding limit. Pure functions: the caller reads the facts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from subsidyhub.timeutil import MS_PER_HOUR

# What binds, in the words of the API: the subsidy available (a project's money; a course's
# student is told "course budget", never an amount), the member's weekly GPU-hours, the
# longest session, or another project's reservation of the GPUs (issue 16).
Binding = Literal["balance", "weekly_gpu_hours", "session_cap", "reservation"]


@dataclass(frozen=True, slots=True)
class TimeLeft:
    """``ms`` is ``None`` when nothing limits it (a profile that costs no subsidy, no caps)."""

    ms: int | None
    binding: Binding | None

    @property
    def seconds(self) -> int | None:
        return None if self.ms is None else self.ms // 1000


def least(candidates: Iterable[tuple[int | None, Binding]]) -> TimeLeft:
    """The smallest of the candidates that limit anything; on a tie, the first listed."""
    best = TimeLeft(None, None)
    for ms, binding in candidates:
        if ms is not None and (best.ms is None or max(0, ms) < best.ms):
            best = TimeLeft(max(0, ms), binding)
    return best


def weekly_ms_left(in_force: Mapping[str, Any], gpu_ms_week: int, gpu_count: int) -> int | None:
    """How long ``gpu_count`` GPUs run on what is left of the week's GPU-hours."""
    week_ms: int | None = in_force.get("gpu_hours_per_week")
    if gpu_count <= 0 or week_ms is None:
        return None
    return max(0, week_ms - gpu_ms_week) // gpu_count


def for_profile(
    *,
    available: int,
    subsidy_per_hour: int,
    in_force: Mapping[str, Any],
    gpu_ms_week: int,
    gpu_count: int,
    reserved_ms: int | None = None,
) -> TimeLeft:
    """A server of this profile started now: the session cap, the weekly GPU-hours, the
    project's available subsidy at the profile's subsidised rate (as if it ran alone), and
    how soon another project's reservation needs its GPUs (``reserved_ms``)."""
    balance_ms = (
        max(0, available) * MS_PER_HOUR // subsidy_per_hour if subsidy_per_hour > 0 else None
    )
    return least(
        (
            (in_force.get("max_session_hours"), "session_cap"),
            (weekly_ms_left(in_force, gpu_ms_week, gpu_count), "weekly_gpu_hours"),
            (balance_ms, "balance"),
            (reserved_ms, "reservation"),
        )
    )


def for_member(
    *,
    balance_ms: int | None,
    in_force: Mapping[str, Any],
    gpu_ms_week: int,
    running: Iterable[tuple[int, int, int | None]],
    now_ms: int,
) -> TimeLeft:
    """A member's running servers in one project, as ``(gpu_count, started_ms, max_stop_ms)``:
    the first stop among the project's subsidy running out (``balance_ms``, at the project's
    whole burn rate), the member's weekly GPU-hours at the GPUs they hold, and the earliest
    stop time fixed at admission (the session cap, or the week's hours if those came first)."""
    servers = list(running)
    gpus = sum(count for count, _, _ in servers)
    weekly = weekly_ms_left(in_force, gpu_ms_week, gpus)
    stops = [stop for _, _, stop in servers if stop is not None]
    capped = min(stops) - now_ms if stops else None
    return least(
        (
            (weekly, "weekly_gpu_hours"),
            (capped, "session_cap"),
            (balance_ms, "balance"),
        )
    )
