"""Timing helpers the benchmarks share: the device's clock, mixed precision, medians after warm-up, and the
machine's practical matrix-product peak (what a net's GFLOP/s is a fraction of)."""

from __future__ import annotations

import time
from contextlib import nullcontext

import numpy as np
import torch

DTYPES = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, precision: str):
    dtype = DTYPES[precision]
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def matmul_peak(device: torch.device, precision: str, size: int) -> float:
    """GFLOP/s of a size^3 matrix product in the nets' precision, the best of BLAS (torch.mm) and of the
    convolution library (the same product as a 1x1 convolution): the machine's practical ceiling. Both count, as
    on some CPUs the BLAS is far slower than the convolution kernels (MKL on AMD)."""
    dtype = DTYPES[precision] or torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    image = a.T.reshape(1, size, size, 1)  # size channels x size pixels: a 1x1 convolution with b is a @ b
    kernel = b.T.reshape(size, size, 1, 1).contiguous()
    products = [lambda: a @ b, lambda: torch.nn.functional.conv2d(image, kernel)]
    best = float("inf")
    with torch.inference_mode():
        for product in products:
            for _ in range(3):
                product()
            sync(device)
            for _ in range(10):
                start = time.perf_counter()
                product()
                sync(device)
                best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def time_forward(run, batch: torch.Tensor, device, repeats: int) -> float:
    """Median seconds per call after warm-up."""
    for _ in range(2):
        run(batch)
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(batch)
        sync(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times))
