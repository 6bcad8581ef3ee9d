"""float32 against bfloat16 autocast, side by side on one machine (issue 42): what `trainer.precision=auto` gains
where the processor computes bfloat16 natively (AVX512-BF16, AMX) or a GPU has it.

    python benchmarks/bench_precision.py              (make bench-precision: the CPU, the three default nets)

(a) Seconds per training step (forward, loss, backward, AdamW) and per inference batch, per net, at 128 and 512 px,
    each measurement in float32 then in bfloat16, repeated: a slow spell of the machine hits both alike.
(b) One epoch of the default U-Net run (`python -m facseg.run`, start-up, validation and checkpoints included; no
    test), 32-true then bf16-mixed, repeated.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import time
import warnings

import torch
from bench_models import MODELS, build_module, step_seconds
from timing import autocast, device_name, time_forward

from facseg.runtime.precision import native_bf16
from facseg.runtime.speed import matmul_peak


def inference_seconds(model: str, args, device, size: int, precision: str) -> float:
    """Median seconds of one inference batch (--infer-batch, channels_last as the runs' default)."""
    net = build_module(model, args.capacity, channels_last=True).net.to(device).eval()
    net = net.to(memory_format=torch.channels_last)
    batch = torch.randn(args.infer_batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)

    def run(x):
        with torch.inference_mode(), autocast(device, precision):
            return net(x)

    return time_forward(run, batch, device, args.repeats_infer)


def bench_precision(args, device) -> None:
    """Each measurement in float32 then in bfloat16, repeated: a slow spell of the machine hits both alike."""
    print(
        f"\n(a) float32 against bfloat16 autocast, channels_last, side by side, best of {args.repeats}: seconds per "
        f"training step (batch {args.train_batch} at 128 px, the same pixels per batch at other sizes), per inference "
        f"batch of {args.infer_batch} (its median)"
    )
    columns = ("step fp32", 11), ("step bf16", 11), ("ratio", 7), ("infer fp32", 12), ("infer bf16", 12), ("ratio", 7)
    print(f"{'model':<8}{'px':>5}" + "".join(f"{name:>{width}}" for name, width in columns))
    for model in args.models:
        for size in args.sizes:
            batch = max(1, args.train_batch * 128**2 // size**2)
            step: dict[str, list[float]] = {"32": [], "bf16": []}
            infer: dict[str, list[float]] = {"32": [], "bf16": []}
            for _ in range(args.repeats):
                for precision in ("32", "bf16"):
                    step[precision].append(step_seconds(model, args, device, True, size, batch, precision))
                    infer[precision].append(inference_seconds(model, args, device, size, precision))
            s32, s16, i32, i16 = min(step["32"]), min(step["bf16"]), min(infer["32"]), min(infer["bf16"])
            ratios = f"{s16 / s32:>7.2f}{i32:>12.3f}{i16:>12.3f}{i16 / i32:>7.2f}"
            print(f"{model:<8}{size:>5}{s32:>11.3f}{s16:>11.3f}{ratios}")


def bench_epoch(args, device) -> None:
    """`python -m facseg.run` for one epoch without the test, in a subprocess per precision, alternated."""
    print(
        "\n(b) one epoch of the default U-Net run (the synthetic default, validation, checkpoints; no test), "
        f"start-up included, seconds of the whole command, float32 then bf16-mixed, best of {args.repeats}"
    )
    seconds: dict[str, list[float]] = {"32-true": [], "bf16-mixed": []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for precision in seconds:
                command = [
                    sys.executable, "-m", "facseg.run", "model=unet", "trainer.max_epochs=1", "test=false",
                    "logger=csv", "trainer.enable_progress_bar=false", f"trainer.precision={precision}",
                    f"trainer.accelerator={device.type}", f"hydra.run.dir={tmp}/{precision}-{repeat}", *args.data,
                ]  # fmt: skip
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                seconds[precision].append(time.perf_counter() - start)
    f32, bf16 = min(seconds["32-true"]), min(seconds["bf16-mixed"])
    print(f"float32 {f32:.1f} s, bf16-mixed {bf16:.1f} s: {bf16 / f32:.2f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--capacity", nargs="*", default=[], help="config overrides that size the nets")
    parser.add_argument("--sizes", nargs="+", type=int, default=[128, 512], help="(a) the crop sizes")
    parser.add_argument("--train-batch", type=int, default=8, help="(a) at 128 px; the same pixels at other sizes")
    parser.add_argument("--infer-batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=6, help="(a) timed training steps per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--repeats-infer", type=int, default=5)
    parser.add_argument("--data", nargs="*", default=[], help="(b) config overrides of the run's data")
    parser.add_argument("--only", nargs="+", choices=["steps", "epoch"], default=["steps", "epoch"])
    args = parser.parse_args(argv)
    args.step_size, args.precision = args.sizes[0], "32"  # what step_seconds reads when not told otherwise
    device = torch.device(args.device)
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    native = "native" if native_bf16(device.type) else "not native (emulated)"
    print(f"facseg precision benchmarks on {device_name(device)}; torch {torch.__version__}; bfloat16 {native} here")
    print(f"this machine: {matmul_peak(device, '32', 2048):.0f} GFLOP/s (make bench-ref)")
    if "steps" in args.only:
        bench_precision(args, device)
    if "epoch" in args.only:
        bench_epoch(args, device)


if __name__ == "__main__":
    main()
