"""In-image smoke tests: does a freshly built notebook image work on the node it will run on?

Run inside an image (``python -m image_smoke``) on a GPU node before an image goes into the
catalog as ``current``: it reports the GPU's name, a bf16/fp16 matmul's TFLOP/s, one small
training step, an ONNX export round trip (edge image) and whether the JupyterLab extension is
enabled. Every check falls back to the CPU and says "no GPU" plainly, so the same code runs in
CI on a host without a GPU; ``--require-gpu`` turns that fallback into a failure for node tests.

Only the standard library is imported at module level: each check imports what it tests, so a
missing package is reported as that check's failure rather than as an import error of the tool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["pass", "fail", "skip"]


@dataclass(frozen=True)
class Result:
    """One check's outcome, printed as one line and returned for tests."""

    check: str
    status: Status
    detail: str
    device: str = "-"

    def line(self) -> str:
        return f"{self.status.upper():4}  {self.check:<6} [{self.device}]  {self.detail}"


def torch_device(require_gpu: bool = False) -> tuple[str, str]:
    """``("cuda", name)`` when PyTorch sees a GPU, else ``("cpu", why there is none)``."""
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.cuda.get_device_name(0)
    cuda_build = torch.version.cuda or "none (CPU-only build)"
    return "cpu", f"no GPU: torch.cuda.is_available() is False; torch's CUDA: {cuda_build}"
