"""What each architecture costs, measured in one process: training throughput, inference speed, peak memory.

    python benchmarks/bench_models.py                       (make bench: the CPU, float32)
    python benchmarks/bench_models.py --device cuda --precision bf16 --channels-last     (benchmarks/bench_gpu.py)

(a) Training images/s of FaceSegModule under the Lightning Trainer vs a plain PyTorch loop: the same net, loss,
    optimizer, data loader (the default synthetic set and its augmentations) and batch; the ratio is Lightning's
    overhead. (b) Inference at --image-size: latency (batch 1) and images/s (--infer-batch) per model, eager,
    channels_last, torch.compile and ONNX Runtime, with each net's GFLOPs and the GFLOP/s achieved as a fraction of
    this machine's measured matmul peak. (c) Peak memory of training steps per model at --memory-batch.
(d) Seconds per training step per model at --step-size, in NCHW (contiguous) and in channels_last (NHWC), the two
    measured in turn so that a slow spell of the machine hits both; the ratio is what channels_last gains.
float32 against bfloat16: benchmarks/bench_precision.py (make bench-precision).
"""

from __future__ import annotations

import argparse
import gc
import logging
import tempfile
import time
import warnings
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from timing import autocast, device_name, time_forward

import facseg
from facseg.models.cost import gflops
from facseg.models.module import FaceSegModule
from facseg.runtime.memory import peak_bytes, reset_peak, resident_bytes, trim_heap
from facseg.runtime.speed import DTYPES, matmul_peak, sync

MODELS = ("unet", "segnet", "pspnet")
LIGHTNING_PRECISION = {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}


def config(overrides: list[str]):
    with initialize_config_dir(config_dir=str(facseg.CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


def build_module(model: str, overrides: list[str], channels_last: bool = False) -> FaceSegModule:
    cfg = config([f"model={model}", *overrides])
    torch.manual_seed(0)
    return FaceSegModule(
        model=OmegaConf.to_container(cfg.model, resolve=True),
        optimizer=hydra.utils.instantiate(cfg.optimizer),
        scheduler=hydra.utils.instantiate(cfg.scheduler),
        channels_last=channels_last,
    )


# --- (a) Lightning vs a plain loop ---------------------------------------------------------------------------------


def plain_loop(module: FaceSegModule, loader, device, precision: str) -> float:
    """images/s of the hand-written loop over the second epoch (the first warms up): forward, the module's loss,
    backward, the configured optimizer and its per-step LR schedule."""
    module.to(device).train()
    module.configure_model()
    optimizer = module.optimizer(module.parameters())
    scheduler = module.scheduler(optimizer, total_steps=2 * len(loader))
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        sync(device)
        start, images = time.perf_counter(), 0
        for batch in loader:
            inputs, labels = batch["image"].to(device, non_blocking=True), batch["label"].to(device, non_blocking=True)
            with autocast(device, precision):
                loss = module.loss(module(inputs), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            images += len(inputs)
        sync(device)
    return images / (time.perf_counter() - start)


class EpochTimer(pl.Callback):
    """Times the second epoch, as plain_loop does: whole epochs, so that neither side loads a batch it never uses."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.images = device, 0

    def on_train_epoch_start(self, trainer, module) -> None:
        sync(self.device)
        self.start, self.images = time.perf_counter(), 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.images += len(batch["image"])

    def on_train_epoch_end(self, trainer, module) -> None:
        sync(self.device)
        self.seconds = time.perf_counter() - self.start


def lightning_loop(module: FaceSegModule, datamodule, device, precision: str) -> float:
    timer = EpochTimer(device)
    trainer = pl.Trainer(
        accelerator=device.type,
        devices=1,
        precision=LIGHTNING_PRECISION[precision],
        max_epochs=2,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(module, datamodule=datamodule)
    return timer.images / timer.seconds


def bench_training(args, device) -> None:
    overrides = [f"data.batch_size={args.train_batch}", f"data.num_workers={args.workers}", *args.data]
    cfg = config(overrides)
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    print(
        f"\n(a) training images/s, {args.train_model}, {cfg.data.name} data at {cfg.data.image_size} px, batch "
        f"{args.train_batch}, {args.workers} loader workers, one epoch ({len(loader)} steps) after a warm-up epoch, "
        f"precision {args.precision}; best of {args.repeats}"
    )
    plain, lightning = [], []
    for _ in range(args.repeats):  # interleaved, so that a slow spell of the machine hits both
        plain.append(
            plain_loop(build_module(args.train_model, overrides, args.channels_last), loader, device, args.precision)
        )
        lightning.append(
            lightning_loop(
                build_module(args.train_model, overrides, args.channels_last), datamodule, device, args.precision
            )
        )
    print(f"{'plain PyTorch loop':<24}{max(plain):>10.1f} images/s   (runs: {', '.join(f'{v:.1f}' for v in plain)})")
    print(
        f"{'Lightning Trainer':<24}{max(lightning):>10.1f} images/s   "
        f"(runs: {', '.join(f'{v:.1f}' for v in lightning)})"
    )
    print(f"{'ratio Lightning/plain':<24}{max(lightning) / max(plain):>10.3f}")


# --- (b) inference -------------------------------------------------------------------------------------------------


def variants(net, size: int, device, precision: str, tmp: Path, model: str):
    """(name, callable on a batch) for each way of running the net; a variant that cannot run says why."""

    def eager(x):
        with torch.inference_mode(), autocast(device, precision):
            return net(x)

    yield "eager", eager

    def channels_last(x):
        with torch.inference_mode(), autocast(device, precision):
            return net_cl(x.contiguous(memory_format=torch.channels_last))

    net_cl = net.to(memory_format=torch.channels_last)
    yield "channels_last", channels_last
    net.to(memory_format=torch.contiguous_format)

    compiled_net = torch.compile(net)

    def compiled(x):
        with torch.inference_mode(), autocast(device, precision):
            return compiled_net(x)

    yield "compiled", compiled

    import onnxruntime as ort

    from facseg.models.exporting import _export_onnx

    if device.type == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        print(f"{model:<8}onnxruntime: no CUDA provider in this install (onnxruntime-gpu), skipped")
        return
    path = tmp / f"{model}.onnx"
    _export_onnx(net.float().cpu(), torch.randn(2, 3, size, size), path, {"model": model}, opset=18)
    net.to(device)
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    session = ort.InferenceSession(str(path), providers=providers)

    def onnx(x):
        return session.run(None, {"image": x.float().cpu().numpy()})[0]

    yield f"onnxruntime ({session.get_providers()[0].replace('ExecutionProvider', '')}, fp32)", onnx


def bench_inference(args, device) -> None:
    peak = matmul_peak(device, args.precision, args.matmul_size)
    print(
        f"\n(b) inference at {args.image_size} px, precision {args.precision}; latency: batch 1; throughput: batch "
        f"{args.infer_batch}; matmul peak {peak:,.0f} GFLOP/s ({args.matmul_size}^3, {args.precision})"
    )
    print(f"{'model':<8}{'variant':<28}{'GFLOPs':>8}{'latency ms':>12}{'images/s':>10}{'GFLOP/s':>10}{'of peak':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            net = build_module(model, args.capacity).net.to(device).eval()
            flops = gflops(net, args.image_size)
            one = torch.randn(1, 3, args.image_size, args.image_size, device=device)
            many = torch.randn(args.infer_batch, 3, args.image_size, args.image_size, device=device)
            for name, run in variants(net, args.image_size, device, args.precision, Path(tmp), model):
                if name == "compiled" and args.no_compile:
                    continue
                latency = time_forward(run, one, device, args.repeats_infer)
                rate = args.infer_batch / time_forward(run, many, device, args.repeats_infer)
                print(
                    f"{model:<8}{name:<28}{flops:>8.1f}{1000 * latency:>12.1f}{rate:>10.1f}{flops * rate:>10.0f}"
                    f"{flops * rate / peak:>9.1%}"
                )
            torch._dynamo.reset()


# --- (c) peak memory -----------------------------------------------------------------------------------------------


def peak_training_memory(model: str, args, device) -> float:
    """MiB at the high-water mark of 2 training steps: weights, gradients, AdamW state and activations."""
    size = args.image_size
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
    else:
        gc.collect()
        trim_heap()  # hand freed heap back, so that the last model's pages do not count
        reset_peak()
        baseline = resident_bytes()
    module = build_module(model, args.capacity, args.channels_last).to(device).train()
    module.configure_model()
    optimizer = torch.optim.AdamW(module.parameters())
    images = torch.randn(args.memory_batch, 3, size, size, device=device)
    labels = torch.randint(0, 11, (args.memory_batch, size, size), device=device)
    for _ in range(2):
        with autocast(device, args.precision):
            loss = module.loss(module(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else peak_bytes()
    del module, optimizer, images, labels, loss
    return (peak - baseline) / 2**20


def bench_memory(args, device) -> None:
    where = "GPU memory allocated (PyTorch)" if device.type == "cuda" else "process resident memory (RSS)"
    print(
        f"\n(c) peak {where} of 2 training steps at {args.image_size} px, batch {args.memory_batch}, "
        f"precision {args.precision}, above the level before the model was built"
    )
    print(f"{'model':<8}{'params (M)':>12}{'peak MiB':>10}")
    for model in args.models:
        params = sum(p.numel() for p in build_module(model, args.capacity).parameters()) / 1e6
        print(f"{model:<8}{params:>12.2f}{peak_training_memory(model, args, device):>10.0f}")


# --- (d) training steps, NCHW vs channels_last ---------------------------------------------------------------------


def step_seconds(
    model: str, args, device, channels_last: bool, size: int | None = None, batch: int | None = None, precision=None
) -> float:
    """Mean seconds of `--steps` training steps (forward, loss, backward, AdamW) after 2 warm-up steps (at
    --step-size, --train-batch and --precision unless given)."""
    size, batch, precision = size or args.step_size, batch or args.train_batch, precision or args.precision
    module = build_module(model, args.capacity, channels_last).to(device).train()
    module.configure_model()
    optimizer = torch.optim.AdamW(module.parameters())
    images = torch.randn(batch, 3, size, size, device=device)
    labels = torch.randint(0, 11, (batch, size, size), device=device)

    def step() -> None:
        with autocast(device, precision):
            loss = module.loss(module(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync(device)
    return (time.perf_counter() - start) / args.steps


def bench_steps(args, device) -> None:
    print(
        f"\n(d) seconds per training step at {args.step_size} px, batch {args.train_batch}, "
        f"precision {args.precision}, mean of {args.steps} steps, best of {args.repeats}"
    )
    print(f"{'model':<8}{'NCHW':>8}{'channels_last':>15}{'speed-up':>10}")
    for model in args.models:
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeats):
            for channels_last in (False, True):
                times[channels_last].append(step_seconds(model, args, device, channels_last))
        plain, nhwc = min(times[False]), min(times[True])
        print(f"{model:<8}{plain:>8.3f}{nhwc:>15.3f}{plain / nhwc:>10.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=list(DTYPES), default="32")
    parser.add_argument("--channels-last", action="store_true", help="(a) and (c): train in channels_last")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument(
        "--capacity",
        nargs="*",
        default=[],
        help="config overrides that size the nets, e.g. capacity=paper (the paper scale)",
    )
    parser.add_argument("--data", nargs="*", default=[], help="config overrides of the training data for (a)")
    parser.add_argument("--train-model", default="unet")
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--infer-batch", type=int, default=4)
    parser.add_argument("--repeats-infer", type=int, default=5)
    parser.add_argument("--memory-batch", type=int, default=4)
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--no-compile", action="store_true", help="(b) without the torch.compile variant")
    parser.add_argument("--step-size", type=int, default=128, help="(d) the crop size of the timed training steps")
    parser.add_argument("--steps", type=int, default=6, help="(d) timed steps per measurement")
    sections = ["training", "inference", "memory", "steps"]
    parser.add_argument("--only", nargs="+", choices=sections, default=sections)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    print(f"facseg benchmarks on {device_name(device)}; torch {torch.__version__}")
    if "training" in args.only:
        bench_training(args, device)
    if "inference" in args.only:
        bench_inference(args, device)
    if "memory" in args.only:
        bench_memory(args, device)
    if "steps" in args.only:
        bench_steps(args, device)


if __name__ == "__main__":
    main()
