"""``subsidyhub kubernetes prepuller-values``: z2jh pre-puller values from the config in force."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from subsidyhub.cli import app
from tests.k8s.hubpod import K8S_CONFIG

from .conftest import CLI_ENV


def run(tmp_path: Path, config: dict) -> tuple[int, str, str]:
    path = tmp_path / "subsidyhub.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = CliRunner(env=CLI_ENV).invoke(
        app, ["kubernetes", "prepuller-values", "--config", str(path)]
    )
    return result.exit_code, result.stdout, result.stderr


def test_prints_the_profiles_images_and_gpu_tolerations(tmp_path: Path) -> None:
    code, out, err = run(tmp_path, K8S_CONFIG)
    assert (code, err) == (0, "")
    values = yaml.safe_load(out)["prePuller"]
    assert values["extraImages"]["pytorch-2-14-cuda13-0"] == {
        "name": "ghcr.io/subsidyhub/pytorch",
        "tag": "2.14-cuda13.0",
    }
    assert len(values["extraImages"]) == 3
    assert values["extraTolerations"][0]["key"] == "nvidia.com/gpu"


def test_a_profile_without_a_catalog_image_is_one_error_line(tmp_path: Path) -> None:
    profiles = [{"slug": "a", "display_name": "A", "cpu": 1, "memory_gib": 1}]
    code, out, err = run(tmp_path, {"backend": "kubernetes", "profiles": profiles})
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert "profiles[0].image: backend kubernetes needs a catalog image" in err
