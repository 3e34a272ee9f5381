"""Exhaustion forecasts across allocations with windows (pure)."""

import pytest

from subsidyhub.ledger.accounts import predict_exhaustion
from subsidyhub.timeutil import MS_PER_HOUR

H = MS_PER_HOUR
M = 1_000_000


@pytest.mark.parametrize(
    ("owed", "remaining", "rate", "expected"),
    [
        (0, [(10 * M, None)], 10 * M, H),  # one hour of money at 10/h
        (5 * M, [(10 * M, None)], 10 * M, H // 2),  # half already owed
        (0, [(10 * M, None)], 0, None),  # nothing burns
        (
            0,
            [(10 * M, H // 2), (10 * M, None)],
            10 * M,
            H // 2 + H,
        ),  # first expires at 30 min with 5 left
        (0, [(10 * M, 2 * H), (10 * M, None)], 10 * M, 2 * H),  # first drained before it expires
        (0, [(10 * M, H // 4)], 10 * M, H // 4),  # expires before drained: stops at window end
        (20 * M, [(10 * M, None)], 10 * M, 0),  # already overdrawn
        (0, [(10 * M, None), (-6 * M, None)], 10 * M, 4 * H // 10),  # a correction is debt
        (0, [(-6 * M, None), (10 * M, 3 * H)], 10 * M, 4 * H // 10),  # whatever its window
    ],
)
def test_predict_exhaustion(owed, remaining, rate, expected):
    assert predict_exhaustion(0, owed, remaining, rate) == expected
