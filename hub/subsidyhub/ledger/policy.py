"""Pure admission policy: may this user start this profile for this project now?

No I/O: the caller (``admission``) reads the facts inside its transaction and passes them in,
so the rules are a table of cases in tests and the same facts that decided are the ones locked.
A refusal carries a stable reason code (for metrics and the UI) and a message that names the
limit, the current use and what to do next.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from subsidyhub.money import format_money
from subsidyhub.timeutil import format_hours

# A member's limits in force (subsidyhub.limits.effective): stored values by limit name, an
# absent name is no limit. GPUs as int, durations in ms, names as lists.
Limits = Mapping[str, Any]


def is_student(kind: str, role: str | None) -> bool:
    """A plain member of a course: sees an allowance instead of the course's money."""
    return kind == "course" and role == "member"


@dataclass(frozen=True, slots=True)
class ProjectFacts:
    slug: str
    status: str
    currency: str
    available: int
    has_active_allocation: bool
    is_member: bool
    # A course's student is told about their allowance, never the course's money.
    student: bool = False
    # What people read: the project's display name (the slug when it has none).
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.slug


@dataclass(frozen=True, slots=True)
class Usage:
    project_gpus: int = 0
    member_gpus: int = 0
    member_gpu_ms_week: int = 0


@dataclass(frozen=True, slots=True)
class SpawnRequest:
    user: str
    profile: str
    gpu_type: str | None
    gpu_count: int
    hold: int
    min_start_ms: int
    alternatives: tuple[tuple[str, int], ...] = field(default=())
    # Display names by profile slug, for messages (a slug without one is shown as itself).
    names: Mapping[str, str] = field(default_factory=dict)

    def name_of(self, profile: str) -> str:
        return self.names.get(profile, profile)


@dataclass(frozen=True, slots=True)
class GpuFacts:
    """The GPU type's capacity as admission sees it (:mod:`subsidyhub.ledger.capacity`).

    ``free`` counts what this project may take now (the general pool and its own unused
    reserved GPUs); ``waiting`` the people in the type's queue this spawn must not pass (0 for
    the holder of an offer, or when the project's reservation has room); ``window_in_ms`` is
    how soon a reservation's window starts that would need this server's GPUs.
    """

    label: str
    capacity: int
    free: int
    waiting: int = 0
    window_in_ms: int | None = None
    window_for: str = ""
    window_at: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    message: str
    hold: int = 0
    max_duration_ms: int | None = None
    # Set when a reservation's window, not a limit, sets the session's end.
    reserved_for: str | None = None


def _refuse(reason: str, message: str) -> Decision:
    return Decision(False, reason, message)


def _gpu_refusal(gpus: GpuFacts, request: SpawnRequest, profile: str) -> Decision | None:
    """Capacity comes last: a spawn the project's rules refuse is not worth a place in a queue."""
    if gpus.capacity < request.gpu_count:
        return _refuse(
            "no_gpu_capacity",
            f"The centre has {gpus.capacity} {gpus.label} GPUs, and {profile} needs "
            f"{request.gpu_count}. Pick a profile with fewer GPUs, or ask the centre's admins.",
        )
    if gpus.waiting or gpus.free < request.gpu_count:
        queue = f"; {gpus.waiting} waiting in the queue" if gpus.waiting else ""
        return _refuse(
            "gpus_busy",
            f"No {gpus.label} GPU is free for {profile} now ({max(0, gpus.free)} of "
            f"{gpus.capacity} free{queue}). Join the queue to get the next one, or pick a CPU "
            "profile.",
        )
    if gpus.window_in_ms is not None and gpus.window_in_ms < request.min_start_ms:
        return _refuse(
            "gpus_reserved",
            f"The free {gpus.label} GPUs are reserved for {gpus.window_for} from "
            f"{gpus.window_at}, too soon for {profile} (it starts for at least "
            f"{request.min_start_ms // 60_000} minutes). Start it when the reservation ends, or "
            "pick a CPU profile.",
        )
    return None


def decide(
    project: ProjectFacts,
    limits: Limits,
    usage: Usage,
    request: SpawnRequest,
    gpus: GpuFacts | None = None,
) -> Decision:
    """Apply the rules in a fixed order; the first that fails explains the refusal.

    ``gpus`` is ``None`` where the type's capacity is unknown (nothing to count) and for a
    place in the queue, which is asked for because no GPU is free.
    """
    # People read display names; the codes stay slugs.
    project_name, profile = project.label, request.name_of(request.profile)
    if not project.is_member:
        return _refuse(
            "not_member",
            f"{request.user} is not a member of project {project_name}. "
            "Ask the project's manager to add you, or pick one of your projects.",
        )
    if project.status != "active":
        return _refuse(
            "project_inactive",
            f"Project {project_name} is {project.status}; no new servers can start. "
            "Contact the centre's admins to reactivate it.",
        )
    if not project.has_active_allocation:
        return _refuse(
            "no_allocation",
            f"Project {project_name} has no allocation valid today. "
            "Ask your project manager to request a new allocation.",
        )
    profiles = limits.get("profiles")
    if profiles is not None and request.profile not in profiles:
        return _refuse(
            "profile_not_allowed",
            f"Profile {profile} is not allowed in project {project_name}; "
            f"allowed: {', '.join(sorted(request.name_of(p) for p in profiles)) or 'none'}.",
        )
    gpu_types = limits.get("gpu_types")
    if request.gpu_count and gpu_types is not None and request.gpu_type not in gpu_types:
        return _refuse(
            "gpu_type_not_allowed",
            f"GPU type {request.gpu_type} is not allowed in project {project_name}; "
            f"allowed: {', '.join(sorted(gpu_types)) or 'none'}.",
        )
    project_gpus = limits.get("project_max_gpus")
    member_gpus = limits.get("member_max_gpus")
    if request.gpu_count:
        if project_gpus is not None and usage.project_gpus + request.gpu_count > project_gpus:
            return _refuse(
                "project_gpu_cap",
                f"Project {project_name} may use {project_gpus} GPUs at once and "
                f"{usage.project_gpus} are in use; {profile} needs {request.gpu_count}. "
                "Wait for a server to stop, or pick a CPU profile.",
            )
        if member_gpus is not None and usage.member_gpus + request.gpu_count > member_gpus:
            return _refuse(
                "member_gpu_cap",
                f"You may use {member_gpus} GPUs at once in project {project_name} and "
                f"have {usage.member_gpus} in use; {profile} needs {request.gpu_count}. "
                "Stop one of your servers first.",
            )
    max_duration: int | None = limits.get("max_session_hours")
    week_ms = limits.get("gpu_hours_per_week")
    if request.gpu_count and week_ms is not None:
        left_ms = week_ms - usage.member_gpu_ms_week
        if left_ms < request.gpu_count * request.min_start_ms:
            return _refuse(
                "weekly_gpu_hours",
                f"You have used {format_hours(usage.member_gpu_ms_week, 1)} of your "
                f"{format_hours(week_ms)} GPU-hours for the last 7 days in project {project_name}; "
                f"{profile} needs {request.gpu_count} GPU for at least "
                f"{request.min_start_ms // 60_000} minutes. Hours free up as the week rolls on.",
            )
        week_duration = left_ms // request.gpu_count
        max_duration = week_duration if max_duration is None else min(max_duration, week_duration)
    if project.available < request.hold and project.student:
        return _refuse(
            "insufficient_balance",
            f"Course {project_name} has too little subsidy left to start {profile}. "
            "Ask your lecturer to top up the course, or pick a smaller profile.",
        )
    if project.available < request.hold:
        cheaper = [slug for slug, hold in request.alternatives if hold <= project.available]
        advice = "Ask your project manager to top up"
        advice += f", or pick {request.name_of(cheaper[0])}." if cheaper else "."
        minutes = Decimal(request.min_start_ms) / 60_000
        # An overdraft is the centre's matter; the person reads that nothing is left.
        left = (
            f"{format_money(project.available, project.currency)} of subsidy"
            if project.available > 0
            else "no subsidy"
        )
        return _refuse(
            "insufficient_balance",
            f"Project {project_name} has {left} left; {profile} needs {format_money(request.hold, project.currency)} for "
            f"{minutes.normalize():f} minutes. {advice}",
        )
    reserved_for = None
    if request.gpu_count and gpus is not None:
        refusal = _gpu_refusal(gpus, request, profile)
        if refusal is not None:
            return refusal
        window = gpus.window_in_ms
        if window is not None and (max_duration is None or window < max_duration):
            max_duration, reserved_for = window, gpus.window_for
    return Decision(
        True,
        "admitted",
        f"Admitted {profile} in project {project_name}.",
        request.hold,
        max_duration,
        reserved_for,
    )
