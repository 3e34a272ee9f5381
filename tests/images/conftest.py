"""Shared paths for the image tests: the repository's images/ folder and its catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from subsidyhub.catalog import Catalog, load_catalog

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(IMAGES / "catalog.yaml")
