"""Pure pricing: what a profile costs per hour, and what a session owes for a span of time.

Charges telescope: the amount owed up to elapsed time ``t`` is ``rate × t`` rounded once
(:func:`accrued`), and an interval's charge is the difference of two such values. However a
session's life is cut into intervals (ticks, crashes, month boundaries), the sum of its
charges equals its rate × its duration rounded once, so statements reconcile exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from subsidyhub.money import BASIS_POINTS, div_round
from subsidyhub.timeutil import MS_PER_HOUR

if TYPE_CHECKING:
    from subsidyhub.settings import Profile


@dataclass(frozen=True, slots=True)
class PriceList:
    """One version of the list prices, per resource-hour, in micro-units."""

    version: int
    cpu_core: int
    memory_gib: int
    gpu: dict[str, int]


@dataclass(frozen=True, slots=True)
class Resources:
    cpu: Decimal
    memory_gib: Decimal
    gpu_type: str | None = None
    gpu_count: int = 0


@dataclass(frozen=True, slots=True)
class Split:
    """One charge line's money: list price = subsidy + co-pay."""

    list: int
    subsidy: int

    @property
    def copay(self) -> int:
        return self.list - self.subsidy


def list_rate_per_hour(prices: PriceList, resources: Resources) -> int:
    """The list price per hour of a set of resources, in micro-units, rounded once."""
    total = resources.cpu * prices.cpu_core + resources.memory_gib * prices.memory_gib
    if resources.gpu_count:
        if resources.gpu_type not in prices.gpu:
            raise KeyError(
                f"GPU type {resources.gpu_type!r} has no price in version {prices.version}"
            )
        total += resources.gpu_count * prices.gpu[resources.gpu_type]
    return int(total.to_integral_value())  # ROUND_HALF_EVEN, the Decimal default


def subsidy_rate_per_hour(list_rate: int, subsidy_bp: int) -> int:
    """The subsidised part of an hourly rate, for display and forecasts."""
    return div_round(list_rate * subsidy_bp, BASIS_POINTS)


def accrued(list_rate: int, subsidy_bp: int, elapsed_ms: int) -> Split:
    """What a session owes for its first ``elapsed_ms`` milliseconds, each part rounded once."""
    list_part = div_round(list_rate * elapsed_ms, MS_PER_HOUR)
    subsidy_part = div_round(list_rate * elapsed_ms * subsidy_bp, MS_PER_HOUR * BASIS_POINTS)
    return Split(list_part, subsidy_part)


def interval_charge(list_rate: int, subsidy_bp: int, start_ms: int, end_ms: int) -> Split:
    """The charge for elapsed span [start_ms, end_ms): the difference of two accruals."""
    before = accrued(list_rate, subsidy_bp, start_ms)
    after = accrued(list_rate, subsidy_bp, end_ms)
    return Split(after.list - before.list, after.subsidy - before.subsidy)


def cost_for(list_rate: int, subsidy_bp: int, duration_ms: int) -> Split:
    """What running for ``duration_ms`` costs from a standing start (quotes and holds)."""
    return accrued(list_rate, subsidy_bp, duration_ms)


def resources_of(profile: Profile) -> Resources:
    """What a profile asks for, as priced."""
    return Resources(profile.cpu, profile.memory_gib, profile.gpu_type, profile.gpu_count)
