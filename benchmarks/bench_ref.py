"""This machine's speed, to scale the times the docs give: each time there comes with the GFLOP/s of the machine it
was measured on (a 2048 x 2048 float32 matrix product, the best of BLAS and of the convolution library), so a time
measured at X GFLOP/s takes about X / Y times as long here at Y. A few seconds.

    python benchmarks/bench_ref.py          (make bench-ref)
"""

from __future__ import annotations

import json
import os
import platform

import torch
from timing import matmul_peak

SIZE = 2048


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        return platform.processor()


def main() -> None:
    threads = torch.get_num_threads()
    gflops = matmul_peak(torch.device("cpu"), "32", SIZE)
    found = {
        "cpu": cpu_name() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": threads,
        "torch": torch.__version__,
        f"matmul_{SIZE}_float32_gflops": round(gflops, 1),
    }
    if torch.cuda.is_available():
        found["gpu"] = torch.cuda.get_device_name()
        found[f"gpu_matmul_{SIZE}_bf16_gflops"] = round(matmul_peak(torch.device("cuda"), "bf16", SIZE), 1)
    print(json.dumps(found))
    print(f"this machine: {gflops:.0f} GFLOP/s (2048 float32 matrix product, {threads} threads)")


if __name__ == "__main__":
    main()
