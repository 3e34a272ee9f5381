"""The config model: defaults load, and every error names the file, the key and what is allowed."""

from pathlib import Path

import pytest

from subsidyhub.settings import ConfigError, load_settings, parse_settings


def test_embedded_default_loads():
    settings = load_settings()
    assert settings.currency == "HKD"
    assert settings.subsidy_rate == 7000
    assert settings.prices.gpu["h800"] == 36_000_000
    assert settings.profile("gpu-1").gpu_count == 1


def test_unknown_profile_lists_options():
    with pytest.raises(
        KeyError, match=r"No such profile: nope\. Options include: cpu-small, gpu-1"
    ):
        load_settings().profile("nope")


@pytest.mark.parametrize(
    ("data", "key", "fragment"),
    [
        ({"currency": "hk"}, "currency", "should match pattern"),
        ({"subsidy_rate": 1.2}, "subsidy_rate", "not a fraction from 0 to 1"),
        ({"subsidy_rate": 0.95}, "subsidy_rate", "exceeds the scheme's 90% cap"),
        ({"prices": {"gpu": {"h800": "cheap"}}}, "prices.gpu.h800", "is not a plain decimal"),
        ({"prices": {"cpu_core": -1}}, "prices.cpu_core", "negative"),
        (
            {"metering": {"interval": 5}},
            "metering.interval",
            "unknown key; allowed here: interval_seconds",
        ),
        ({"metering": {"min_start_minutes": 0}}, "metering.min_start_minutes", "greater than 0"),
        (
            {
                "prices": {"gpu": {"a100": 1}},
                "profiles": [
                    {
                        "slug": "g",
                        "display_name": "G",
                        "cpu": 1,
                        "memory_gib": 1,
                        "gpus": {"type": "h800"},
                    }
                ],
            },
            "profiles[0].gpus.type",
            "'h800' has no price in prices.gpu; allowed: a100",
        ),
        (
            {"profiles": [{"slug": "a", "display_name": "A", "cpu": 0, "memory_gib": 1}]},
            "profiles[0].cpu",
            "greater than 0",
        ),
        ({"unadmitted_servers": "kill"}, "unadmitted_servers", "'stop', 'admit' or 'ignore'"),
        ({"gpu_capacity": {"h800": -1}}, "gpu_capacity.h800", "greater than or equal to 0"),
        ({"gpu_capacity": {"h800": 2.5}}, "gpu_capacity.h800", "valid integer"),
        (
            {"prices": {"gpu": {"a100": 1, "h800": 2}}, "gpu_capacity": {"h900": 4}},
            "gpu_capacity",
            "'h900' has no price in prices.gpu; allowed: a100, h800",
        ),
    ],
)
def test_errors_name_key(data, key, fragment):
    with pytest.raises(ConfigError) as caught:
        parse_settings(data, "site.yaml")
    assert caught.value.source == "site.yaml"
    assert caught.value.key == key
    assert fragment in caught.value.message
    assert str(caught.value).startswith(f"site.yaml: {key}: ")


def test_file_errors_name_the_file(tmp_path: Path):
    bad = tmp_path / "subsidyhub.yaml"
    bad.write_text("currency: [unclosed\n")
    with pytest.raises(ConfigError, match=r"subsidyhub.yaml: line \d+: not valid YAML"):
        load_settings(bad)
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_settings(tmp_path / "missing.yaml")


def test_config_env(tmp_path: Path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text("currency: USD\n")
    monkeypatch.setenv("SUBSIDYHUB_CONFIG", str(path))
    assert load_settings().currency == "USD"
