"""The image catalog validates, drives profile validation, and agrees with docker-bake.hcl."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from subsidyhub.catalog import (
    SOURCE_CATALOG,
    Catalog,
    CatalogError,
    default_catalog_path,
    parse_catalog,
)
from subsidyhub.settings import DEFAULT_CONFIG, ConfigError, parse_settings
from tests.images.conftest import IMAGES, ROOT

RAW = yaml.safe_load((IMAGES / "catalog.yaml").read_text(encoding="utf-8"))


def test_catalog_validates_and_has_each_built_image(catalog: Catalog) -> None:
    assert {image.name for image in catalog.images} >= {"base", "pytorch", "edge"}
    for image in catalog.images:
        if image.build is not None:
            assert (IMAGES / image.build / "Dockerfile").is_file(), image.ref
            assert (IMAGES / image.build / "requirements.in").is_file(), image.ref
            assert (IMAGES / image.build / "requirements.lock").is_file(), image.ref
    assert catalog.current_refs()


def test_source_checkout_reads_the_repository_catalog() -> None:
    assert SOURCE_CATALOG == IMAGES / "catalog.yaml"
    assert default_catalog_path().read_bytes() == (IMAGES / "catalog.yaml").read_bytes()


def test_wheel_ships_the_catalog() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"images/catalog.yaml" = "subsidyhub/images_catalog.yaml"' in pyproject


def _with(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(RAW)
    target: Any = data
    parts = [int(p) if p.isdigit() else p for p in path.split(".")]
    for part in parts[:-1]:
        target = target[part]
    if value is _DELETE:
        del target[parts[-1]]
    else:
        target[parts[-1]] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "key", "message"),
    [
        ("images.0.status", "old", "images[0].status", "'current', 'deprecated' or 'retired'"),
        ("images.0.python", 3.1, "images[0].python", "write versions as strings"),
        ("images.0.colour", "red", "images[0].colour", "unknown key"),
        ("images.0.gpu_types", [], "images[0].gpu_types", "at least 1"),
        ("images.0.description", _DELETE, "images[0].description", "Field required"),
        ("images.1.name", "base", "images[1]", "appears twice"),
        (
            "images.0.replaced_by",
            "pytorch:2.14-cuda13.0",
            "images[0].replaced_by",
            "only a deprecated",
        ),
        ("images.0.status", "retired", "images[0].replaced_by", "must say what replaced it"),
        ("registry", "Not A Registry", "registry", "should match pattern"),
    ],
)
def test_catalog_errors_name_the_key(path: str, value: Any, key: str, message: str) -> None:
    if path == "images.1.name":
        data = _with(path, value)
        data["images"][1]["tag"] = data["images"][0]["tag"]
    else:
        data = _with(path, value)
    with pytest.raises(CatalogError) as caught:
        parse_catalog(data, "catalog.yaml")
    assert caught.value.key == key
    assert message in caught.value.message


def test_replacement_must_be_current() -> None:
    data = _with("images.1.status", "deprecated")
    data["images"][1]["replaced_by"] = "base:nope"
    with pytest.raises(
        CatalogError, match=r"images\[1\]\.replaced_by: 'base:nope' is not a current"
    ):
        parse_catalog(data, "catalog.yaml")


def _lifecycle_catalog(tmp_path: Path) -> Path:
    """The shipped catalog plus a deprecated and a retired PyTorch image."""
    data = copy.deepcopy(RAW)
    old = copy.deepcopy(data["images"][1])
    old.update(tag="2.9-cuda12.8", status="deprecated", replaced_by="pytorch:2.14-cuda13.0")
    old.update(build=None, gpu_types=["v100", "a100", "h800"])
    older = dict(old, tag="2.4-cuda12.1", status="retired")
    data["images"] += [old, older]
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _config(image: str, gpu: str | None = "h800", **extra: Any) -> dict[str, Any]:
    profile: dict[str, Any] = {"slug": "p", "display_name": "P", "cpu": 1, "memory_gib": 1}
    profile["image"] = image
    if gpu:
        profile["gpus"] = {"type": gpu}
    cpu_profile = {"slug": "cpu", "display_name": "CPU", "cpu": 1, "memory_gib": 1}
    prices = {"gpu": {"h800": 36, "a100": 24, "v100": 8}}
    return {"prices": prices, "profiles": [cpu_profile, profile], **extra}


@pytest.mark.parametrize(
    ("image", "gpu", "error"),
    [
        ("pytorch:2.14-cuda13.0", "h800", None),
        ("edge:2.14-cuda13.0", None, None),
        ("pytorch:2.9-cuda12.8", "v100", None),  # deprecated still starts
        ("pytorch:9.9", "h800", "'pytorch:9.9' is not in images/catalog.yaml; current images: "),
        ("pytorch:2.4-cuda12.1", "h800", "is retired; use 'pytorch:2.14-cuda13.0'"),
        (
            "pytorch:2.14-cuda13.0",
            "v100",
            "does not support GPU type 'v100'; it supports a100, h800",
        ),
    ],
)
def test_profile_images_are_checked_against_the_catalog(
    tmp_path: Path, image: str, gpu: str | None, error: str | None
) -> None:
    catalog = _lifecycle_catalog(tmp_path)
    config = tmp_path / "site.yaml"
    config.write_text("", encoding="utf-8")
    data = _config(image, gpu, image_catalog="catalog.yaml")  # relative to site.yaml
    if error is None:
        settings = parse_settings(data, str(config))
        assert settings.profile_image(settings.profiles[1]) == f"ghcr.io/subsidyhub/{image}"
        assert settings.profile_image(settings.profiles[0]) is None
        assert catalog.is_file()
    else:
        with pytest.raises(ConfigError) as caught:
            parse_settings(data, str(config))
        assert caught.value.key == "profiles[1].image"
        assert error in caught.value.message


def test_default_catalog_is_used_when_none_is_configured() -> None:
    with pytest.raises(ConfigError, match=r"profiles\[1\]\.image: 'pytorch:9\.9' is not in"):
        parse_settings(_config("pytorch:9.9"), "site.yaml")
    settings = parse_settings(_config("edge:2.14-cuda13.0"), "site.yaml")
    assert settings.profile_image(settings.profiles[1]) == "ghcr.io/subsidyhub/edge:2.14-cuda13.0"


def test_a_broken_catalog_is_a_config_error_on_image_catalog(tmp_path: Path) -> None:
    (tmp_path / "catalog.yaml").write_text("registry: ghcr.io/x\nimages: []\n", encoding="utf-8")
    data = _config("pytorch:2.14-cuda13.0", image_catalog=str(tmp_path / "catalog.yaml"))
    with pytest.raises(ConfigError) as caught:
        parse_settings(data, "site.yaml")
    assert caught.value.key == "image_catalog"
    assert "images" in caught.value.message


def _example_configs() -> list[Path]:
    """The embedded default and every example subsidyhub config in the repository."""
    found = [DEFAULT_CONFIG]
    for folder in ("docs", "examples", "helm", "deploy"):
        for path in sorted((ROOT / folder).rglob("*.y*ml")) if (ROOT / folder).is_dir() else []:
            if "node_modules" in path.parts or path in found:
                continue
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except yaml.YAMLError:
                continue
            if isinstance(data, dict) and isinstance(data.get("profiles"), list):
                found.append(path)
    return found


@pytest.mark.parametrize("config", _example_configs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_profile_image_in_shipped_configs_is_in_the_catalog(
    config: Path, catalog: Catalog
) -> None:
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    for index, profile in enumerate(data.get("profiles") or []):
        if isinstance(profile, dict) and profile.get("image"):
            gpu = (profile.get("gpus") or {}).get("type")
            try:
                catalog.check_usable(profile["image"], gpu)
            except ValueError as error:
                pytest.fail(f"{config.relative_to(ROOT)}: profiles[{index}].image: {error}")


def test_parents_are_built_here_and_built_first(catalog: Catalog) -> None:
    from subsidyhub.imagebuild import selected

    assert [i.name for i in selected(catalog, ["edge"])] == ["base", "pytorch", "edge"]
    assert [i.name for i in selected(catalog, [])] == ["base", "pytorch", "edge"]
    data = copy.deepcopy(RAW)
    data["images"][1]["parent"] = "base:2026.11-cuda13.0"  # listed, but not built here
    with pytest.raises(CatalogError, match=r"images\[1\]\.parent: 'base:2026.11-cuda13.0' is not"):
        parse_catalog(data, "catalog.yaml")
