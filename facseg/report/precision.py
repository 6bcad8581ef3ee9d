"""bfloat16 against float32, run against run: whether a net keeps its accuracy in bf16-mixed (issue 42).

    python -m facseg.report.precision SWEEP        (make precision-check: the sweep, then this)

SWEEP holds the same configurations trained in both precisions (`trainer.precision=32-true,bf16-mixed`) with the same
seeds. A seed's two runs start from the same weights and see the same batches in the same order, so they are paired
by seed: per net, the mean over seeds of each seed's bf16 minus float32 mean F1, clean and under the primary
occlusion, with the report's interval of a per-seed difference (facseg.report.bootstrap.interval with `minus`: the
seeds' spread and a bootstrap of the test images, a t with Welch-Satterthwaite's degrees of freedom). bf16 keeps a
net's accuracy when at least five seeds are paired (SEEDS, issue 42's check) and the clean interval's lower end is at
or above -0.5 points (MARGIN); a net that misses it, or has fewer seeds yet, stays float32 under
`trainer.precision=auto` (its model config's `auto_bf16`). Beside them, each precision's median minutes of training
(provenance.json).
Writes precision.md and precision.json in SWEEP.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from facseg.report.bootstrap import Bootstrap, ClassSet, Runs, interval
from facseg.report.estimates import scored_names
from facseg.report.runs import Job, label_map, load_sweep
from facseg.report.tables import md_header, md_row
from facseg.runtime.atomic import write_bytes, write_json

FLOAT32, BF16 = "32-true", "bf16-mixed"
MARGIN = -0.005  # the lowest lower end of bf16 minus float32 mean F1 that keeps bf16 (-0.5 points)
SEEDS = 5  # the paired seeds a verdict needs
STAGES = {"test": "clean", "occluded": "occluded"}


def paired_runs(tested: list[Job]) -> dict[str, dict[str, dict[int, Job]]]:
    """Tested runs by configuration (the model and its other overrides), the precision they trained in (as they
    resolved it: provenance.json) and seed."""
    found: dict[str, dict[str, dict[int, Job]]] = defaultdict(lambda: defaultdict(dict))
    for job in tested:
        # the label (facseg.report.runs: the model and the overrides that set the job apart) but the precision
        configuration = " ".join(t for t in job.label.split() if not t.startswith("trainer.precision="))
        found[configuration][job.provenance["training"]["precision"]][int(job.metrics["seed"])] = job
    return found


def compare(jobs: list[Job]) -> dict[str, dict[str, Any]]:
    """Per configuration with runs in both precisions: the seeds paired, each precision's mean F1 and median minutes
    of training, the difference (bf16 minus float32) per stage with its interval, and whether bf16 keeps it."""
    tested = [job for job in jobs if job.status == "ok" and job.per_image]
    if not tested:
        return {}
    labels = label_map(tested)
    names = list(labels.names)
    classes = ClassSet.of(names, [names.index(c) for c in labels.mean_f1], Runs.stack([tested[0].per_image], "test"))
    boot = Bootstrap(len(scored_names(tested[0].per_image, "test")))
    out = {}
    for configuration, by_precision in paired_runs(tested).items():
        seeds = sorted(set(by_precision.get(FLOAT32, {})) & set(by_precision.get(BF16, {})))
        if not seeds:
            continue
        sides = {p: [by_precision[p][s] for s in seeds] for p in (FLOAT32, BF16)}
        found: dict[str, Any] = {"seeds": seeds}
        for precision, runs in sides.items():
            f1 = [float(run.metrics["test/f1_fg"]) for run in runs]
            found[precision] = {
                "f1_fg": float(np.mean(f1)),
                "f1_fg_by_seed": f1,  # in the order of `seeds`
                # the median: one run slowed by other work on the machine does not move it (as a study's times)
                "training_minutes": float(np.median([run.provenance["training"]["seconds"] / 60 for run in runs])),
            }
        arrays = {p: [run.per_image for run in runs] for p, runs in sides.items()}
        for stage in STAGES:
            if not all(f"{stage}/confusion" in a for runs in arrays.values() for a in runs):
                continue
            bf16, float32 = (Runs.stack(arrays[p], stage) for p in (BF16, FLOAT32))
            d = interval(boot, bf16, classes, "f1_fg", minus=float32)
            found[stage] = {"difference": d.mean, "low": d.low, "high": d.high, "p": d.p}
        # a tested run has its clean stage
        found["bf16_keeps"] = bool(len(seeds) >= SEEDS and found["test"]["low"] >= MARGIN)
        out[configuration] = found
    return out


def markdown(found: dict[str, dict[str, Any]]) -> str:
    """The comparison as report.md's tables are written (points of mean F1)."""
    head = ["net", "seeds", "float32", "bf16", *(f"bf16 - float32, {s} [95 % interval]" for s in STAGES.values())]
    lines = [
        "# bfloat16 against float32, paired by seed",
        "",
        "Mean F1 (points) over the seeds; each seed's bf16 run minus its float32 run, with its 95 % interval over",
        "seeds and test images. bf16 keeps a net's accuracy when the clean lower end is at or above "
        f"{100 * MARGIN:.1f}.",
        "",
        *md_header([*head, "median training minutes, float32 / bf16", "bf16 keeps it"]),
    ]
    for configuration, f in found.items():
        cells = [
            configuration,
            str(len(f["seeds"])),
            f"{100 * f[FLOAT32]['f1_fg']:.2f}",
            f"{100 * f[BF16]['f1_fg']:.2f}",
        ]
        for stage in STAGES:
            d = f.get(stage)
            cells.append(f"{100 * d['difference']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]" if d else "-")
        minutes = f"{f[FLOAT32]['training_minutes']:.1f} / {f[BF16]['training_minutes']:.1f}"
        verdict = "yes" if f["bf16_keeps"] else "no: stays float32"
        if len(f["seeds"]) < SEEDS:
            verdict = f"not yet ({len(f['seeds'])} of {SEEDS} seeds): stays float32"
        lines.append(md_row([*cells, minutes, verdict]))
    lines += ["", "Each seed's clean mean F1 (points), float32 -> bf16:", ""]
    for configuration, f in found.items():
        pairs = zip(f["seeds"], f[FLOAT32]["f1_fg_by_seed"], f[BF16]["f1_fg_by_seed"])
        runs = "; ".join(f"seed {s}: {100 * a:.2f} -> {100 * b:.2f} ({100 * (b - a):+.2f})" for s, a, b in pairs)
        lines.append(f"- {configuration}: {runs}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", type=Path, help="a sweep with runs in both precisions (make precision-check's)")
    args = parser.parse_args(argv)
    found = compare(load_sweep(args.sweep))
    if not found:
        raise SystemExit(f"{args.sweep}: no configuration has finished runs of one seed in both {FLOAT32} and {BF16}")
    text = markdown(found)
    write_bytes(args.sweep / "precision.md", text.encode())
    write_json(args.sweep / "precision.json", found)
    print(text, end="")


if __name__ == "__main__":
    main()
