"""Turning what an admin types into ledger values, with messages that say how to write it.

Each parser raises :class:`~subsidyhub.errors.InvalidInput`, which the CLI reports as one line
with exit code 2, before any database is opened. Rules that belong to the ledger (a negative
allocation needs ``--correction``, the 90% subsidy cap) stay in the ledger.
"""

from __future__ import annotations

from subsidyhub.errors import InvalidInput
from subsidyhub.money import AmountError, bp_from_fraction, parse_amount
from subsidyhub.slugs import SLUG
from subsidyhub.timeutil import month_bounds, parse_when


def amount(text: str, *, allow_negative: bool = False) -> int:
    """A decimal amount in currency units ("500", "412.30") as micro-units."""
    try:
        return parse_amount(text, allow_negative=allow_negative)
    except AmountError as error:
        raise InvalidInput(str(error)) from None


def subsidy_bp(text: str) -> int:
    """A subsidy rate given as a fraction ("0.7") as basis points."""
    try:
        return bp_from_fraction(text)
    except AmountError as error:
        raise InvalidInput(f"subsidy {error}") from None


def moment(text: str, name: str) -> int:
    """A date (midnight UTC) or ISO 8601 time as epoch ms."""
    return parse_when(text, name=name)


def month(text: str) -> str:
    """A calendar month ``YYYY-MM``, checked here so a bad one fails before any work."""
    month_bounds(text)
    return text.strip()


def gpu_prices(items: list[str]) -> dict[str, int]:
    """``TYPE=PRICE`` pairs ("h800=36.00") as a map of GPU type to micro-units per GPU-hour."""
    prices: dict[str, int] = {}
    for item in items:
        gpu_type, sep, price = item.partition("=")
        gpu_type = gpu_type.strip()
        if not sep or not SLUG.matches(gpu_type):
            raise InvalidInput(
                f"--gpu {item!r} is not TYPE=PRICE; write it like h800=36.00 "
                "(lowercase GPU type, price per GPU-hour)"
            )
        prices[gpu_type] = amount(price)
    return prices


def whole(text: str, name: str, low: int, high: int) -> int:
    """A whole number in ``low..high`` written in ASCII digits (``int()`` alone would also
    read "１２" or " 1_000")."""
    stripped = text.strip()
    if not stripped.isascii() or not stripped.isdigit():
        raise InvalidInput(f"{name} {text!r} is not a whole number; give {low} to {high}")
    number = int(stripped)
    if not low <= number <= high:
        raise InvalidInput(f"{name} {number} is out of range; give {low} to {high}")
    return number
