"""The main job's budget (issue 42, item 6): the README's main job, `python -m facseg.run -m
model=unet,segnet,pspnet`, run whole in a subprocess as a user runs it the first time (its data generated, its
occluders cut out, into a fresh data folder), timed, and counted in reference epochs of this machine (bench_ref.py:
100 steps of SMP's U-Net-ResNet-18, timed before and after the jobs; the mean of the two is the unit). Each
`--variant` is one run of the whole job with those overrides, side by side in one process: by default the default
precision (`auto`) against `trainer.precision=32-true`. Per job, its precision and the seconds of its training and
of its test (provenance.json). Hours on a 2-core CPU: run it alone.

    python benchmarks/bench_budget.py [--variant OVERRIDES ...] [--data OVERRIDES ...]    (make bench-budget)
    e.g. --data data=lapa data.root=data/celebamask-mini-lapa      (benchmarks/lapa_copy.py writes that copy)
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_ref import reference_epoch_seconds

from facseg.runtime.speed import machine_speed

MAIN_JOB = ["-m", "model=unet,segnet,pspnet"]


def run_main_job(folder: Path, overrides: list[str]) -> tuple[float, list[dict]]:
    """The main job with `overrides` in `folder` (its sweep and a data folder of its own): wall seconds, and per job
    its model, precision, training and test seconds."""
    command = [sys.executable, "-m", "facseg.run", *MAIN_JOB, *overrides]
    command += [f"paths.data_dir={folder / 'data'}", f"hydra.sweep.dir={folder / 'sweep'}", "logger=csv"]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed:\n{result.stderr[-3000:]}")
    jobs = []
    for job in sorted((folder / "sweep").glob("*_*"), key=lambda p: int(p.name.split("_")[0])):
        record = json.loads((job / "provenance.json").read_text())
        jobs.append(
            {
                "model": job.name.split("_", 1)[1],
                "precision": record["training"]["precision"],
                "training_s": record["training"]["seconds"],
                "test_s": record["test"]["seconds"],
            }
        )
    return seconds, jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--variant", action="append", help="overrides of one run of the main job ('' : the defaults); repeatable"
    )
    parser.add_argument("--data", nargs="*", default=[], help="overrides every variant gets (the data, its size)")
    parser.add_argument("--steps", type=int, default=10, help="steps timed of each reference epoch (x100 / steps)")
    args = parser.parse_args()
    variants = args.variant if args.variant is not None else ["", "trainer.precision=32-true"]
    speed = machine_speed()
    print(
        f"machine: {speed['cpu']}, {speed['matmul_2048_float32_gflops']:.0f} GFLOP/s, {speed['torch_threads']} threads"
    )
    # The best of two: a reference epoch timed once at the start was once 2.4x the one after (122 s against 50 s).
    before = min(reference_epoch_seconds(args.steps) for _ in range(2))
    found = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, variant in enumerate(variants):
            found.append(run_main_job(Path(tmp) / str(i), [*args.data, *shlex.split(variant)]))
    after = min(reference_epoch_seconds(args.steps) for _ in range(2))
    unit = (before + after) / 2
    print(f"reference epoch: {unit:.1f} s (before the jobs {before:.1f} s, after {after:.1f} s)")
    if max(before, after) > 1.2 * min(before, after):
        print("  the machine's speed changed during the jobs (before and after differ by over 20 %): rerun it alone")
    for variant, (seconds, jobs) in zip(variants, found):
        print(f"\nmain job {shlex.join(args.data + shlex.split(variant)) or '(defaults)'}:")
        print(f"  {seconds:.0f} s = {seconds / unit:.1f} reference epochs")
        for job in jobs:
            times = f"training {job['training_s']:>7.1f} s  test {job['test_s']:>6.1f} s"
            print(f"  {job['model']:<8} {job['precision']:<11} {times}")
    if len(found) > 1:
        print(f"\n{variants[0] or '(defaults)'} / {variants[1] or '(defaults)'}: {found[0][0] / found[1][0]:.2f}x")


if __name__ == "__main__":
    main()
