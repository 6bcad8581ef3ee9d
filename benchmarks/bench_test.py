"""What a run's test costs, and where it goes: trainer.test of one matched U-Net (untrained, or `--checkpoint`'s:
the kinds of error cost more on an untrained net's ragged parse) over the test split, clean only and with every
default occluded condition, side by side in one process. Each test batch's time is split into loading (the
loader: decoding, cropping, drawing occluders), the net's forward (test_step) and scoring (the evaluator: warping
back, metrics); per loader, and in total; beside them, the process's peak resident memory while each loader ran
(Linux's VmHWM, reset as each loader starts).

    python benchmarks/bench_test.py [--batches N] [--passes clean,every,regions] [run overrides, e.g.
        data=celebamask data.root=...]

Passes: `clean`, the clean test only; `every`, every default occluded condition; `regions`, every condition with
the region metrics only (error_kinds=false). The goals it checks: scoring one condition costs at most the net's
forward on the same batches (issue 27); the peak does not grow with the test split (issue 43: run it on a split
and on 4x it); the kinds of error cost at most 1.25x the test without them (issue 41: every / regions); the whole
test at most 3x the forward passes it holds (issue 42). `--profile`: each pass also under cProfile, its seconds
split into what the test pass is made of (the functions' cumulative times, under the profiler's own overhead).
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import time
import warnings
from collections import defaultdict

import hydra
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import facseg
from facseg.models.module import FaceSegModule
from facseg.runtime.memory import peak_bytes, reset_peak
from facseg.runtime.speed import matmul_peak
from facseg.scoring.evaluator import TestEvaluator

CLEAN_ONLY = ["data.occluded_test=null"]


class Clock(pl.Callback):
    """Seconds per test loader of loading, forward and scoring: `first` goes before the evaluator in the callbacks
    (its batch end is the forward's end), `last` after it (its batch end is scoring's end). Each loader's row is
    printed as it ends (a long test shows its progress, and a stopped one what it did)."""

    def __init__(self, stages: list[str]) -> None:
        self.stages = stages
        self.seconds: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
        self.peaks: dict[int, int] = {}  # bytes resident at most while each loader ran
        self.loader = -1
        self.mark = time.perf_counter()
        self.first, self.last = _Mark(self, "forward"), _Mark(self, "scoring")

    def enter(self, loader: int) -> None:
        """The last loader's peak kept, the next one's measured afresh."""
        if loader != self.loader:
            self.leave()
            reset_peak()
            self.loader = loader

    def leave(self) -> None:
        if self.loader >= 0:
            self.peaks[self.loader] = max(self.peaks.get(self.loader, 0), peak_bytes())
            parts = [self.seconds[p][self.loader] for p in ("loading", "forward", "scoring")]
            print(f"  {self.stages[self.loader]:34s} {row(parts, self.peaks[self.loader] / 1e9)}", flush=True)

    def tick(self, part: str, loader: int) -> None:
        now = time.perf_counter()
        self.seconds[part][loader] += now - self.mark
        self.mark = now


class _Mark(pl.Callback):
    def __init__(self, clock: Clock, part: str) -> None:
        self.clock, self.part = clock, part

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if self.part == "forward":
            self.clock.tick("loading", dataloader_idx)
            self.clock.enter(dataloader_idx)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.clock.tick(self.part, dataloader_idx)


# What a test pass is made of: (label, a function's file, its name); cumulative seconds, so the indented parts are
# inside the line above them.
COMPONENTS = [
    ("loading (the loaders' __getitem__)", "facseg/data/dataset.py", "__getitem__"),
    ("  reading the photo and its label", "facseg/data/formats.py", "read"),
    ("  drawing the conditions' occluders", "facseg/data/occlusion.py", "draw_occluder"),
    ("  painting and pasting them", "facseg/data/occlusion.py", "apply"),
    ("  realigning (face detection)", "facseg/data/conditions.py", "realigned_matrix"),
    ("the net's forward", "facseg/models/module.py", "forward"),
    ("the test loss", "facseg/models/module.py", "loss"),
    ("warping back onto the photos (the grid)", "facseg/data/warp.py", "of"),
    ("the photos' probabilities, band by band", "facseg/scoring/probabilities.py", "photo_predictions"),
    ("  grid_sample", "~", "<built-in method torch.grid_sampler>"),
    ("  softmax", "~", "<built-in method torch.softmax>"),
    ("  arg-max, squared sums, targets' p", "facseg/metrics/region.py", "fill"),
    ("metric updates (confusion, squared error)", "facseg/metrics/region.py", "update"),
    ("  the kinds of error (waited for)", "facseg/metrics/region.py", "_errors"),
    ("the resolution ceiling", "facseg/scoring/evaluator.py", "_score_ceiling"),
    ("heap trims", "facseg/runtime/memory.py", "trim_heap"),
]


def components(profile: cProfile.Profile) -> list[tuple[str, float]]:
    """Each COMPONENTS line's cumulative seconds in the profile."""
    found = pstats.Stats(profile).stats  # (file, line, name) -> (calls, primitive calls, own, cumulative, callers)
    return [
        (label, sum(v[3] for (file, _, name), v in found.items() if file.endswith(suffix) and name == function))
        for label, suffix, function in COMPONENTS
    ]


def timed_test(
    overrides: list[str], batches: int | None, checkpoint: str | None, profile: cProfile.Profile | None = None
) -> tuple[list[str], Clock, float]:
    with initialize_config_dir(config_dir=str(facseg.CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["model=unet", *overrides])
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    if checkpoint:  # a trained net: what its parse looks like sets the kinds of error's cost
        module = FaceSegModule.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True)
    else:
        module = FaceSegModule(model=OmegaConf.to_container(cfg.model, resolve=True), **datamodule.recorded_settings)
    clock = Clock(list(datamodule.test_stages))
    trainer = pl.Trainer(
        logger=False,
        callbacks=[clock.first, TestEvaluator(errors=cfg.error_kinds), clock.last],
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_test_batches=batches,
    )
    start = clock.mark = time.perf_counter()
    if profile is not None:
        profile.enable()
    trainer.test(module, datamodule=datamodule, verbose=False)
    if profile is not None:
        profile.disable()
    clock.leave()
    return list(datamodule.test_stages), clock, time.perf_counter() - start


def row(parts: list[float], peak_gb: float) -> str:
    loading, forward, scoring = parts
    return f"{loading:8.2f} {forward:8.2f} {scoring:8.2f}  {scoring / forward:15.2f}  {peak_gb:7.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=None, help="test batches per loader (default: all)")
    parser.add_argument("--passes", default="clean,every", help="which: clean, every (condition), regions (no errors)")
    parser.add_argument("--checkpoint", default=None, help="a trained checkpoint (default: an untrained U-Net)")
    parser.add_argument("--profile", action="store_true", help="also what each pass's seconds went to (cProfile)")
    parser.add_argument("overrides", nargs="*", help="run config overrides (the data, the crop size)")
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    print(f"this machine: {matmul_peak(torch.device('cpu'), '32', 2048):.0f} GFLOP/s (make bench-ref)")
    passes = {
        "clean": ("clean only", CLEAN_ONLY),
        "every": ("every condition", []),
        "regions": ("every condition, region metrics only", ["error_kinds=false"]),
    }
    totals = {}
    for name, extra in (passes[p] for p in args.passes.split(",")):
        print(f"{name}:")
        print(f"  {'loader':34s} {'loading':>8s} {'forward':>8s} {'scoring':>8s}  scoring/forward  peak GB", flush=True)
        profile = cProfile.Profile() if args.profile else None
        stages, clock, total = timed_test([*args.overrides, *extra], args.batches, args.checkpoint, profile)
        totals[name] = total
        parts = [sum(clock.seconds[p].values()) for p in ("loading", "forward", "scoring")]
        peak = max(clock.peaks.values()) / 1e9
        print(f"  {'all':34s} {row(parts, peak)}")
        print(
            f"  {len(stages)} test loaders, {total:.1f} s in trainer.test: {total / parts[1]:.2f}x the forward passes"
        )
        if profile is not None:
            print(f"  under cProfile, seconds of the {total:.1f}:")
            for label, seconds in components(profile):
                print(f"    {label:44s} {seconds:7.2f}")
    for a, b in (("every condition", "clean only"), ("every condition", "every condition, region metrics only")):
        if a in totals and b in totals:
            print(f"{a} / {b}: {totals[a] / totals[b]:.2f}x")


if __name__ == "__main__":
    main()
