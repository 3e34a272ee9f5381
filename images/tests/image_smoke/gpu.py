"""GPU visible, and which one: through PyTorch when the image has it, else nvidia-smi."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess

from image_smoke import Result


def check_gpu() -> Result:
    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            major, minor = torch.cuda.get_device_capability(0)
            memory_gib = torch.cuda.get_device_properties(0).total_memory / 2**30
            return Result(
                "gpu",
                "pass",
                f"{len(names)} GPU(s): {', '.join(names)}; sm_{major}{minor}, {memory_gib:.0f} GiB; "
                f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
                f"cuDNN {torch.backends.cudnn.version()}",
                "cuda",
            )
        return Result(
            "gpu",
            "skip",
            f"no GPU: torch.cuda.is_available() is False (torch {torch.__version__}, "
            f"CUDA build {torch.version.cuda or 'none'})",
            "cpu",
        )
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return Result("gpu", "skip", "no GPU: no torch and no nvidia-smi (run with --gpus)", "cpu")
    listing = subprocess.run(
        [smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if listing.returncode != 0 or not listing.stdout.strip():
        return Result("gpu", "skip", f"no GPU: nvidia-smi failed: {listing.stderr.strip()}", "cpu")
    return Result("gpu", "pass", "; ".join(listing.stdout.strip().splitlines()), "cuda")
