"""The versioned price list.

Prices never change in place: each change is a new version with an ``effective_from`` time.
A session records the version in force at its admission and keeps its rates for its whole
life, so a price change applies to new sessions only. The config file's ``prices`` seed the
first version; editing them in ``subsidyhub.yaml`` adds a version (source ``config``) at the
next start, and ``subsidyhub admin price set`` adds one (source ``admin``) at any time.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from subsidyhub.errors import Conflict, InvalidInput, NotFound
from subsidyhub.ledger import audit
from subsidyhub.ledger.models import PriceVersion
from subsidyhub.ledger.pricing import PriceList
from subsidyhub.money import to_decimal_string
from subsidyhub.settings import Settings
from subsidyhub.shapes import describe_price_version
from subsidyhub.text import check_text


def as_price_list(version: PriceVersion) -> PriceList:
    return PriceList(
        version.id,
        version.cpu_core_micro,
        version.memory_gib_micro,
        {k: int(v) for k, v in version.gpu_micro.items()},
    )


def current_version(session: Session, at_ms: int) -> PriceVersion:
    version = session.scalars(
        select(PriceVersion)
        .where(PriceVersion.effective_from_ms <= at_ms)
        .order_by(PriceVersion.effective_from_ms.desc(), PriceVersion.id.desc())
        .limit(1)
    ).first()
    if version is None:
        raise NotFound(
            "No price list is in force yet; run `subsidyhub db upgrade` to load the config's prices."
        )
    return version


def versions(session: Session) -> list[PriceVersion]:
    return list(session.scalars(select(PriceVersion).order_by(PriceVersion.id)))


def _same(version: PriceVersion, settings: Settings) -> bool:
    prices = settings.prices
    return (
        version.cpu_core_micro == prices.cpu_core
        and version.memory_gib_micro == prices.memory_gib
        and {k: int(v) for k, v in version.gpu_micro.items()} == dict(prices.gpu)
    )


def sync_from_config(session: Session, settings: Settings, at_ms: int) -> PriceVersion | None:
    """Add a version when the config's prices differ from the last version taken from it."""
    last = session.scalars(
        select(PriceVersion)
        .where(PriceVersion.source == "config")
        .order_by(PriceVersion.id.desc())
        .limit(1)
    ).first()
    if last is not None and _same(last, settings):
        return None
    first = session.scalars(select(PriceVersion.id).limit(1)).first() is None
    version = PriceVersion(
        # The first price list applies from the beginning, so back-dated entries have prices.
        effective_from_ms=0 if first else at_ms,
        cpu_core_micro=settings.prices.cpu_core,
        memory_gib_micro=settings.prices.memory_gib,
        gpu_micro=dict(settings.prices.gpu),
        source="config",
        created_by="config",
        note="from subsidyhub.yaml",
        created_ms=at_ms,
    )
    session.add(version)
    session.flush()
    audit.record(
        session,
        "config",
        "price.set",
        f"prices/{version.id}",
        None,
        describe_price_version(version),
    )
    return version


class NeedsConfirmation(Conflict):
    """A large price change: the message states old and new, and how to confirm."""

    reason = "needs_confirmation"


def check_price_changes(
    settings: Settings, changes: dict[str, tuple[int, int | None]], *, confirm: bool
) -> None:
    """Every new price within the ceiling; large moves only when confirmed."""
    ceiling = settings.bounds.max_price_per_hour
    factor = settings.bounds.price_change_factor
    large = []
    for name, (old, new) in changes.items():
        if new is None:
            continue
        if new > ceiling:
            raise InvalidInput(
                f"{name} price {to_decimal_string(new)} is more than the ceiling "
                f"{to_decimal_string(ceiling)} (bounds.max_price_per_hour in the config)"
            )
        if old > 0 and (new > old * factor or new * factor < old):
            large.append(f"{name} {to_decimal_string(old)} → {to_decimal_string(new)}")
    if large and not confirm:
        raise NeedsConfirmation(
            f"These prices change by more than {factor:f}×: {'; '.join(large)}. Check them; "
            "to apply them anyway, confirm the change."
        )


def set_prices(
    session: Session,
    settings: Settings,
    actor: str,
    *,
    at_ms: int,
    effective_from_ms: int | None = None,
    cpu_core: int | None = None,
    memory_gib: int | None = None,
    gpu: dict[str, int] | None = None,
    note: str = "",
    confirm: bool = False,
) -> PriceVersion:
    """A new version: the current prices with the given ones replaced.

    Each price must be at most ``bounds.max_price_per_hour``; one that moves by more than
    ``bounds.price_change_factor`` from the price in force needs ``confirm`` (a typo such as
    360 for 36.0 would otherwise charge every user at once).
    """
    current = current_version(session, at_ms)
    effective = at_ms if effective_from_ms is None else effective_from_ms
    if effective < at_ms:
        raise InvalidInput("effective_from is in the past; prices can only change from now on")
    check_text(note, "note", max_length=2000, multiline=True)
    unknown = sorted(set(gpu or {}) - set(settings.prices.gpu))
    if unknown:
        raise InvalidInput(
            f"unknown GPU types {', '.join(unknown)}; GPU types are those of prices.gpu in "
            f"the config: {', '.join(sorted(settings.prices.gpu)) or 'none'}"
        )
    merged_gpu = {k: int(v) for k, v in current.gpu_micro.items()} | (gpu or {})
    missing = sorted({p.gpu_type for p in settings.profiles if p.gpu_type} - set(merged_gpu))
    if missing:
        raise InvalidInput(f"GPU types {', '.join(missing)} are used by profiles and need a price")
    changes = {"CPU core-h": (current.cpu_core_micro, cpu_core)}
    changes["GiB-h"] = (current.memory_gib_micro, memory_gib)
    for name, price in (gpu or {}).items():
        changes[f"{name} GPU-h"] = (int(current.gpu_micro.get(name, 0)), price)
    check_price_changes(settings, changes, confirm=confirm)
    version = PriceVersion(
        effective_from_ms=effective,
        cpu_core_micro=current.cpu_core_micro if cpu_core is None else cpu_core,
        memory_gib_micro=current.memory_gib_micro if memory_gib is None else memory_gib,
        gpu_micro=merged_gpu,
        source="admin",
        created_by=actor,
        note=note,
        created_ms=at_ms,
    )
    session.add(version)
    session.flush()
    audit.record(
        session,
        actor,
        "price.set",
        f"prices/{version.id}",
        describe_price_version(current),
        describe_price_version(version),
    )
    return version
