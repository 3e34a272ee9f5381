"""Money parsing, rounding and display: integer micro-units, never floats."""

from decimal import Decimal

import pytest

from subsidyhub.money import (
    AmountError,
    bp_from_fraction,
    div_round,
    format_money,
    format_money_exact,
    parse_amount,
    to_decimal_string,
)


@pytest.mark.parametrize(
    ("text", "micro"),
    [
        ("500", 500_000_000),
        ("412.30", 412_300_000),
        ("0.000001", 1),
        (" 1234.5 ", 1_234_500_000),
        (7, 7_000_000),
        ("1000000000000", 10**18),
    ],
)
def test_parse_amount(text, micro):
    assert parse_amount(text) == micro


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("-5", "negative"),
        ("abc", "not a plain decimal"),
        ("1.0000001", "more than 6 decimal places"),
        ("NaN", "not a plain decimal"),
        ("1e30", "not a plain decimal"),
        ("1e3", "not a plain decimal"),
        ("1,000", "not a plain decimal"),
        ("1,5", "not a plain decimal"),
        ("1_000", "not a plain decimal"),
        ("１２３", "not a plain decimal"),
        ("١٢٣", "not a plain decimal"),
        ("12 34", "not a plain decimal"),
        ("1000000000000.000001", "more than 1000000000000.00, the most allowed"),
        ("99999999999999999999", "more than"),
        (1.5, "not a float"),
        (Decimal("2.5"), "not a float"),
    ],
)
def test_parse_amount_refuses(text, fragment):
    with pytest.raises(AmountError, match=fragment):
        parse_amount(text)


def test_negative_allowed_when_asked():
    assert parse_amount("-3.2", allow_negative=True) == -3_200_000


@pytest.mark.parametrize(
    ("num", "den", "expected"),
    [(5, 2, 2), (7, 2, 4), (-5, 2, -2), (10, 4, 2), (14, 4, 4), (1, 3, 0), (2, 3, 1)],
)
def test_div_round_half_even(num, den, expected):
    assert div_round(num, den) == expected


@pytest.mark.parametrize(
    ("micro", "text"),
    [
        (412_300_000, "412.30"),
        (1, "0.000001"),
        (-3_200_000, "-3.20"),
        (0, "0.00"),
        (5_000_000, "5.00"),
    ],
)
def test_decimal_string(micro, text):
    assert to_decimal_string(micro) == text
    assert parse_amount(text, allow_negative=True) == micro


@pytest.mark.parametrize(
    ("micro", "shown"),
    [
        (412_300_000, "HK$412.30"),
        (3_205_000, "HK$3.20"),
        (-3_200_000, "\u2212HK$3.20"),  # a true minus sign; more in test_display_cases.py
        (1_234_567_890_000, "HK$1,234,567.89"),
    ],
)
def test_format_money(micro, shown):
    assert format_money(micro, "HKD") == shown


@pytest.mark.parametrize(
    ("fraction", "bp"), [("0.70", 7000), ("0.9", 9000), ("0", 0), ("1", 10000), ("0.1234", 1234)]
)
def test_bp_from_fraction(fraction, bp):
    assert bp_from_fraction(fraction) == bp


@pytest.mark.parametrize("bad", ["1.5", "-0.1", "x", "0.12345", "0,7", "０.7", "7e-1", "", True])
def test_bp_from_fraction_refuses(bad):
    with pytest.raises(AmountError):
        bp_from_fraction(bad)


@pytest.mark.parametrize(
    ("micro", "text"),
    [
        (1_412_305_000, "HK$1,412.305"),  # not rounded to cents: rows must add up exactly
        (92_800_000, "HK$92.80"),
        (1, "HK$0.000001"),
        (-3_200_000, "-HK$3.20"),
        (0, "HK$0.00"),
    ],
)
def test_format_money_exact(micro, text):
    assert format_money_exact(micro, "HKD") == text


def test_a_maximum_is_named():
    assert parse_amount("100", maximum=100_000_000) == 100_000_000
    with pytest.raises(AmountError, match=r"more than 100\.00, the most allowed"):
        parse_amount("100.000001", maximum=100_000_000)
