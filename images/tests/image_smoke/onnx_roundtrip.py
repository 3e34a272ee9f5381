"""ONNX export round trip, the edge image's reason to exist: PyTorch → ONNX → ONNX Runtime → INT8.

Exports a small model with ``torch.onnx.export`` (the dynamo exporter, via onnxscript), checks
the graph with ``onnx.checker``, runs it in ONNX Runtime (CUDA provider when the GPU is there)
and compares with PyTorch, then quantises it with ``onnxruntime.quantization.quantize_dynamic``
and runs the INT8 model: the steps a researcher takes to ship a model to an edge device.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from image_smoke import Result, torch_device


def check_onnx() -> Result:
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from torch import nn

    device, about = torch_device()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).eval()
    example = torch.randn(4, 64)
    expected = model(example).detach().numpy()
    available = ort.get_available_providers()
    providers = ["CPUExecutionProvider"]
    if device == "cuda" and "CUDAExecutionProvider" in available:
        providers.insert(0, "CUDAExecutionProvider")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        fp32_path, int8_path = Path(folder, "model.onnx"), Path(folder, "model.int8.onnx")
        torch.onnx.export(
            model,
            (example,),
            str(fp32_path),
            input_names=["x"],
            output_names=["y"],
            dynamo=True,
            external_data=False,
            verbose=False,
        )
        exported = onnx.load(str(fp32_path))
        onnx.checker.check_model(exported, full_check=True)
        # The dynamo exporter records intermediate shapes (value_info) that ONNX Runtime's
        # quantiser re-infers and rejects; they are optional, so deploy without them.
        del exported.graph.value_info[:]
        onnx.save(exported, str(fp32_path))
        session = ort.InferenceSession(str(fp32_path), providers=providers)
        (got,) = session.run(None, {"x": example.numpy()})
        fp32_error = float(np.abs(got - expected).max())
        quantize_dynamic(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8)
        int8 = ort.InferenceSession(str(int8_path), providers=["CPUExecutionProvider"])
        (got8,) = int8.run(None, {"x": example.numpy()})
        int8_error = float(np.abs(got8 - expected).max() / np.abs(expected).max())
        sizes = f"{fp32_path.stat().st_size // 1024} KiB → {int8_path.stat().st_size // 1024} KiB"
    seconds = time.perf_counter() - start
    used = session.get_providers()[0]
    where = about if device == "cuda" else f"CPU fallback ({about})"
    if device == "cuda" and used != "CUDAExecutionProvider":
        where += f"; ONNX Runtime has no CUDA provider (available: {', '.join(available)})"
    if fp32_error > 1e-4 or int8_error > 0.1:
        return Result(
            "onnx",
            "fail",
            f"outputs differ from PyTorch: fp32 max abs {fp32_error:.2g}, int8 max rel {int8_error:.2g}",
            device,
        )
    return Result(
        "onnx",
        "pass",
        f"export+check+run on {used}: max abs error {fp32_error:.1e}; INT8 dynamic quantisation "
        f"{sizes}, max rel error {int8_error:.1e}; onnx {onnx.__version__}, "
        f"onnxruntime {ort.__version__}; {seconds:.1f} s; {where}",
        device,
    )
