"""This machine's speed, kept beside the times measured on it (`make bench-ref` prints it; a study records it in its
study.json), so that a time read elsewhere can be scaled: a 2048 x 2048 matrix product's GFLOP/s."""

from __future__ import annotations

import os
import platform
import time
from functools import cache

import torch

DTYPES = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}
SIZE = 2048


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, precision: str, size: int = SIZE) -> float:
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


@cache
def cpu_info() -> dict[str, str]:
    """The first processor's fields in Linux's /proc/cpuinfo (`model name`, `vendor_id`, `cpu family`, `flags`,
    ...); {} elsewhere."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():  # the first processor's block ends
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_name() -> str:
    return cpu_info().get("model name") or platform.processor()


def machine_speed() -> dict:
    """The CPU (and the GPU, where there is one) and their matrix-product GFLOP/s (a few seconds)."""
    found = {
        "cpu": cpu_name() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        f"matmul_{SIZE}_float32_gflops": round(matmul_peak(torch.device("cpu"), "32"), 1),
    }
    if torch.cuda.is_available():
        found["gpu"] = torch.cuda.get_device_name()
        found[f"gpu_matmul_{SIZE}_bf16_gflops"] = round(matmul_peak(torch.device("cuda"), "bf16"), 1)
    return found
