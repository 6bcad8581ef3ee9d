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

import torch
from bench_models import step_seconds

from facseg.runtime.speed import machine_speed


def main() -> None:
    found = machine_speed()
    step = argparse.Namespace(capacity=[], train_batch=8, step_size=128, precision="32", steps=4)
    found["unet_train_step_s"] = round(min(step_seconds("unet", step, torch.device("cpu"), True) for _ in range(2)), 3)
    print(json.dumps(found))
    print(
        f"this machine: {found['matmul_2048_float32_gflops']:.0f} GFLOP/s (2048 float32 matrix product, "
        f"{found['torch_threads']} threads)"
    )
    print(f"a training step of the default U-Net (128 px, batch 8, float32): {found['unet_train_step_s']:.3f} s")


if __name__ == "__main__":
    main()
