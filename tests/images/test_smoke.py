"""The in-image smoke tool's JupyterLab check passes in the project's own venv.

The other checks (PyTorch, ONNX, the GPU branch) run inside the built images
(tests/images/test_built_images.py); this one needs no image: the project venv has JupyterLab
and jupyterlab-subsidy installed, as every notebook image does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.images.conftest import IMAGES


def test_lab_extension_is_enabled_in_the_project_venv() -> None:
    env = dict(os.environ, PYTHONPATH=str(IMAGES / "tests"), PYTHONWARNINGS="ignore")
    env.pop("SUBSIDYHUB_IMAGE", None)
    done = subprocess.run(
        [sys.executable, "-m", "image_smoke", "--json", "--checks", "lab"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [result] = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert result["status"] == "pass"
    assert "jupyterlab-subsidy v" in result["detail"]
