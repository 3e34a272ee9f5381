"""Shared paths and lookups for the image tests (the catalog and image-engine fixtures are in
tests/conftest.py, for tests/docker too)."""

from __future__ import annotations

from pathlib import Path

import docker.errors
import pytest

from subsidyhub.catalog import Catalog
from subsidyhub.dockerd import PrivateDockerd
from subsidyhub.imagebuild import INPUTS_LABEL

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"


def built_reference(engine: PrivateDockerd, catalog: Catalog, name: str) -> str:
    """The built image's reference, checked to be the catalog's; skipped when not built."""
    [image] = [i for i in catalog.images if i.name == name and i.status == "current"]
    ref = catalog.reference(image)
    with engine.client() as client:
        try:
            labels = client.images.get(ref).labels
        except docker.errors.ImageNotFound:
            pytest.skip(f"{ref} is not built here: `make images` builds it (`make test` does)")
    assert labels["io.subsidyhub.catalog-ref"] == image.ref
    assert labels[INPUTS_LABEL]
    return ref
