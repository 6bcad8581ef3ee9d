"""Timing helpers the benchmarks share: mixed precision and medians after warm-up (the machine's matrix-product
peak, what a net's GFLOP/s is a fraction of, is facseg.runtime.speed's)."""

from __future__ import annotations

import time
from contextlib import nullcontext

import numpy as np
import torch

from facseg.runtime.speed import DTYPES, sync


def device_name(device: torch.device) -> str:
    """What a benchmark's first line says it ran on."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"


def autocast(device: torch.device, precision: str):
    dtype = DTYPES[precision]
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


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
