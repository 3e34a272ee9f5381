"""``python -m image_smoke``: run the checks an image should pass and exit non-zero if one fails.

Which checks run: ``--checks`` if given, else those of ``--image`` (default: the image's
``SUBSIDYHUB_IMAGE`` environment variable, set by each Dockerfile), else all. A check whose
packages are missing fails. On a node that should have a GPU pass ``--require-gpu``: then "no
GPU" is a failure instead of a CPU fallback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import asdict

from image_smoke import Result

CHECKS = ("gpu", "matmul", "train", "onnx", "lab")
IMAGE_CHECKS: dict[str, tuple[str, ...]] = {
    "base": ("lab", "gpu"),
    "pytorch": ("lab", "gpu", "matmul", "train"),
    "edge": ("lab", "gpu", "matmul", "train", "onnx"),
}


def _runner(name: str) -> Callable[[], Result]:
    # Imported per check so one missing package fails one check, not the tool.
    if name == "gpu":
        from image_smoke.gpu import check_gpu

        return check_gpu
    if name == "matmul":
        from image_smoke.matmul import check_matmul

        return check_matmul
    if name == "train":
        from image_smoke.train import check_train

        return check_train
    if name == "onnx":
        from image_smoke.onnx_roundtrip import check_onnx

        return check_onnx
    from image_smoke.lab import check_lab

    return check_lab


def run_check(name: str) -> Result:
    try:
        return _runner(name)()
    except ImportError as error:
        return Result(name, "fail", f"missing package: {error.name or error}")
    except Exception as error:  # a smoke test reports every failure as a result
        last = traceback.format_exception_only(error)[-1].strip()
        return Result(name, "fail", f"raised {last}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m image_smoke", description=__doc__)
    parser.add_argument("--image", choices=sorted(IMAGE_CHECKS), default=None)
    parser.add_argument("--checks", help=f"comma-separated subset of {', '.join(CHECKS)}")
    parser.add_argument("--require-gpu", action="store_true", help="no GPU is a failure")
    parser.add_argument("--json", action="store_true", help="print results as JSON lines")
    args = parser.parse_args(argv)
    image = args.image or os.environ.get("SUBSIDYHUB_IMAGE")
    if args.checks:
        names = tuple(name.strip() for name in args.checks.split(",") if name.strip())
        unknown = [name for name in names if name not in CHECKS]
        if unknown:
            parser.error(f"unknown check(s) {', '.join(unknown)}; choose from {', '.join(CHECKS)}")
    else:
        names = IMAGE_CHECKS.get(image or "", CHECKS)
    results = [run_check(name) for name in names]
    if args.require_gpu:
        results = [
            Result(r.check, "fail", f"--require-gpu: {r.detail}", r.device)
            if r.device == "cpu" or (r.check == "gpu" and r.status != "pass")
            else r
            for r in results
        ]
    for result in results:
        print(json.dumps(asdict(result)) if args.json else result.line(), flush=True)
    failed = [r.check for r in results if r.status == "fail"]
    if not args.json:
        print(
            f"{len(results) - len(failed)}/{len(results)} checks passed"
            + (f"; failed: {', '.join(failed)}" if failed else "")
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
