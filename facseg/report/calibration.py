"""Does the report's statistics hold its nominal rates? Simulated studies, scored by the report's own code.

A study here is what facseg.study produces: per configuration S trained runs (seeds), each tested on the same N test
images, each (run, image) a confusion matrix. The model of those matrices: image n holds t[n, c] pixels of class c
(a rare class in some images only); run r gets each pixel of class c wrong with probability
sigmoid(mu[c] + u[n, c] + v[r, c] + e[n, r, c]), the wrong pixels going to other classes in fixed shares. u is the
image's difficulty (image variance), v the run's luck (seed variance), e their interaction. Three regimes by default:
seed-dominant (runs differ more than test sets of N images would), balanced and image-dominant. The kinds of error
(facseg.metrics.errors) follow the same offsets: a class's boundary holds 4 sqrt(t[n, c]) pixels, of which a share
sigmoid(logit(MISSED_BOUNDARY[c]) + u + v + e) is missed (boundary F), extra fragments come at a rate
FRAGMENTS[c] exp(u + v + e) and HD95 is HD95[c] exp(u + v + e) px; a face is plausible with probability
sigmoid(1.5 - u - v - e) (class-mean offsets).

Per regime, studies of two configurations of the same architecture (the null: every difference is chance) go
through facseg.report.bootstrap's `paired` and `interval`; printed: how often the paired test calls them different
at 0.05 (target <= 0.07, on every metric in COVERED), and how often a 95 % interval holds the truth (target >=
0.93): a single configuration's, of its mean over seeds of the population value (the metric of its expected counts
over all faces, averaged over all the runs it could give), for each metric in COVERED: mean F1, the rare class's F1
(near 0 for some runs: its interval is the one a bounded scale keeps inside [0, 1]), boundary F, fragments per
face, HD95 and the plausible share; and the difference's, of 0.

`--fit DIR`: a fourth regime, fitted to a study folder's own runs (runs/<configuration>-s<seed>/per_image.npz): its
seed and image spreads chosen so that the share of a run's variance that comes from its seed, and a run's SD, match
those measured on the study's configurations (pooled over those with two runs or more).

    python -m facseg.report.calibration [--studies 1000] [--fit DIR]   (make calibrate-stats; NumPy and SciPy only)
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facseg.metrics.confusion import metrics
from facseg.metrics.errors import RADII, WIDTHS, error_table
from facseg.report.bootstrap import Bootstrap, ClassSet, Runs, full_values, interval, paired

CLASSES = ("background", "skin", "hair", "eye", "brow", "mouth")
AREA = np.array([0.6, 0.25, 0.1, 0.025, 0.015, 0.01])  # share of an image's pixels
ERROR = np.array([0.02, 0.05, 0.08, 0.12, 0.25, 0.2])  # a typical run's error rate per class
RARE, RARE_SHARE = 5, 0.4  # `mouth` (an open mouth) is in 40 % of the images only
PIXELS = 20_000
# Where a class's wrong pixels go (rows: truth; no diagonal): faces' parts mostly to skin and background.
DESTINATION = np.array(
    [
        [0, 0.6, 0.3, 0.04, 0.03, 0.03],
        [0.6, 0, 0.2, 0.07, 0.08, 0.05],
        [0.7, 0.3, 0, 0, 0, 0],
        [0.3, 0.6, 0, 0, 0.1, 0],
        [0.2, 0.6, 0.1, 0.1, 0, 0],
        [0.3, 0.7, 0, 0, 0, 0],
    ]
)
MEAN_F1 = list(range(1, len(CLASSES)))
RARE_KEY = f"f1/{CLASSES[RARE]}"
MISSED_BOUNDARY = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.35])  # share of a class's boundary beyond 2 px
FRAGMENTS = np.array([0.02, 0.05, 0.1, 0.05, 0.08, 0.05])  # extra components per face
HD95 = np.array([4.0, 6.0, 12.0, 3.0, 3.0, 4.0])  # px
COVERED = ("f1_fg", RARE_KEY, "bf1/2px", "fragments", "hd95", "anatomy_ok")


@dataclass(frozen=True)
class Regime:
    name: str
    seed_sd: float  # of a run's logit offset (per class and shared)
    image_sd: float  # of an image's logit offset (per class and shared)
    interaction_sd: float = 0.1


REGIMES = (
    Regime("seed-dominant", seed_sd=0.14, image_sd=0.2),
    Regime("balanced", seed_sd=0.12, image_sd=0.4),
    Regime("image-dominant", seed_sd=0.03, image_sd=1.0),
)


def _offsets(rng: np.random.Generator, count: int, sd: float) -> np.ndarray:
    """count x C logit offsets: half shared by every class (a hard image, a weak run), half per class."""
    return sd * (rng.standard_normal((count, 1)) + rng.standard_normal((count, len(CLASSES)))) / np.sqrt(2)


def _truth(rng: np.random.Generator, images: int) -> np.ndarray:
    counts = PIXELS * AREA * np.exp(0.3 * rng.standard_normal((images, len(CLASSES))))
    counts[:, RARE] *= rng.random(images) < RARE_SHARE
    counts[:, 0] += PIXELS - counts.sum(1)
    return np.round(counts)


def _errors(rng: np.random.Generator, regime: Regime, truth: np.ndarray, image_offsets, run_offsets) -> np.ndarray:
    """R x N x C wrong pixels of each run on each image, per true class."""
    logit = np.log(ERROR / (1 - ERROR)) + image_offsets[None] + run_offsets[:, None]
    logit = logit + regime.interaction_sd * rng.standard_normal(logit.shape)
    return truth[None] / (1 + np.exp(-logit))


def _error_counts(rng, regime: Regime, truth: np.ndarray, image_offsets, run_offsets) -> dict[str, np.ndarray]:
    """R x N x ... per-image counts of the kinds of error (facseg.metrics.errors.additive's keys), on the offsets
    of `_errors`."""
    offsets = image_offsets[None] + run_offsets[:, None]
    offsets = offsets + regime.interaction_sd * rng.standard_normal(offsets.shape)
    present = truth[None] > 0
    boundary = 4 * np.sqrt(np.maximum(truth, 0))[None] * np.ones_like(offsets)
    matched = boundary / (1 + np.exp(np.log(MISSED_BOUNDARY / (1 - MISSED_BOUNDARY)) + offsets))
    counts = np.stack([matched, boundary, matched, boundary], -1)[..., None, :].repeat(len(RADII), -2)
    hd95 = np.where(present, HD95 * np.exp(offsets), 0.0)
    plausible = 1 / (1 + np.exp(offsets.mean(-1) - 1.5))
    runs, images = offsets.shape[:2]
    return {
        "boundary": counts,
        "band": np.ones((*offsets.shape, len(WIDTHS), 2)),
        "hd95_sum": hd95,
        "hd95_count": present.astype(np.float64) * np.ones_like(offsets),
        "fragments": FRAGMENTS * np.exp(offsets),
        "anatomy_ok": plausible,
        "jaw_sum": np.zeros((runs, images)),
        "jaw_count": np.zeros((runs, images)),
        "jaw_boundary": np.zeros((runs, images, 4)),
        "images": np.ones((runs, images)),
    }


def _matrices(truth: np.ndarray, wrong: np.ndarray) -> np.ndarray:
    """... x C x C confusion matrices from true counts and wrong pixels per class."""
    return truth[..., None] * np.eye(len(CLASSES)) + wrong[..., None] * (DESTINATION - np.eye(len(CLASSES)))


def population_values(rng: np.random.Generator, regime: Regime, runs: int = 400, faces: int = 20_000) -> dict:
    """The estimands: per metric of COVERED, the mean over runs of each run's value pooled over (many) faces."""
    truth = _truth(rng, faces)
    image_offsets = _offsets(rng, faces, regime.image_sd)
    present = np.ones(len(CLASSES), bool)
    values = defaultdict(list)
    for start in range(0, runs, 50):
        run_offsets = _offsets(rng, min(50, runs - start), regime.seed_sd)
        pooled = _matrices(truth.sum(0), _errors(rng, regime, truth, image_offsets, run_offsets).sum(1))
        table = metrics(pooled, MEAN_F1)
        values["f1_fg"].append(table["f1_fg"])
        values[RARE_KEY].append(table["f1"][..., RARE])
        counts = {k: v.sum(1) for k, v in _error_counts(rng, regime, truth, image_offsets, run_offsets).items()}
        errors = error_table(counts, MEAN_F1, present)
        for key in COVERED[2:]:
            values[key].append(errors[key])
    return {key: float(np.concatenate(found).mean()) for key, found in values.items()}


def simulate(regime: Regime, studies: int, seeds: int = 5, images: int = 100, replicates: int = 500, seed: int = 0):
    """Rates over `studies` null studies: false positives of the paired test (mean F1, rare class) and coverage of
    the single-configuration and difference intervals."""
    rng = np.random.default_rng(seed)
    truth_values = population_values(rng, regime)
    calls, covered = defaultdict(int), defaultdict(int)
    covered_difference = 0
    for study in range(studies):
        truth = _truth(rng, images)
        image_offsets = _offsets(rng, images, regime.image_sd)
        sides = []
        for _ in range(2):
            run_offsets = _offsets(rng, seeds, regime.seed_sd)
            confusion = _matrices(truth[None], _errors(rng, regime, truth, image_offsets, run_offsets))
            errors = _error_counts(rng, regime, truth, image_offsets, run_offsets)
            sides.append(Runs(confusion, np.zeros(confusion.shape[:2]), confusion.sum((2, 3)), errors))
        boot = Bootstrap(images, seed=study, replicates=replicates)
        classes = ClassSet.of(CLASSES, MEAN_F1, sides[0])
        for key, found in zip(COVERED, paired(boot, *sides, classes, list(COVERED))):
            calls[key] += found.p < 0.05
            covered_difference += key == "f1_fg" and found.low <= 0 <= found.high
        for key in COVERED:
            single = interval(boot, sides[0], classes, key)
            covered[key] += single.low <= truth_values[key] <= single.high
    return {
        "false_positive": {key: calls[key] / studies for key in COVERED},
        "coverage": {key: covered[key] / studies for key in COVERED},
        "coverage_difference": covered_difference / studies,
    }


def seed_share(regime: Regime, seeds: int = 5, images: int = 100, trials: int = 200) -> tuple[float, float]:
    """The share of a seed mean's variance (mean F1) that comes from the runs rather than the test images, and a
    run's standard deviation on fixed images."""
    rng = np.random.default_rng(1)
    truth = _truth(rng, images)
    image_offsets = _offsets(rng, images, regime.image_sd)
    fixed_images = []
    for _ in range(trials):  # new runs on the same images: the seed component
        wrong = _errors(rng, regime, truth, image_offsets, _offsets(rng, seeds, regime.seed_sd))
        fixed_images.append(metrics(_matrices(truth, wrong).sum(1), MEAN_F1)["f1_fg"].mean())
    run_offsets = _offsets(rng, seeds, regime.seed_sd)
    fixed_runs = []
    for _ in range(trials):  # new images under the same runs: the image component
        truth = _truth(rng, images)
        wrong = _errors(rng, regime, truth, _offsets(rng, images, regime.image_sd), run_offsets)
        fixed_runs.append(metrics(_matrices(truth, wrong).sum(1), MEAN_F1)["f1_fg"].mean())
    seed_var, image_var = np.var(fixed_images), np.var(fixed_runs)
    return float(seed_var / (seed_var + image_var)), float(np.sqrt(seed_var * seeds))


def measured_spread(study: Path) -> tuple[float, float, list[str]]:
    """The share of a run's variance (mean F1, clean test) that comes from its seed rather than the test images, and
    a run's SD, pooled over the study's configurations with two runs or more; and those configurations' names."""
    groups = defaultdict(list)
    for path in sorted(study.glob("runs/*/per_image.npz")):
        groups[re.sub(r"-s\d+$", "", path.parent.name)].append(path.parent)
    seed_vars, image_vars, names = [], [], []
    for name, folders in groups.items():
        if len(folders) < 2:
            continue
        arrays = [dict(np.load(folder / "per_image.npz")) for folder in folders]
        labels = json.loads((folders[0] / "metrics.json").read_text())["labels"]
        runs = Runs.stack(arrays, "test")
        classes = ClassSet.of(labels["names"], [labels["names"].index(c) for c in labels["mean_f1"]], runs)
        values = full_values(runs, classes, "f1_fg")
        boot = Bootstrap(runs.confusion.shape[1], replicates=500)
        seed_vars.append(np.var(values, ddof=1))  # a run's variance
        image_vars.append(np.var(boot.replicate_values(runs, classes, "f1_fg"), axis=0, ddof=1).mean())  # a run's
        names.append(f"{name} ({len(values)} runs)")
    if not names:
        raise SystemExit(f"--fit {study}: no configuration there has two runs with per_image.npz (runs/NAME-sK/)")
    seed_var, image_var = float(np.mean(seed_vars)), float(np.mean(image_vars))  # per run, on these images
    return seed_var / (seed_var + image_var), float(np.sqrt(seed_var)), names


def fitted_regime(study: Path, images: int) -> tuple[Regime, str]:
    """The regime whose seed share and run SD are nearest the study's own (a grid over the two spreads)."""
    share, run_sd, names = measured_spread(study)
    best, found = float("inf"), None
    for seed_sd in np.geomspace(0.005, 0.6, 16):
        for image_sd in np.geomspace(0.05, 2.0, 12):
            regime = Regime("fitted", float(seed_sd), float(image_sd))
            model_share, model_sd = seed_share(regime, 1, images, trials=100)  # one run's: as measured
            miss = (model_share - share) ** 2 + (np.log(model_sd / run_sd)) ** 2
            if miss < best:
                best, found = miss, (regime, model_share, model_sd)
    regime, model_share, model_sd = found
    note = (
        f"fitted to {study} ({', '.join(names)}): a run's seed share {share:.2f} and SD {100 * run_sd:.2f} mean-F1 "
        f"points measured, {model_share:.2f} and {100 * model_sd:.2f} in the model (seed_sd {regime.seed_sd:.3f}, "
        f"image_sd {regime.image_sd:.3f})"
    )
    return Regime(f"fitted ({study.name})", regime.seed_sd, regime.image_sd), note


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=1000, help="simulated studies per regime (default 1000)")
    parser.add_argument("--seeds", type=int, default=5, help="runs per configuration (default 5, the study's)")
    parser.add_argument("--images", type=int, default=100, help="test images (default 100, the synthetic split's)")
    parser.add_argument("--fit", type=Path, default=None, help="a study folder: add a regime fitted to its runs")
    args = parser.parse_args(argv)
    regimes = list(REGIMES)
    if args.fit is not None:
        regime, note = fitted_regime(args.fit, args.images)
        print(note)
        regimes.append(regime)
    for regime in regimes:
        start = time.perf_counter()
        rates = simulate(regime, args.studies, args.seeds, args.images)
        share, seed_sd = seed_share(regime, args.seeds, args.images)
        setting = (
            f"{args.studies} null studies of {args.seeds} + {args.seeds} runs on {args.images} test images; seed share "
            f"of a seed mean's variance {share:.2f}, a run's SD {100 * seed_sd:.2f} mean-F1 points"
        )
        print(f"{regime.name}:")
        positives = rates["false_positive"]
        print(
            f"  null false-positive rate at 0.05: {max(positives.values()):.3f} ("
            + ", ".join(f"{key} {rate:.3f}" for key, rate in positives.items())
            + f"; {setting})"
        )
        coverage = rates["coverage"]
        print(
            f"  interval coverage: {min(*coverage.values(), rates['coverage_difference']):.3f} (single configuration: "
            + ", ".join(f"{key} {rate:.3f}" for key, rate in coverage.items())
            + f"; difference of mean F1 {rates['coverage_difference']:.3f}; {time.perf_counter() - start:.0f} s)"
        )


if __name__ == "__main__":
    main()
