"""The in-image smoke tests run on this host's CPU and report "no GPU" plainly.

The PyTorch and ONNX checks run in the Python 3.11 venv that `make images-smoke-venv` makes
(CPU torch; see images/tests/host-requirements.txt); the JupyterLab check runs in the project
venv, which has JupyterLab and jupyterlab-subsidy installed (the extension needs Python 3.12).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.images.conftest import IMAGES, ROOT

pytestmark = pytest.mark.slow

SMOKE_PYTHON = Path(
    os.environ.get("SUBSIDYHUB_SMOKE_PYTHON", ROOT / ".venv" / "images-smoke" / "bin" / "python")
)


def run_smoke(python: Path | str, *args: str) -> tuple[int, list[dict[str, str]], str]:
    env = dict(os.environ, PYTHONPATH=str(IMAGES / "tests"), PYTHONWARNINGS="ignore")
    env.pop("SUBSIDYHUB_IMAGE", None)
    done = subprocess.run(
        [str(python), "-m", "image_smoke", "--json", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done.returncode, lines, done.stdout + done.stderr


@pytest.fixture(scope="module")
def smoke_python() -> Path:
    if not SMOKE_PYTHON.is_file():
        pytest.skip(
            f"no smoke venv at {SMOKE_PYTHON}: run `make images-smoke-venv` (make test does)"
        )
    return SMOKE_PYTHON


@pytest.fixture(scope="module")
def torch_results(smoke_python: Path) -> dict[str, dict[str, str]]:
    code, results, output = run_smoke(smoke_python, "--checks", "gpu,matmul,train,onnx")
    assert code == 0, output
    return {result["check"]: result for result in results}


def test_gpu_check_reports_no_gpu_on_the_host(torch_results: dict[str, dict[str, str]]) -> None:
    gpu = torch_results["gpu"]
    assert (gpu["status"], gpu["device"]) == ("skip", "cpu")
    assert gpu["detail"].startswith("no GPU: torch.cuda.is_available() is False")


@pytest.mark.parametrize("check", ["matmul", "train", "onnx"])
def test_checks_pass_on_the_cpu_and_say_so(
    torch_results: dict[str, dict[str, str]], check: str
) -> None:
    result = torch_results[check]
    assert (result["status"], result["device"]) == ("pass", "cpu")
    assert "CPU fallback (no GPU" in result["detail"]


def test_matmul_reports_throughput(torch_results: dict[str, dict[str, str]]) -> None:
    detail = torch_results["matmul"]["detail"]
    assert detail.startswith("bfloat16 256×256×3: ")
    assert float(detail.split(": ")[1].split(" TFLOP/s")[0]) > 0


def test_require_gpu_turns_the_cpu_fallback_into_a_failure(smoke_python: Path) -> None:
    code, results, _ = run_smoke(smoke_python, "--checks", "gpu", "--require-gpu")
    assert code == 1
    assert results[0]["status"] == "fail"
    assert results[0]["detail"].startswith("--require-gpu: no GPU")


def test_a_missing_package_fails_its_check(smoke_python: Path) -> None:
    # The smoke venv has no JupyterLab: the lab check must fail, not skip.
    code, results, _ = run_smoke(smoke_python, "--checks", "lab")
    assert code == 1
    assert results == [
        {"check": "lab", "status": "fail", "detail": results[0]["detail"], "device": "-"}
    ]
    assert "JupyterLab is not installed" in results[0]["detail"]


def test_lab_extension_is_enabled_in_the_project_venv() -> None:
    code, results, output = run_smoke(sys.executable, "--checks", "lab")
    assert code == 0, output
    assert results[0]["status"] == "pass"
    assert "jupyterlab-subsidy v" in results[0]["detail"]
