"""The spawn form's figures and image lines, rendered from a service answer (pure)."""

import copy

from subsidyhub.hubplugin.form import image_labels, render
from subsidyhub.settings import parse_settings

from ..conftest import TEST_CONFIG

OFFERS = {
    "currency": "HKD",
    "projects": [
        {
            "slug": "demo",
            "name": "Demo",
            "subsidy_rate": "0.7",
            "available": "412.30",
            "profiles": [
                {
                    "slug": "gpu-1",
                    "display_name": "PyTorch · 1× H800",
                    "description": "",
                    "list_rate_per_hour": "46.40",
                    "subsidy_rate_per_hour": "32.48",
                    "copay_rate_per_hour": "13.92",
                    "hours_left": "12.6",
                    "time_left_seconds": 45360,
                    "time_left_reason": "balance",
                    "gpu_count": 1,
                    "gpu_type": "h800",
                    "allowed": True,
                },
                {
                    "slug": "cpu-small",
                    "display_name": "CPU · 2 cores · 4 GiB",
                    "description": "",
                    "list_rate_per_hour": "1.40",
                    "subsidy_rate_per_hour": "0.98",
                    "copay_rate_per_hour": "0.42",
                    "hours_left": None,
                    "time_left_seconds": 43200,
                    "time_left_reason": "session_cap",
                    "gpu_count": 0,
                    "gpu_type": None,
                    "allowed": False,
                    "message": "Profile cpu-small is not allowed in project demo; allowed: gpu-1.",
                },
            ],
        }
    ],
}


def test_the_catalog_names_each_profiles_image_on_the_spawn_page():
    config = copy.deepcopy(TEST_CONFIG)
    config["profiles"][1]["image"] = "pytorch:2.14-cuda13.0"
    labels = image_labels(parse_settings(config, "test"))
    assert list(labels) == ["gpu-1"]
    assert labels["gpu-1"].startswith("pytorch:2.14-cuda13.0: ")
    assert "(CUDA 13.0, Python 3.13)" in labels["gpu-1"]
    page = render("alice", OFFERS, labels)
    assert f"Image {labels['gpu-1']}" in page
    assert page.count("sh-image") - page.count(".sh-image") == 1  # only the profile with an image


def test_prices_hours_and_refusals_are_shown():
    page = render("alice", OFFERS)
    assert "HK$46.40/h" in page and "HK$32.48/h" in page and "HK$13.92/h" in page
    assert "12 h 36 m left · project balance" in page
    assert "12 h 0 m left · session cap" in page
    assert "Profile cpu-small is not allowed in project demo; allowed: gpu-1." in page
    assert 'value="cpu-small" disabled' in page
    assert 'value="gpu-1" checked' in page  # the first profile that can start


def test_a_profile_the_host_cannot_give_gpus_is_disabled_with_the_hosts_reason():
    def no_h800(count: int, gpu_type: str | None) -> tuple[str, str] | None:
        return ("no_gpus", f"This machine has no {gpu_type} GPUs.") if count else None

    page = render("alice", OFFERS, shortfall=no_h800)
    assert 'value="gpu-1" disabled' in page and "This machine has no h800 GPUs." in page
    assert 'data-sh-startable="no"' in page  # nothing can start: the Start button is off
