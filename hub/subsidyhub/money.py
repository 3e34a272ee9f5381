"""Money as integer micro-units of the currency.

Every amount in the ledger is an ``int`` of micro-units (1 unit = 1_000_000 micro), so sums
are exact and statements reconcile to the last digit. Floats never touch money: input is
parsed from decimal strings, output is a decimal string. Rounding happens in exactly one
place per quantity (:func:`div_round`), half to even, so repeated computations agree.

People read amounts through :func:`format_money` only: rounded half to even to the currency's
minor units (:data:`CURRENCIES`), with its symbol and a true minus sign. The lab extension
(``format.ts``), its notebook widget (``figures.py``) and the admin page (``admin/format.js``)
follow the same rule, and ``tests/data/display_cases.json`` holds the cases all of them must
show alike (docs/decisions/display.md).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from decimal import Decimal

MICRO = 1_000_000
BASIS_POINTS = 10_000

# The sign of a negative amount on screen: U+2212, as wide as "+" and never broken from the
# digits, rather than the hyphen a CSV or a decimal string carries.
MINUS = "\u2212"


@dataclass(frozen=True)
class CurrencyDisplay:
    """How people read a currency: its symbol and how many minor units (decimals) it shows."""

    code: str
    symbol: str
    minor_units: int

    def as_dict(self) -> dict[str, str | int]:
        return asdict(self)


# Symbols people expect, and ISO 4217's minor units. A code not listed shows as itself with a
# space ("CHF 12.50") and two minor units.
CURRENCIES = {
    display.code: display
    for display in (
        CurrencyDisplay("HKD", "HK$", 2),
        CurrencyDisplay("USD", "US$", 2),
        CurrencyDisplay("EUR", "€", 2),
        CurrencyDisplay("GBP", "£", 2),
        CurrencyDisplay("SGD", "S$", 2),
        CurrencyDisplay("CNY", "CN¥", 2),
        CurrencyDisplay("JPY", "JP¥", 0),
    )
}


class AmountError(ValueError):
    """An amount a person typed is not a valid decimal amount."""


def div_round(numerator: int, denominator: int) -> int:
    """Integer division rounded half to even (banker's rounding), exact for any size."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


# The largest amount any entry may hold, in currency units: far above any grant, and far below
# what a signed 64-bit column of micro-units holds (9.2e12 units). Configurable bounds
# (``bounds`` in subsidyhub.yaml) are lower; this one only keeps arithmetic and storage sane.
MAX_UNITS = 10**12
# A plain decimal as people write it: ASCII digits, an optional point and up to 6 decimals.
# Decimal() alone would also read "1e3", "1_000", "١٢٣" or "１２３"; an amount must be exactly
# what was typed, so none of those is accepted.
_AMOUNT = re.compile(r"^(-?)([0-9]{1,20})(?:\.([0-9]{1,6}))?$")
_TOO_PRECISE = re.compile(r"^-?[0-9]{1,20}\.[0-9]{7,}$")
AMOUNT_FORM = "digits with an optional point and at most 6 decimals, e.g. 500 or 412.30"


def parse_amount(
    text: str | int, *, allow_negative: bool = False, maximum: int | None = None
) -> int:
    """Parse a plain decimal amount ("412.30") into micro-units.

    Refuses, with a message that shows the accepted form, anything that is not ASCII digits
    with an optional point and up to six decimals (no commas, spaces inside, exponents,
    underscores or other scripts' digits), a float (it cannot carry money), a negative amount
    unless ``allow_negative``, and an amount whose size exceeds ``maximum`` micro-units (or
    :data:`MAX_UNITS`).
    """
    if isinstance(text, float | bool) or not isinstance(text, str | int):
        raise AmountError(f"amount {text!r} must be a decimal string such as '500.00', not a float")
    shown = _shown(text)
    match = _AMOUNT.match(str(text).strip())
    if match is None:
        if _TOO_PRECISE.match(str(text).strip()):
            raise AmountError(
                f"amount {shown} has more than 6 decimal places; the ledger counts in "
                "millionths, so round it to 6"
            )
        raise AmountError(f"amount {shown} is not a plain decimal; write {AMOUNT_FORM}")
    sign, whole, fraction = match.groups()
    if sign and not allow_negative:
        raise AmountError(f"amount {shown} is negative; amounts must be 0 or more")
    micro = int(whole) * MICRO + int((fraction or "").ljust(6, "0"))
    limit = MAX_UNITS * MICRO if maximum is None else min(maximum, MAX_UNITS * MICRO)
    if micro > limit:
        raise AmountError(
            f"amount {shown} is more than {to_decimal_string(limit)}, the most allowed"
        )
    return -micro if sign else micro


def _shown(value: object) -> str:
    """A typed value in a message: quoted, and cut short so a huge input cannot flood it."""
    text = repr(str(value))
    return text if len(text) <= 40 else text[:37] + "…'"


def to_decimal_string(micro: int) -> str:
    """Exact decimal string of a micro amount, at least two fractional digits ("12.50")."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), MICRO)
    digits = f"{frac:06d}".rstrip("0")
    if len(digits) < 2:
        digits = digits.ljust(2, "0")
    return f"{sign}{whole}.{digits}"


def currency_display(currency: str) -> CurrencyDisplay:
    """The symbol and minor units of a currency code; the code itself and 2 when unknown."""
    code = currency.upper()
    return CURRENCIES.get(code) or CurrencyDisplay(code, f"{code} ", 2)


def format_money(micro: int, currency: str) -> str:
    """An amount as people read it: ``HK$1,412.30``, ``−HK$3.20``, ``JP¥1,413``.

    Rounded half to even to the currency's minor units; an amount that rounds to zero is
    ``HK$0.00`` whatever its sign. Statements and exports, whose rows must add up, use
    :func:`format_money_exact` instead.
    """
    display = currency_display(currency)
    scale = 10**display.minor_units
    minor = div_round(abs(micro), MICRO // scale)
    sign = MINUS if micro < 0 and minor else ""
    whole, frac = divmod(minor, scale)
    fraction = f".{frac:0{display.minor_units}d}" if display.minor_units else ""
    return f"{sign}{display.symbol}{whole:,}{fraction}"


def format_money_exact(micro: int, currency: str) -> str:
    """Display without rounding, for documents whose rows must add up: ``HK$1,412.305``."""
    whole, frac = to_decimal_string(abs(micro)).split(".")
    sign = "-" if micro < 0 else ""
    return f"{sign}{currency_display(currency).symbol}{int(whole):,}.{frac}"


_FRACTION = re.compile(r"^(?:0(?:\.[0-9]{1,4})?|1(?:\.0{1,4})?|\.[0-9]{1,4})$")


def bp_from_fraction(value: str | int) -> int:
    """A rate given as a fraction ("0.70") to basis points (7000); must lie in 0..1, in steps
    of one basis point (0.0001), written in plain ASCII digits."""
    text = str(value).strip()
    if isinstance(value, bool) or not _FRACTION.match(text):
        raise AmountError(
            f"rate {_shown(value)} is not a fraction from 0 to 1 in steps of 0.0001; "
            "give one such as 0.70"
        )
    return int(Decimal(text) * BASIS_POINTS)


def bp_to_fraction_string(bp: int) -> str:
    """Basis points as a fraction string: 7000 → "0.70"."""
    return str((Decimal(bp) / BASIS_POINTS).quantize(Decimal("0.0001")).normalize()) if bp else "0"
