"""A half-precision matmul and its throughput: the number that says the GPU is really used.

bf16 where the GPU supports it (A100, H800), else fp16; on the CPU bf16 on a small matrix, so
the figure is a plausibility check, not a benchmark. The result is compared with an fp32
reference so a broken kernel cannot report a good speed.
"""

from __future__ import annotations

import time

from image_smoke import Result, torch_device


def check_matmul(size: int | None = None, repeats: int | None = None) -> Result:
    import torch

    device, about = torch_device()
    on_gpu = device == "cuda"
    dtype = torch.bfloat16 if (not on_gpu or torch.cuda.is_bf16_supported()) else torch.float16
    n = size or (8192 if on_gpu else 256)
    reps = repeats or (20 if on_gpu else 3)
    generator = torch.Generator(device="cpu").manual_seed(0)
    a32 = torch.randn(n, n, generator=generator)
    b32 = torch.randn(n, n, generator=generator)
    a, b = a32.to(device, dtype), b32.to(device, dtype)
    product = a @ b  # warm-up (kernel selection, lazy init)
    if on_gpu:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        product = a @ b
    if on_gpu:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tflops = 2 * n**3 * reps / seconds / 1e12
    reference = a.float().cpu() @ b.float().cpu()
    error = (product.float().cpu() - reference).abs().max().item() / reference.abs().max().item()
    name = str(dtype).removeprefix("torch.")
    where = about if on_gpu else f"CPU fallback ({about})"
    if error > 0.05:
        return Result("matmul", "fail", f"{name} {n}×{n}: max relative error {error:.3g}", device)
    return Result(
        "matmul",
        "pass",
        f"{name} {n}×{n}×{reps}: {tflops:.3f} TFLOP/s, max rel. error {error:.1e}; {where}",
        device,
    )
