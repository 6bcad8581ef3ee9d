"""This machine's speed, to scale the times the docs give: each time there comes with the GFLOP/s of the machine it
was measured on (a 2048 x 2048 float32 matrix product, the best of BLAS and of the convolution library), so a time
measured at X GFLOP/s takes about X / Y times as long here at Y; and, for training (most of a study's time), the
seconds of one training step of the default net (the matched U-Net, 128 px crops, batch 8, float32, channels_last):
the unit training times are made of, and the figure to scale them by where the docs give it (several of their
training times came without their machine's GFLOP/s); and issue 42's reference epoch: 100 steps of a plain PyTorch
loop training SMP's U-Net on ResNet-18 (random weights, 11 classes) on random 128 px batches of 8, float32, the unit
the main job's budget is counted in (docs/performance.md). About a minute.

    python benchmarks/bench_ref.py          (make bench-ref)
"""

from __future__ import annotations

import argparse
import json
import time

import segmentation_models_pytorch as smp
import torch
from bench_models import step_seconds

from facseg.runtime.speed import machine_speed


def reference_epoch_seconds(steps: int = 10) -> float:
    """100 x the mean seconds of `steps` steps (after 2 warm-up steps) of the plain loop of issue 42's reference
    epoch: SMP's U-Net on ResNet-18, random 128 px batches of 8, cross-entropy, AdamW, float32, NCHW."""
    torch.manual_seed(0)
    net = smp.Unet("resnet18", encoder_weights=None, classes=11).train()
    optimizer = torch.optim.AdamW(net.parameters())
    images, labels = torch.randn(8, 3, 128, 128), torch.randint(0, 11, (8, 128, 128))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(net(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return 100 * (time.perf_counter() - start) / steps


def main() -> None:
    found = machine_speed()
    step = argparse.Namespace(capacity=[], train_batch=8, step_size=128, precision="32", steps=4)
    found["unet_train_step_s"] = round(min(step_seconds("unet", step, torch.device("cpu"), True) for _ in range(2)), 3)
    found["reference_epoch_s"] = round(min(reference_epoch_seconds() for _ in range(2)), 1)
    print(json.dumps(found))
    print(
        f"this machine: {found['matmul_2048_float32_gflops']:.0f} GFLOP/s (2048 float32 matrix product, "
        f"{found['torch_threads']} threads)"
    )
    print(f"a training step of the default U-Net (128 px, batch 8, float32): {found['unet_train_step_s']:.3f} s")
    print(
        "a reference epoch (100 steps of SMP's U-Net-ResNet-18, 128 px, batch 8, float32): "
        f"{found['reference_epoch_s']:.1f} s"
    )


if __name__ == "__main__":
    main()
