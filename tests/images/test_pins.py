"""Locked requirements match the catalog, the human-edited files, and each other.

The catalog is what users are told is in an image; the lock is what is installed. These tests
keep them from drifting: every catalog package is pinned at that version in the image's lock,
every pin of a requirements.in is the lock's, a child image's lock keeps its parent's pins
(the child installs on top with --no-deps), and the CUDA and cuDNN of the PyTorch wheels agree
with the catalog's base.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from subsidyhub.catalog import Catalog
from tests.images.conftest import IMAGES

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)", re.M)
PARENT = {"pytorch": "base", "edge": "pytorch"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    return {normalise(n): v for n, v in PIN.findall(path.read_text(encoding="utf-8"))}


def built(catalog: Catalog) -> list[str]:
    return [image.build for image in catalog.images if image.build]


def test_pin_parser_reads_a_lock() -> None:
    text = pins(IMAGES / "pytorch" / "requirements.lock")
    assert text["torch"] and text["jupyterlab"]
    assert "via" not in text


def test_catalog_packages_are_pinned_in_the_lock(catalog: Catalog) -> None:
    for image in catalog.images:
        if image.build is None:
            continue
        locked = pins(IMAGES / image.build / "requirements.lock")
        for package, version in image.packages.items():
            assert locked.get(normalise(package)) == version, (
                f"{image.ref}: catalog says {package}=={version}, "
                f"images/{image.build}/requirements.lock has {locked.get(normalise(package))}"
            )


@pytest.mark.parametrize("folder", ["base", "pytorch", "edge"])
def test_every_pin_in_requirements_in_is_the_locked_one(folder: str) -> None:
    wanted = pins(IMAGES / folder / "requirements.in")
    locked = pins(IMAGES / folder / "requirements.lock")
    assert wanted
    for package, version in wanted.items():
        assert locked.get(package) == version, f"{folder}: {package}=={version} not in the lock"


@pytest.mark.parametrize(("child", "parent"), sorted(PARENT.items()))
def test_child_locks_keep_the_parent_pins(child: str, parent: str) -> None:
    child_pins = pins(IMAGES / child / "requirements.lock")
    parent_pins = pins(IMAGES / parent / "requirements.lock")
    changed = {p: (v, child_pins.get(p)) for p, v in parent_pins.items() if child_pins.get(p) != v}
    assert changed == {}


def test_torch_wheels_match_the_catalog_cuda_and_cudnn(catalog: Catalog) -> None:
    for image in catalog.images:
        if image.build is None:
            continue
        locked = pins(IMAGES / image.build / "requirements.lock")
        toolkit = locked.get("cuda-toolkit")
        if toolkit is None:
            continue  # no framework in this image
        assert toolkit.startswith(f"{image.cuda}."), (image.ref, toolkit)
        cudnn = next(v for p, v in locked.items() if p.startswith("nvidia-cudnn-cu"))
        assert cudnn.split(".")[0] == image.cudnn, (image.ref, cudnn)


def test_all_built_images_are_covered(catalog: Catalog) -> None:
    assert sorted(built(catalog)) == ["base", "edge", "pytorch"]
