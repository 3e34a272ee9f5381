"""One small training run: forward, backward and optimiser steps on the image's device.

Catches what a matmul does not: autograd, optimiser kernels, mixed precision (bf16 autocast on
the GPU) and cuDNN convolutions. The loss must fall on a learnable synthetic task.
"""

from __future__ import annotations

import time

from image_smoke import Result, torch_device


def check_train(steps: int = 30) -> Result:
    import torch
    from torch import nn

    device, about = torch_device()
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, 2),
    ).to(device)
    # Class 1 images are brighter: learnable in a few steps, so a falling loss is a fair test.
    labels = torch.randint(0, 2, (64,))
    images = torch.randn(64, 1, 8, 8) + labels.view(-1, 1, 1, 1).float()
    images, labels = images.to(device), labels.to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2)
    autocast_dtype = torch.bfloat16 if device == "cuda" else torch.float32
    losses: list[float] = []
    start = time.perf_counter()
    for _ in range(steps):
        optimiser.zero_grad()
        with torch.autocast(device, dtype=autocast_dtype, enabled=device == "cuda"):
            loss = nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    seconds = time.perf_counter() - start
    where = about if device == "cuda" else f"CPU fallback ({about})"
    if not losses[-1] < 0.5 * losses[0]:
        return Result(
            "train", "fail", f"loss did not fall: {losses[0]:.3f} → {losses[-1]:.3f}", device
        )
    return Result(
        "train",
        "pass",
        f"{steps} steps in {seconds:.2f} s, loss {losses[0]:.3f} → {losses[-1]:.3f}; {where}",
        device,
    )
