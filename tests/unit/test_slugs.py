"""The slug rules: what they accept, and refusals in subsidyhub.yaml that say how to write one."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from subsidyhub.settings import DEFAULT_CONFIG, ConfigError, parse_settings
from subsidyhub.slugs import PROJECT_SLUG, SLUG, SlugRule

DEFAULT: dict[str, Any] = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("text", "slug", "project_slug"),
    [
        ("a", True, True),
        ("climate-ml", True, True),
        ("0" * 63, True, True),
        ("0" * 64, False, False),
        ("a100.80gb_sxm", True, False),  # dots and underscores: profiles and GPU types only
        ("-lab", False, False),
        (".lab", False, False),
        ("Gamma", False, False),
        ("gamma ray", False, False),
        ("gamma\n", False, False),
        ("", False, False),
    ],
)
def test_what_each_rule_accepts(text: str, slug: bool, project_slug: bool) -> None:
    assert SLUG.matches(text) is slug
    assert PROJECT_SLUG.matches(text) is project_slug


@pytest.mark.parametrize("rule", [SLUG, PROJECT_SLUG])
def test_the_words_say_what_the_pattern_checks(rule: SlugRule) -> None:
    assert rule.description.startswith("1-63 lowercase letters, digits")
    assert ("dots, underscores" in rule.description) is rule.matches("a.b_c")


def config_error(change: dict[str, Any]) -> ConfigError:
    data = copy.deepcopy(DEFAULT) | change
    with pytest.raises(ConfigError) as refused:
        parse_settings(data, "subsidyhub.yaml")
    return refused.value


def test_a_bad_profile_slug_is_refused_with_the_rule() -> None:
    profiles = copy.deepcopy(DEFAULT["profiles"])
    profiles[0]["slug"] = "CPU Small"
    error = config_error({"profiles": profiles})
    assert error.key == "profiles[0].slug"
    assert error.message == f"not a valid slug; use {SLUG.description} (got 'CPU Small')"


def test_a_bad_sso_project_is_refused_with_the_project_rule() -> None:
    groups = [{"group": "physics", "project": "physics_lab"}]
    error = config_error({"sso": {"groups": groups}})
    assert error.key == "sso.groups[0].project"
    assert PROJECT_SLUG.description in error.message
