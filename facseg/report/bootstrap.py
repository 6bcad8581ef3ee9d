"""Intervals and tests about configurations (architectures and their settings), not about the runs one study trained.

The trained run is the unit of replication: a configuration's seeds are a sample of the runs it could have given,
and the test images a sample of the faces it could meet. Every metric is computed as the literature computes it,
from a confusion matrix pooled over the test images (facseg.metrics.confusion), over one class set fixed by the
split's truth (`Runs.present`), the same for every configuration, condition and replicate.

- `Runs`: one configuration's seeds, each seed's per-image matrices (S x N x C x C), squared errors and kinds of
  error's counts (facseg.metrics.errors), on the same N test images (per_image.npz of each run); the kinds of
  error pool over a draw of images as the matrices do.
- `interval`: the mean over seeds of the metric (each seed's metric on the whole split) and its 95 % interval,
  mean +- t * SE with SE^2 = s^2 / S + V_images: `s^2`, the variance between the seeds' values, with S - 1 degrees
  of freedom (a t, not a z: 5 seeds leave a t with 4), and `V_images`, the variance of the seed mean over a
  bootstrap of the test images with the runs held fixed (`Bootstrap`: one draw of images for the whole report,
  so both sides of a pair are resampled together). The degrees of freedom of the sum are Welch-Satterthwaite's.
  The interval is made on the metric's variance-stabilising scale (arcsin sqrt for fractions, sqrt for
  non-negative quantities) and mapped back, so that it stays inside the metric's range (a rare class's F1 near 0
  read 0.1 [-7.2, 7.4] on the metric's own scale). With `minus` (the same runs at another stage: clean minus
  occluded), each seed's own difference is the value, on the metric's scale.
- `paired`: A minus B, the difference the tables show (of the seed means), with the same two components per side
  (Welch: the runs of A and of B are independent draws, the images paired through the shared draw) and the
  two-sided p-value of its t statistic, so that p < 0.05 exactly when the 95 % interval leaves out 0. A side with
  one run (a seed ensemble, an arm's single ensemble) has no seed variance to estimate: the comparison is then
  conditional on the trained runs (`conditional`), over test images only, and the tables say so.
- `holm`: Holm's step-down adjustment of a family of p-values (the report's: every test it prints).

The p-value of a t statistic is continuous: it is not bounded below by the number of runs as an exact permutation
of whole runs is (1/126 with 5 a side), so a correction over every test of a report can still call a difference.
`make calibrate-stats` (facseg.report.calibration) simulates studies and shows the rates these hold.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.special import stdtr, stdtrit

from facseg.metrics.confusion import metrics, value
from facseg.metrics.errors import ERROR_ARRAYS, additive, error_table, is_error_key

REPLICATES = 2000  # image bootstrap replicates: the image variance of a seed mean settles to ~3 %
LEVEL = 0.95


@dataclass
class Runs:
    """One configuration's test results: `confusion` S x N x C x C, `squared_error` and `pixels` S x N; `errors`,
    the kinds of error's per-image counts (facseg.metrics.errors.additive, S x N x ...), where the runs kept them."""

    confusion: np.ndarray
    squared_error: np.ndarray
    pixels: np.ndarray
    errors: dict[str, np.ndarray] | None = None

    @property
    def seeds(self) -> int:
        return len(self.confusion)

    @classmethod
    def stack(cls, per_seed: Sequence[dict[str, np.ndarray]], stage: str) -> Runs:
        """From per_image.npz contents, one per seed, all on the same test images in the same order."""
        errors = None
        if all(f"{stage}/{name}" in a for a in per_seed for name in ERROR_ARRAYS):
            counts = [additive({name: a[f"{stage}/{name}"] for name in ERROR_ARRAYS}) for a in per_seed]
            errors = {k: np.stack([c[k] for c in counts]).astype(np.float64) for k in counts[0]}
        return cls(
            *(
                np.stack([a[f"{stage}/{key}"].astype(np.float64) for a in per_seed])
                for key in ("confusion", "squared_error", "pixels")
            ),
            errors,
        )

    def images(self, keep: np.ndarray) -> Runs:
        """The same runs on a subset of the images (a boolean mask over them)."""
        errors = {k: v[:, keep] for k, v in self.errors.items()} if self.errors is not None else None
        return Runs(self.confusion[:, keep], self.squared_error[:, keep], self.pixels[:, keep], errors)

    def present(self) -> list[int]:
        """The classes the images' truth holds (rows of the matrices): the class set of every mean."""
        return np.flatnonzero(self.confusion[0].sum((0, 2)) > 0).tolist()


@dataclass(frozen=True)
class ClassSet:
    """What a mean averages: `mean_f1` (the headline mean F1's classes) and `present` (mIoU's), both restricted to
    classes the split's truth holds; `names` to look per-class keys up."""

    names: tuple[str, ...]
    mean_f1: tuple[int, ...]
    present: tuple[int, ...]

    @classmethod
    def of(cls, names: Sequence[str], mean_f1: Sequence[int], truth: Runs) -> ClassSet:
        present = truth.present()
        return cls(tuple(names), tuple(i for i in mean_f1 if i in present), tuple(present))

    def values(self, confusion: np.ndarray, squared_error: np.ndarray, pixels: np.ndarray, key: str) -> np.ndarray:
        return value(metrics(confusion, self.mean_f1, squared_error, pixels, present=self.present), key, self.names)

    def error_values(self, sums: dict[str, np.ndarray] | None, key: str, shape: tuple[int, ...]) -> np.ndarray:
        """A kind of error's values from summed counts (facseg.metrics.errors.error_table); NaN (of `shape`) where
        the runs kept none."""
        if sums is None:
            return np.full(shape, np.nan)
        present = np.isin(np.arange(len(self.names)), self.present)
        return error_value(error_table(sums, list(self.mean_f1), present), key, self.names)


def error_value(table: dict[str, np.ndarray], key: str, names: Sequence[str]) -> np.ndarray:
    """`bf1/2px` or per class `bf1/2px/skin` from an error table."""
    if key in table:
        return table[key]
    name, cls = key.rsplit("/", 1)
    return table[f"{name}_class"][..., list(names).index(cls)]


class Bootstrap:
    """Shared image draws, so that every interval of one report resamples the same images (paired throughout)."""

    def __init__(self, images: int, seed: int = 0, replicates: int = REPLICATES) -> None:
        self.replicates = replicates
        # Image weights: how often each test image is drawn in each replicate (B x N).
        rng = np.random.default_rng(seed)
        self.weights = rng.multinomial(images, np.full(images, 1 / images), size=replicates).astype(np.float64)
        self._tables: dict[tuple, tuple[Runs, dict[str, np.ndarray]]] = {}

    def replicate_values(self, runs: Runs, classes: ClassSet, key: str, keep: np.ndarray | None = None) -> np.ndarray:
        """B x S: each seed's metric on each replicate's draw of the images (`keep`: those of a subset only)."""
        if is_error_key(key):
            return self._error_values(runs, classes, key, keep)
        cached = (id(runs), classes, None if keep is None else keep.tobytes())
        if cached not in self._tables:
            weights = self.weights if keep is None else self.weights[:, keep]
            if weights.shape[1] != runs.confusion.shape[1]:
                raise ValueError(
                    f"the bootstrap draws {weights.shape[1]} images but the runs hold {runs.confusion.shape[1]}: "
                    "every configuration of a report must be scored on the same test images"
                )
            c = runs.confusion.shape[-1]
            pooled = np.einsum("bn,sne->bse", weights, runs.confusion.reshape(runs.seeds, -1, c * c))
            pooled = pooled.reshape(self.replicates, runs.seeds, c, c)
            table = metrics(
                pooled,
                classes.mean_f1,
                weights @ runs.squared_error.T,
                weights @ runs.pixels.T,
                present=classes.present,
            )
            self._tables[cached] = (runs, table)  # the runs kept alive, so that their id is not reused
        return value(self._tables[cached][1], key, classes.names)

    def _error_values(self, runs: Runs, classes: ClassSet, key: str, keep: np.ndarray | None) -> np.ndarray:
        cached = ("errors", id(runs), classes, None if keep is None else keep.tobytes())
        if cached not in self._tables:
            weights = self.weights if keep is None else self.weights[:, keep]
            sums = None
            if runs.errors is not None:  # each count weighted by how often each image is drawn: B x S x ...
                sums = {k: np.einsum("bn,sn...->bs...", weights, v) for k, v in runs.errors.items()}
            self._tables[cached] = (runs, sums)
        return classes.error_values(self._tables[cached][1], key, (self.replicates, runs.seeds))


@dataclass(frozen=True)
class Estimate:
    """A mean (or a difference of means) over seeds, its 95 % interval, and for a difference its p-value."""

    mean: float
    low: float
    high: float
    seeds: int  # runs whose value is defined (per side, the smaller)
    se: float = float("nan")
    df: float = float("nan")
    p: float = float("nan")
    conditional: bool = False  # one run a side: over test images only, given the trained runs


def full_values(runs: Runs, classes: ClassSet, key: str) -> np.ndarray:
    """Per seed, the metric on the whole test split."""
    if is_error_key(key):
        sums = {k: v.sum(1) for k, v in runs.errors.items()} if runs.errors is not None else None
        return classes.error_values(sums, key, (runs.seeds,))
    return classes.values(runs.confusion.sum(1), runs.squared_error.sum(1), runs.pixels.sum(1), key)


@dataclass
class _Side:
    values: np.ndarray  # S: each run's value on the whole split (finite only)
    replicates: np.ndarray  # B: the mean over runs of each replicate's values

    @property
    def seed_variance(self) -> float:
        """The variance of the seed mean from the spread between runs; 0 where one run leaves none to measure."""
        return float(np.var(self.values, ddof=1) / len(self.values)) if len(self.values) > 1 else 0.0


def _side(
    boot: Bootstrap, runs: Runs, classes: ClassSet, key: str, minus: Runs | None, keep, scale: Scale | None = None
) -> _Side:
    """Each run's value and each replicate's mean over runs; `scale`: of the values on a transformed scale."""
    full = full_values(runs, classes, key)
    per_replicate = boot.replicate_values(runs, classes, key, keep)
    if minus is not None:
        full = full - full_values(minus, classes, key)
        per_replicate = per_replicate - boot.replicate_values(minus, classes, key, keep)
    if scale is not None:
        full, per_replicate = scale.forward(full), scale.forward(per_replicate)
    defined = np.isfinite(full)
    with warnings.catch_warnings():  # a replicate where no run's value is defined stays NaN, without a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return _Side(full[defined], np.nanmean(per_replicate[:, defined], axis=1) if defined.any() else full[:0])


@dataclass(frozen=True)
class Scale:
    """A variance-stabilising scale for a bounded metric: its interval is made there and mapped back, so that it
    stays inside the metric's range (a rare class's F1 near 0, a plausible share near 1)."""

    forward: Callable[[np.ndarray], np.ndarray]
    back: Callable[[np.ndarray], np.ndarray]
    low: float
    high: float


# Fractions (F1, IoU, accuracies, boundary F, Boundary IoU, shares): the angular scale arcsin(sqrt(x)), defined at 0
# and 1 themselves; non-negative quantities (HD95, fragments per face, the jaw's NME, RMSE): the square root.
FRACTION = Scale(lambda x: np.arcsin(np.sqrt(np.clip(x, 0, 1))), lambda g: np.sin(g) ** 2, 0.0, np.pi / 2)
NON_NEGATIVE = Scale(lambda x: np.sqrt(np.maximum(x, 0)), np.square, 0.0, np.inf)
NON_NEGATIVE_METRICS = ("rmse", "hd95", "fragments", "jaw_nme")


def scale_of(key: str) -> Scale:
    return NON_NEGATIVE if key.split("/", 1)[0] in NON_NEGATIVE_METRICS else FRACTION


def _combine(mean: float, sides: list[_Side], image_variance: float, images: int) -> Estimate:
    """Mean +- t * SE from the seed components of `sides` and the image component; the t test of mean = 0."""
    seeds = min(len(s.values) for s in sides)
    if not np.isfinite(mean) or seeds == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), seeds)
    conditional = any(len(s.values) < 2 for s in sides)
    parts = [(0.0 if conditional else s.seed_variance, len(s.values) - 1) for s in sides]
    parts.append((image_variance, max(images - 1, 1)))
    variance = sum(v for v, _ in parts)
    if variance <= 0:
        p = 1.0 if mean == 0 else 0.0
        return Estimate(mean, mean, mean, seeds, 0.0, float("inf"), p, conditional)
    df = variance**2 / sum(v**2 / d for v, d in parts if v > 0)  # Welch-Satterthwaite
    se = float(np.sqrt(variance))
    half = float(stdtrit(df, 0.5 + LEVEL / 2)) * se
    p = float(2 * stdtr(df, -abs(mean) / se))
    return Estimate(mean, mean - half, mean + half, seeds, se, float(df), p, conditional)


def _image_variance(replicates: np.ndarray) -> float:
    finite = replicates[np.isfinite(replicates)]
    return float(np.var(finite, ddof=1)) if len(finite) > 1 else 0.0


def interval(
    boot: Bootstrap,
    runs: Runs,
    classes: ClassSet,
    key: str,
    minus: Runs | None = None,
    keep: np.ndarray | None = None,
) -> Estimate:
    """The mean over seeds and its 95 % interval; with `minus`, of each seed's difference between the two (say
    clean minus occluded: the same seeds and images); `keep`: on a subset of the images only.

    A metric's own interval is made on its variance-stabilising scale (`scale_of`) and mapped back, so that it stays
    inside the metric's range, then widened where needed to hold the mean (the scale's curvature can leave a skewed
    mean just outside); a difference's stays on the metric's scale."""
    images = boot.weights.shape[1] if keep is None else int(np.count_nonzero(keep))
    side = _side(boot, runs, classes, key, minus, keep)
    mean = float(side.values.mean()) if len(side.values) else float("nan")
    found = _combine(mean, [side], _image_variance(side.replicates), images)
    if minus is not None or not np.isfinite(mean):
        return found
    scale = scale_of(key)
    side = _side(boot, runs, classes, key, None, keep, scale)
    on_scale = _combine(float(side.values.mean()), [side], _image_variance(side.replicates), images)
    low, high = (float(scale.back(np.clip(v, scale.low, scale.high))) for v in (on_scale.low, on_scale.high))
    return replace(found, low=min(low, mean), high=max(high, mean))


def paired(boot: Bootstrap, a: Runs, b: Runs, classes: ClassSet, keys: Sequence[str]) -> list[Estimate]:
    """A minus B for each key: the difference of the seed means, its 95 % interval and two-sided p-value (runs of
    the two sides independent, test images paired)."""
    out = []
    for key in keys:
        sides = [_side(boot, runs, classes, key, None, None) for runs in (a, b)]
        if any(len(s.values) == 0 for s in sides):
            out.append(Estimate(float("nan"), float("nan"), float("nan"), 0))
            continue
        mean = float(sides[0].values.mean() - sides[1].values.mean())
        image_variance = _image_variance(sides[0].replicates - sides[1].replicates)
        out.append(_combine(mean, sides, image_variance, boot.weights.shape[1]))
    return out


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (NaN stays NaN and does not count)."""
    p = np.asarray(p_values, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    adjusted = np.full(len(p), np.nan)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()
