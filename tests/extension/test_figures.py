"""The pure parts of jupyterlab_subsidy, as tables: figures and where the service is.

The status bar's TypeScript (``src/format.ts``) formats the same way; the browser test checks
that the status bar shows exactly :func:`status_line` of the service's answer.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from jupyterlab_subsidy.figures import (
    choose_project,
    currency_of,
    duration,
    estimate_cost,
    money,
    severity,
    status_line,
)
from jupyterlab_subsidy.location import NotConfigured, locate_service, service_url_from
from jupyterlab_subsidy.widget import render_balance
from subsidyhub import limits


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, None),
        (0, "< 1 m"),
        (59, "< 1 m"),
        (60, "1 m"),
        (3_599, "59 m"),
        (3_600, "1 h 0 m"),
        (41_040, "11 h 24 m"),
        (47 * 3_600 + 59 * 60, "47 h 59 m"),
        (48 * 3_600, "2 d 0 h"),
        (510 * 3_600 + 12 * 60, "21 d 6 h"),
        (-5, "< 1 m"),
    ],
)
def test_duration(seconds: int | None, shown: str | None) -> None:
    assert duration(seconds) == shown


HKD = {"code": "HKD", "symbol": "HK$", "minor_units": 2}


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("412.304999", "HK$412.30"),
        ("-3.2", "\u2212HK$3.20"),
        (Decimal("97.44"), "HK$97.44"),
    ],
)
def test_money(amount: str | Decimal, shown: str) -> None:
    """More cases, shared with the hub and the TypeScript: tests/unit/test_display_cases.py."""
    assert money(amount, HKD) == shown


def test_the_currency_is_shown_as_get_me_declares_it() -> None:
    assert currency_of({"currency": "HKD", "currency_display": HKD}) == HKD
    # A service too old to declare it: the code, and two places.
    assert currency_of({"currency": "CHF"}) == {"code": "CHF", "symbol": "CHF ", "minor_units": 2}


def project(slug: str = "demo", **changes: Any) -> dict[str, Any]:
    return {
        "slug": slug,
        "balance_display": "HK$412.30",
        "time_left_seconds": 41_040,
        "warnings": [],
    } | changes


@pytest.mark.parametrize(
    ("shown", "line"),
    [
        (project(), "demo · HK$412.30 · 11 h 24 m left"),
        (project(time_left_seconds=None), "demo · HK$412.30"),
        (
            {
                "slug": "comp1",
                "student": True,
                "quota": {"gpu_hours_per_week": "4"},
                "usage": {"gpu_hours_per_week": "1.50"},
            },
            "comp1 · 1.50 of 4 GPU-h this week",
        ),
        (
            {
                "slug": "comp1",
                "student": True,
                "quota": {"gpu_hours_per_week": None},
                "usage": {"gpu_hours_per_week": "0.00"},
            },
            "comp1 · no weekly GPU-hour limit",
        ),
    ],
)
def test_status_line(shown: dict[str, Any], line: str) -> None:
    assert status_line(shown) == line


@pytest.mark.parametrize(
    ("levels", "expected"),
    [([], "ok"), (["warning"], "warning"), (["warning", "critical"], "critical")],
)
def test_severity_is_the_worst_warning(levels: list[str], expected: str) -> None:
    warnings = [{"code": "x", "level": level, "message": "m"} for level in levels]
    assert severity(project(warnings=warnings)) == expected


def test_the_servers_own_project_is_chosen_when_listed() -> None:
    projects = [project("alpha"), project("beta")]
    assert choose_project(projects, "beta") == projects[1]
    assert choose_project(projects, "gone") == projects[0]
    assert choose_project(projects, None) == projects[0]
    assert choose_project([], "beta") is None


OFFERS = {
    "user": "alice",
    "currency": "HKD",
    "projects": [
        {
            "slug": "alpha",
            "available": "100.00",
            "profiles": [
                {
                    "slug": "gpu-1",
                    "list_rate_per_hour": "46.40",
                    "subsidy_rate_per_hour": "32.48",
                    "allowed": True,
                },
                {
                    "slug": "gpu-2",
                    "list_rate_per_hour": "86.00",
                    "subsidy_rate_per_hour": "60.20",
                    "allowed": False,
                    "message": "Profile gpu-2 is not allowed in project alpha; allowed: gpu-1.",
                },
            ],
        }
    ],
}


@pytest.mark.parametrize(
    ("profile", "hours", "figures", "covered"),
    [
        ("gpu-1", 3, ("139.20", "97.44", "41.76"), True),
        ("gpu-1", "0.5", ("23.20", "16.24", "6.96"), True),
        ("gpu-1", 1.25, ("58.00", "40.60", "17.40"), True),  # a float of hours goes via repr
        ("gpu-1", "0.333333", ("15.466651", "10.826656", "4.639995"), True),
        ("gpu-1", 4, ("185.60", "129.92", "55.68"), False),
        ("gpu-2", 1, ("86.00", "60.20", "25.80"), False),
    ],
)
def test_cost_estimates_are_exact_decimals(
    profile: str, hours: Any, figures: tuple[str, str, str], covered: bool
) -> None:
    estimate = estimate_cost(OFFERS, profile, hours, None, HKD)
    assert (estimate.list, estimate.subsidy, estimate.copay) == tuple(map(Decimal, figures))
    assert estimate.list == estimate.subsidy + estimate.copay
    assert estimate.covered is covered


def test_a_refused_profile_says_why() -> None:
    estimate = estimate_cost(OFFERS, "gpu-2", 1, "alpha", HKD)
    assert estimate.verdict == (
        "not allowed: Profile gpu-2 is not allowed in project alpha; allowed: gpu-1."
    )
    assert "tex2jax_ignore" in estimate._repr_html_()


@pytest.mark.parametrize(
    ("profile", "hours", "project_slug", "error"),
    [
        ("tpu", 1, None, "No such profile: tpu. Options include: gpu-1, gpu-2"),
        ("gpu-1", 1, "beta", "No such project: beta. Options include: alpha"),
        ("gpu-1", "lots", None, "hours must be a number, not 'lots'"),
        ("gpu-1", -1, None, "hours must be 0 or more, not -1"),
    ],
)
def test_cost_errors_name_the_choices(
    profile: str, hours: Any, project_slug: str | None, error: str
) -> None:
    with pytest.raises(ValueError) as raised:
        estimate_cost(OFFERS, profile, hours, project_slug, HKD)
    assert str(raised.value) == error


@pytest.mark.parametrize(
    ("environ", "url"),
    [
        (
            {"SUBSIDYHUB_SERVICE_URL": "http://127.0.0.1:9/services/subsidy"},
            "http://127.0.0.1:9/services/subsidy/",
        ),
        (
            {"JUPYTERHUB_PUBLIC_HUB_URL": "https://hub.example.org/jh/hub/"},
            "https://hub.example.org/jh/services/subsidy/",
        ),
        (
            {
                "SUBSIDYHUB_SERVICE_URL": "http://svc/services/subsidy/",
                "JUPYTERHUB_PUBLIC_HUB_URL": "https://hub.example.org/hub/",
            },
            "http://svc/services/subsidy/",
        ),
        ({"JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api"}, None),
    ],
)
def test_where_the_service_is(environ: dict[str, str], url: str | None) -> None:
    assert service_url_from(environ) == url


def test_location_needs_a_url_and_a_token() -> None:
    with pytest.raises(NotConfigured, match="SUBSIDYHUB_SERVICE_URL"):
        locate_service({"JUPYTERHUB_API_TOKEN": "t"})
    with pytest.raises(NotConfigured, match="JUPYTERHUB_API_TOKEN is not set"):
        locate_service({"SUBSIDYHUB_SERVICE_URL": "http://svc/"})
    found = locate_service(
        {
            "SUBSIDYHUB_SERVICE_URL": "http://svc/services/subsidy/",
            "JUPYTERHUB_API_TOKEN": "t",
            "JUPYTERHUB_USER": "alice",
            "SUBSIDYHUB_PROJECT": "alpha",
        },
        url="http://configured/services/subsidy",
    )
    assert found.api("me") == "http://configured/services/subsidy/api/v1/me"
    assert (found.user, found.project, found.profile) == ("alice", "alpha", None)


def test_a_course_student_sees_their_allowance_not_the_course_money() -> None:
    """GET me of a course's student has their limits and use, and none of the course's money."""
    student = {
        "slug": "comp1",
        "student": True,
        "currency": "HKD",
        "warnings": [],
        "quota": {
            "project_max_gpus": None,
            "gpu_hours_per_week": "4",
            "max_session_hours": "2",
            "profiles": ["cpu-small", "gpu-1"],
        },
        "usage": {"gpu_hours_per_week": "1.50"},
    }
    declared = [limits.describe(limit) for limit in limits.LIMITS]
    page = render_balance(
        {"limits": declared, "projects": [student], "sessions": [], "at": None}, None
    )
    assert "comp1 · 1.50 of 4 GPU-h this week" in page
    assert "2 hours" in page and "Longest server" in page
    assert "cpu-small, gpu-1" in page
    assert "Allocated" not in page and "HK$" not in page
    offers = {"projects": [OFFERS["projects"][0] | {"slug": "comp1", "available": None}]}
    estimate = estimate_cost(offers, "gpu-1", 10, None, HKD)
    assert (
        estimate.covered and estimate.verdict == "paid by your course within your weekly GPU-hours"
    )
    assert "Available subsidy" not in estimate._repr_html_()
