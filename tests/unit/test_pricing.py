"""Pricing tables and the telescoping guarantee: however a session is cut, it is charged once."""

import itertools
import random
from decimal import Decimal

import pytest

from subsidyhub.ledger.pricing import (
    PriceList,
    Resources,
    accrued,
    interval_charge,
    list_rate_per_hour,
    subsidy_rate_per_hour,
)
from subsidyhub.money import div_round
from subsidyhub.timeutil import MS_PER_HOUR

PRICES = PriceList(
    1, cpu_core=500_000, memory_gib=100_000, gpu={"h800": 36_000_000, "a100": 24_000_000}
)


@pytest.mark.parametrize(
    ("resources", "rate"),
    [
        (Resources(Decimal(2), Decimal(4)), 1_400_000),
        (Resources(Decimal(8), Decimal(64), "h800", 1), 46_400_000),
        (Resources(Decimal(16), Decimal(128), "a100", 2), 68_800_000),
        (Resources(Decimal("0.5"), Decimal("0.5")), 300_000),
    ],
)
def test_list_rate(resources, rate):
    assert list_rate_per_hour(PRICES, resources) == rate


def test_unknown_gpu_type_is_an_error():
    with pytest.raises(KeyError, match="v100"):
        list_rate_per_hour(PRICES, Resources(Decimal(1), Decimal(1), "v100", 1))


@pytest.mark.parametrize(("bp", "expected"), [(7000, 32_480_000), (9000, 41_760_000), (0, 0)])
def test_subsidy_rate(bp, expected):
    assert subsidy_rate_per_hour(46_400_000, bp) == expected


def test_split_adds_up():
    split = accrued(46_400_000, 7000, 3_600_000)
    assert split.list == 46_400_000
    assert split.subsidy == 32_480_000
    assert split.copay == 13_920_000


@pytest.mark.parametrize("seed", range(20))
def test_any_cut_sums_to_rate_times_duration_rounded_once(seed):
    rng = random.Random(seed)
    rate = rng.randrange(1, 500_000_000)
    bp = rng.randrange(0, 10_001)
    duration = rng.randrange(1, 40 * MS_PER_HOUR)
    cuts = sorted({0, duration, *(rng.randrange(0, duration) for _ in range(rng.randrange(0, 50)))})
    pieces = [interval_charge(rate, bp, a, b) for a, b in itertools.pairwise(cuts)]
    assert sum(p.list for p in pieces) == div_round(rate * duration, MS_PER_HOUR)
    assert sum(p.subsidy for p in pieces) == div_round(rate * duration * bp, MS_PER_HOUR * 10_000)
    assert all(p.list == p.subsidy + p.copay for p in pieces)
    assert all(p.subsidy <= p.list or p.list < 0 for p in pieces)
