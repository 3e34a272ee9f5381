"""Money as integer micro-units of the currency.

Every amount in the ledger is an ``int`` of micro-units (1 unit = 1_000_000 micro), so sums
are exact and statements reconcile to the last digit. Floats never touch money: input is
parsed from decimal strings, output is a decimal string. Rounding happens in exactly one
place per quantity (:func:`div_round`), half to even, so repeated computations agree.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MICRO = 1_000_000
BASIS_POINTS = 10_000
MS_PER_HOUR = 3_600_000

_SYMBOLS = {"HKD": "HK$", "USD": "US$", "EUR": "€", "GBP": "£", "SGD": "S$", "CNY": "CN¥"}


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


def parse_amount(text: str | int | Decimal, *, allow_negative: bool = False) -> int:
    """Parse a decimal amount ("412.30") into micro-units.

    Raises :class:`AmountError` with a readable message for anything that is not a finite
    decimal with at most six fractional digits. Floats are refused: they cannot carry money.
    """
    if isinstance(text, float | bool):
        raise AmountError(f"amount {text!r} must be a decimal string such as '500.00', not a float")
    try:
        value = Decimal(str(text).strip().replace(",", "").replace("_", ""))
    except InvalidOperation:
        raise AmountError(f"amount {str(text)!r} is not a number; write it like 500.00") from None
    if not value.is_finite():
        raise AmountError(f"amount {str(text)!r} is not a finite number")
    if value < 0 and not allow_negative:
        raise AmountError(f"amount {str(text)!r} is negative; amounts must be 0 or more")
    micro = value * MICRO
    if micro != micro.to_integral_value():
        raise AmountError(f"amount {str(text)!r} has more than 6 decimal places")
    return int(micro)


def to_decimal_string(micro: int) -> str:
    """Exact decimal string of a micro amount, at least two fractional digits ("12.50")."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), MICRO)
    digits = f"{frac:06d}".rstrip("0")
    if len(digits) < 2:
        digits = digits.ljust(2, "0")
    return f"{sign}{whole}.{digits}"


def currency_symbol(currency: str) -> str:
    """The symbol people expect for a currency code; the code itself when unknown."""
    return _SYMBOLS.get(currency.upper(), currency.upper() + " ")


def format_money(micro: int, currency: str) -> str:
    """Human display rounded to cents: ``HK$412.30``; negative amounts as ``-HK$3.20``."""
    cents = div_round(abs(micro), MICRO // 100)
    sign = "-" if micro < 0 and cents else ""
    whole, frac = divmod(cents, 100)
    return f"{sign}{currency_symbol(currency)}{whole:,}.{frac:02d}"


def format_money_exact(micro: int, currency: str) -> str:
    """Display without rounding, for documents whose rows must add up: ``HK$1,412.305``."""
    whole, frac = to_decimal_string(abs(micro)).split(".")
    sign = "-" if micro < 0 else ""
    return f"{sign}{currency_symbol(currency)}{int(whole):,}.{frac}"


def bp_from_fraction(value: str | Decimal | int) -> int:
    """A rate given as a fraction (0.70) to basis points (7000); must lie in 0..1."""
    try:
        rate = Decimal(str(value).strip())
    except InvalidOperation:
        raise AmountError(
            f"rate {str(value)!r} is not a number; give a fraction such as 0.70"
        ) from None
    if not rate.is_finite() or rate < 0 or rate > 1:
        raise AmountError(f"rate {str(value)!r} is outside 0..1; give a fraction such as 0.70")
    bp = rate * BASIS_POINTS
    if bp != bp.to_integral_value():
        raise AmountError(f"rate {str(value)!r} is finer than a basis point (0.0001)")
    return int(bp)


def bp_to_fraction_string(bp: int) -> str:
    """Basis points as a fraction string: 7000 → "0.70"."""
    return str((Decimal(bp) / BASIS_POINTS).quantize(Decimal("0.0001")).normalize()) if bp else "0"
