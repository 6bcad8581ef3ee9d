"""This machine's speed, to scale the times the docs give: each time there comes with the GFLOP/s of the machine it
was measured on (a 2048 x 2048 float32 matrix product, the best of BLAS and of the convolution library), so a time
measured at X GFLOP/s takes about X / Y times as long here at Y; and, for training (most of a study's time), the
seconds of one training step of the default net (the matched U-Net, 128 px crops, batch 8, float32, channels_last):
the unit training times are made of, and the figure to scale them by where the docs give it (several of their
training times came without their machine's GFLOP/s). About half a minute.

    python benchmarks/bench_ref.py          (make bench-ref)
"""

from __future__ import annotations

import argparse
import json
import os
import platform

import torch
from bench_models import step_seconds
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
    step = argparse.Namespace(capacity=[], train_batch=8, step_size=128, precision="32", steps=4)
    found["unet_train_step_s"] = round(min(step_seconds("unet", step, torch.device("cpu"), True) for _ in range(2)), 3)
    if torch.cuda.is_available():
        found["gpu"] = torch.cuda.get_device_name()
        found[f"gpu_matmul_{SIZE}_bf16_gflops"] = round(matmul_peak(torch.device("cuda"), "bf16", SIZE), 1)
    print(json.dumps(found))
    print(f"this machine: {gflops:.0f} GFLOP/s (2048 float32 matrix product, {threads} threads)")
    print(f"a training step of the default U-Net (128 px, batch 8, float32): {found['unet_train_step_s']:.3f} s")


if __name__ == "__main__":
    main()
