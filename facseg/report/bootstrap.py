"""Intervals and paired tests for segmentation metrics, from one confusion matrix per test image and seed.

Every metric here is computed as the literature computes it, from a confusion matrix pooled over the test images
(facseg.scoring.confusion), so resampling happens on the images, not on per-image scores:

- `Runs`: one configuration's seeds, each seed's per-image matrices (S x N x C x C) and squared errors, on the
  same N test images (per_image.npz of each run).
- `interval`: the mean over seeds of the metric, with a 95 % percentile interval from a two-level bootstrap: each
  replicate draws the seeds with replacement and the test images with replacement (one draw of images for all
  seeds: they were tested on the same images), pools each drawn seed's matrices with the image weights, and
  averages the metric over the drawn seeds. It covers both the seed-to-seed and the image-to-image variation.
- `paired`: the difference between two configurations on the same images: the same bootstrap with one shared
  draw of images (paired) and independent draws of each side's seeds gives the interval; the p-value is a paired
  permutation test over images (each image's seed-averaged matrices swapped between the two sides at random),
  two-sided, for every metric at once. `holm` corrects a family of p-values (the classes of one pair).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from facseg.scoring.confusion import metrics, nanmean, value

REPLICATES = 2000  # bootstrap replicates: percentiles at 2.5 % and 97.5 % settle to ~0.1 point
PERMUTATIONS = 2000


@dataclass
class Runs:
    """One configuration's test results: `confusion` S x N x C x C, `squared_error` and `pixels` S x N."""

    confusion: np.ndarray
    squared_error: np.ndarray
    pixels: np.ndarray

    @property
    def seeds(self) -> int:
        return len(self.confusion)

    @cached_property
    def fingerprint(self) -> int:
        """A number that identifies these results: what seeds their own random draws (Bootstrap)."""
        digest = hashlib.sha256()
        for array in (self.confusion, self.squared_error, self.pixels):
            digest.update(np.ascontiguousarray(array).tobytes())
        return int.from_bytes(digest.digest()[:8], "little")

    @classmethod
    def stack(cls, per_seed: Sequence[dict[str, np.ndarray]], stage: str) -> Runs:
        """From per_image.npz contents, one per seed, all on the same test images in the same order."""
        return cls(
            *(
                np.stack([a[f"{stage}/{key}"].astype(np.float64) for a in per_seed])
                for key in ("confusion", "squared_error", "pixels")
            )
        )


class Bootstrap:
    """Shared image draws, so that every interval of one report resamples the same images (paired throughout). The
    seed draws and permutations of a configuration (or pair) come from a generator of its own, seeded by its
    results: an interval does not depend on which other rows a report has, or in which order they come."""

    def __init__(self, images: int, seed: int = 0, replicates: int = REPLICATES) -> None:
        self.seed = seed
        self.replicates = replicates
        # Image weights: how often each test image is drawn in each replicate (B x N).
        rng = np.random.default_rng(seed)
        self.weights = rng.multinomial(images, np.full(images, 1 / images), size=replicates).astype(np.float64)
        self._tables: dict[int, tuple[Runs, dict[str, np.ndarray]]] = {}

    def rng(self, *keys: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *keys])

    def replicate_tables(self, runs: Runs, mean_f1: Sequence[int]) -> dict[str, np.ndarray]:
        """Per replicate and seed (B x S ...), the metrics of the image-weighted pooled matrices (kept per `runs`)."""
        if id(runs) in self._tables:
            return self._tables[id(runs)][1]
        c = runs.confusion.shape[-1]
        pooled = np.einsum("bn,sne->bse", self.weights, runs.confusion.reshape(runs.seeds, -1, c * c))
        table = metrics(
            pooled.reshape(self.replicates, runs.seeds, c, c),
            mean_f1,
            self.weights @ runs.squared_error.T,
            self.weights @ runs.pixels.T,
        )
        self._tables[id(runs)] = (runs, table)  # the runs kept alive, so that their id is not reused
        return table

    def seed_mean(self, per_seed: np.ndarray, *keys: int) -> np.ndarray:
        """B x S replicate values -> B: each replicate's mean over a draw of the seeds (with replacement), drawn by
        `keys` (the same keys, the same draws: for every metric of one configuration)."""
        seeds = per_seed.shape[1]
        draws = self.rng(*keys).integers(0, seeds, size=(self.replicates, seeds))
        return nanmean(np.take_along_axis(per_seed, draws, axis=1))


@dataclass
class Estimate:
    mean: float
    low: float
    high: float
    seeds: int  # seeds whose metric is defined (a class absent from a seed's test results has none)


def full_values(runs: Runs, mean_f1: Sequence[int], classes: Sequence[str], key: str) -> np.ndarray:
    """Per seed, the metric on the whole test split."""
    table = metrics(runs.confusion.sum(1), mean_f1, runs.squared_error.sum(1), runs.pixels.sum(1))
    return value(table, key, classes)


def _percentiles(samples: np.ndarray) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    if not len(finite):
        return float("nan"), float("nan")
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def interval(
    boot: Bootstrap, runs: Runs, mean_f1: Sequence[int], classes: Sequence[str], key: str, minus: Runs | None = None
) -> Estimate:
    """The mean over seeds and its 95 % interval; with `minus`, of the difference of the two (say clean minus
    occluded: the same seeds and images, so one draw of both)."""
    full = full_values(runs, mean_f1, classes, key)
    per_seed = value(boot.replicate_tables(runs, mean_f1), key, classes)
    if minus is not None:
        full = full - full_values(minus, mean_f1, classes, key)
        per_seed = per_seed - value(boot.replicate_tables(minus, mean_f1), key, classes)
    samples = boot.seed_mean(per_seed, runs.fingerprint)
    finite = full[np.isfinite(full)]
    mean = float(finite.mean()) if len(finite) else float("nan")
    return Estimate(mean, *_percentiles(samples), seeds=len(finite))


@dataclass
class Difference:
    key: str
    difference: float
    low: float
    high: float
    p: float


def paired(
    boot: Bootstrap,
    a: Runs,
    b: Runs,
    mean_f1: Sequence[int],
    classes: Sequence[str],
    keys: Sequence[str],
    permutations: int = PERMUTATIONS,
) -> list[Difference]:
    """A minus B for each key: the difference of the seed means, its bootstrap interval, the permutation p-value."""
    tables = [boot.replicate_tables(runs, mean_f1) for runs in (a, b)]
    # Each image's seed-averaged matrices: what the permutation swaps.
    mean_a, mean_b = a.confusion.mean(0), b.confusion.mean(0)
    pair = (a.fingerprint, b.fingerprint)  # the two sides' seeds drawn independently, and the flips, by the pair
    flips = boot.rng(*pair, 2).integers(0, 2, size=(permutations, len(mean_a))).astype(np.float64)
    c = mean_a.shape[-1]
    gap = (mean_b - mean_a).reshape(len(mean_a), c * c)
    permuted_a = (mean_a.sum(0).reshape(-1) + flips @ gap).reshape(permutations, c, c)
    permuted_b = mean_a.sum(0) + mean_b.sum(0) - permuted_a
    observed = [metrics(m.sum(0), mean_f1) for m in (mean_a, mean_b)]
    null = [metrics(m, mean_f1) for m in (permuted_a, permuted_b)]
    out = []
    for key in keys:
        full = [np.nanmean(full_values(runs, mean_f1, classes, key)) for runs in (a, b)]
        samples = [boot.seed_mean(value(table, key, classes), *pair, side) for side, table in enumerate(tables)]
        statistic = value(observed[0], key, classes) - value(observed[1], key, classes)
        null_statistics = value(null[0], key, classes) - value(null[1], key, classes)
        if np.isfinite(statistic):
            extreme = np.sum(np.abs(null_statistics) >= abs(statistic) - 1e-12)
            p = float((1 + extreme) / (1 + permutations))
        else:
            p = float("nan")
        out.append(Difference(key, float(full[0] - full[1]), *_percentiles(samples[0] - samples[1]), p))
    return out


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (NaN stays NaN and does not count)."""
    p = np.asarray(p_values, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite])]
    adjusted = np.full(len(p), np.nan)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()
