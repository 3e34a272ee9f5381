"""Quotas and limits as declared once: every given form parsed, bounded and shown one way."""

from __future__ import annotations

import pytest

from subsidyhub import limits
from subsidyhub.errors import InvalidInput
from subsidyhub.settings import parse_settings

from ..conftest import TEST_CONFIG

HOUR = 3_600_000
SETTINGS = parse_settings(TEST_CONFIG, "test")


@pytest.mark.parametrize(
    ("name", "given", "stored"),
    [
        ("project_max_gpus", 4, 4),
        ("project_max_gpus", "4", 4),
        ("project_max_gpus", " 0 ", 0),
        ("project_max_gpus", "none", None),
        ("project_max_gpus", "None", None),
        ("project_max_gpus", None, None),
        ("member_max_gpus", 100_000, 100_000),
        ("gpu_hours_per_week", "40", 40 * HOUR),
        ("gpu_hours_per_week", 0.5, HOUR // 2),
        ("gpu_hours_per_week", "0.0001", 360),
        ("gpu_hours_per_week", 0, 0),
        ("max_session_hours", "12.5", 12 * HOUR + HOUR // 2),
        ("profiles", ["gpu-1", "cpu-small", "gpu-1"], ["cpu-small", "gpu-1"]),
        ("profiles", "cpu-small, gpu-1", ["cpu-small", "gpu-1"]),
        ("gpu_types", "", []),
        ("gpu_types", [], []),
    ],
)
def test_given_values_become_stored_ones(name, given, stored):
    assert limits.get(name).parse(given, SETTINGS) == stored


@pytest.mark.parametrize(
    ("name", "given", "fragment"),
    [
        ("project_max_gpus", -1, "project_max_gpus -1 is out of range; give 0 to 100000 GPUs"),
        ("project_max_gpus", 10**30, "is out of range"),
        ("project_max_gpus", "1,000", "'1,000' is not a whole number of GPUs"),
        ("project_max_gpus", "１２３", "'１２３' is not a whole number"),
        ("project_max_gpus", "١٢٣", "is not a whole number"),
        ("project_max_gpus", 2.5, "2.5 is not a whole number"),
        ("project_max_gpus", True, "True is not a number"),
        ("project_max_gpus", {"a": 1}, "is not a number"),
        ("gpu_hours_per_week", 1e30, "1e+30 is not a number of hours"),
        ("gpu_hours_per_week", 1.43e308, "is not a number of hours"),
        ("gpu_hours_per_week", "-3", "'-3' is not a number of hours"),
        ("gpu_hours_per_week", "1.00001", "at most 4 decimals"),
        ("gpu_hours_per_week", "NaN", "is not a number of hours"),
        ("gpu_hours_per_week", "16800001", "out of range; give 0 to 16800000 hours"),
        ("max_session_hours", 0, "out of range; give more than 0 to 8784 hours"),
        ("profiles", ["tpu"], "unknown profiles tpu; profiles include: cpu-small, gpu-1, gpu-2"),
        ("profiles", ["Bad Name"], "is not a name"),
        ("profiles", [1], "is not a list of names"),
        ("gpu_types", ["x"] * 1001, "lists 1001 names; give at most 1000 names"),
    ],
)
def test_bad_values_name_the_limit_the_value_and_the_range(name, given, fragment):
    with pytest.raises(InvalidInput) as refused:
        limits.get(name).parse(given, SETTINGS)
    assert fragment in refused.value.message
    assert len(refused.value.message) < 300  # a huge value is cut short, never echoed whole


def test_shown_values_are_what_people_read():
    stored = {"gpu_hours_per_week": 40 * HOUR, "max_session_hours": HOUR // 2, "profiles": ["a"]}
    assert limits.show_all(stored) == {
        "project_max_gpus": None,
        "member_max_gpus": None,
        "gpu_hours_per_week": "40",
        "max_session_hours": "0.5",
        "profiles": ["a"],
        "gpu_types": None,
        "reservable_gpus": None,
        "idle_gpu_hours": None,
    }


def test_a_member_overrides_only_member_level_limits():
    project = {"project_max_gpus": 8, "member_max_gpus": 2, "gpu_hours_per_week": 10 * HOUR}
    member = {"member_max_gpus": 4}
    assert limits.effective(project, member) == project | {"member_max_gpus": 4}
    assert limits.effective(project, None) == project
    with pytest.raises(InvalidInput, match="project_max_gpus is a limit of the whole project"):
        limits.parse_changes({"project_max_gpus": 1}, None, member=True)


def test_none_lifts_a_limit_and_other_limits_stay():
    stored = {"project_max_gpus": 8, "profiles": ["a"]}
    assert limits.apply(stored, {"project_max_gpus": None}) == {"profiles": ["a"]}
    assert stored == {"project_max_gpus": 8, "profiles": ["a"]}  # a new dict


def test_use_and_what_is_left():
    in_force = {"gpu_hours_per_week": 4 * HOUR, "member_max_gpus": 2}
    measured = {"member_gpus": 1, "member_gpu_ms_week": 90 * 60_000, "project_gpus": 3}
    assert limits.show_usage(measured) == {
        "project_max_gpus": 3,
        "member_max_gpus": 1,
        "gpu_hours_per_week": "1.50",
    }
    assert limits.show_left(in_force, measured) == {
        "member_max_gpus": 1,
        "gpu_hours_per_week": "2.50",
    }
    # Rounded down: a third of an hour left is 0.33, never 0.34.
    assert limits.show_left(in_force, {"member_gpu_ms_week": 4 * HOUR - HOUR // 3}) == {
        "gpu_hours_per_week": "0.33"
    }


def test_every_limit_declares_what_the_tools_need():
    for limit in limits.LIMITS:
        assert limit.help.endswith(".") and limit.label and limit.flag.startswith("--")
        described = limits.describe(limit)
        assert described["name"] == limit.name and described["maximum"] == limit.maximum
    assert [limit.name for limit in limits.MEMBER_LIMITS] == [
        "member_max_gpus",
        "gpu_hours_per_week",
        "max_session_hours",
    ]
