"""The kinds of error of a parse that region overlap does not see, per image as additive counts, pooled over a split.

Per image (`image_errors`), per class: boundary F's counts at 1, 2 and 4 px and Boundary IoU's at 2 and 5 px
(facseg.metrics.boundary), HD95 and extra fragments (facseg.metrics.structure); per face: whether the parse is
plausible, and the jawline (facseg.metrics.jaw). Each class is worked on inside the bounding box of its two masks
and a pixel around it, so that small parts cost little: its boundaries, bands and components there are those of the
whole image. Distances are between boundary pixels only (k-d trees), exact.

Pooled (`pooled_errors`) as the confusion matrices are, by summing each image's counts: the keys a run's
metrics.json gives under each condition's prefix, per class with `/<class>` after them, and their means over the
class set's `mean_f1` classes (as `f1_fg`): `bf1/1px`, `bf1/2px`, `bf1/4px`, `biou/2px`, `biou/5px` (fractions, as
f1), `hd95` (pixels, the mean over the images holding the class on either side), `fragments` (extra components
per face; the headline sums the mean-F1 classes'), `anatomy_ok` (the share of plausible faces), `jaw_nme` where the
photos have landmarks and `jaw_bf1/2px` where they have none (the other NaN). A class the split's truth lacks has
none of them (NaN), as it has no F1.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facseg.data.labels import IGNORE, LabelMap
from facseg.metrics.boundary import (
    band_counts,
    boundary_counts,
    boundary_distances,
    boundary_map,
    f_of_counts,
    iou_of_counts,
)
from facseg.metrics.jaw import JAW_RADIUS, jaw_counts, jaw_nme
from facseg.metrics.structure import components, extra_fragments, hd95, regions, sides_swapped

RADII = (1, 2, 4)  # boundary F's tolerances, px
WIDTHS = (2, 5)  # Boundary IoU's band widths, px
# Around a class's box, one pixel of its masks' outside: all that a boundary, a band or a component looks at beyond
# the box (an erosion treats the box's edge as outside, or inside, only where the image's edge is).
MARGIN = 1
ERROR_ARRAYS = ("boundary", "band", "hd95", "fragments", "anatomy_ok", "jaw_nme", "jaw_boundary")
ERROR_METRICS = ("bf1", "biou", "hd95", "fragments", "anatomy_ok", "jaw_nme", "jaw_bf1")  # keys' first parts


def is_error_key(key: str) -> bool:
    return key.split("/", 1)[0] in ERROR_METRICS


@dataclass(frozen=True)
class ErrorRules:
    """What the kinds of error need of a class set (facseg.data.labels.LabelMap)."""

    names: tuple[str, ...]
    mean_f1: tuple[int, ...]
    single: tuple[int, ...] = ()
    sides: tuple[tuple[int, int], ...] = ()
    face: tuple[int, ...] = ()
    eyes: tuple[int, ...] = ()

    @classmethod
    def of(cls, labels: LabelMap) -> ErrorRules:
        return cls(
            names=labels.names,
            mean_f1=tuple(labels.ids(labels.mean_f1)),
            single=tuple(labels.single()),
            sides=tuple(labels.sides()),
            face=tuple(labels.ids(labels.face)),
            eyes=tuple(labels.ids(labels.parts.get("eyes", ()))),
        )

    def shapes(self) -> dict[str, tuple[tuple[int, ...], type]]:
        """Each per-image array's shape (one image) and dtype."""
        c = len(self.names)
        return {
            "boundary": ((c, len(RADII), 4), np.int64),
            "band": ((c, len(WIDTHS), 2), np.int64),
            "hd95": ((c,), np.float64),
            "fragments": ((c,), np.int64),
            "anatomy_ok": ((), np.int64),
            "jaw_nme": ((), np.float64),
            "jaw_boundary": ((4,), np.int64),
        }


def image_errors(
    pred: np.ndarray,
    truth: np.ndarray,
    rules: ErrorRules,
    landmarks: np.ndarray | None = None,
    confusion: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """One image's counts (ERROR_ARRAYS, shapes as `rules.shapes()`). `pred`, `truth`: H x W class ids (a truth
    pixel of IGNORE belongs to no class, in either map); `landmarks`: LaPa's 106 x 2 points in the same pixels, or
    None; `confusion`: the image's C x C matrix (truth x prediction) over its scored pixels, if it is at hand: a
    class absent from both maps is skipped without a look at the pixels."""
    c = len(rules.names)
    h, w = truth.shape
    diagonal = float(np.hypot(h, w))
    if confusion is None or (truth == IGNORE).any():
        pred = np.where(truth == IGNORE, IGNORE, pred)  # an unscored pixel is in neither map's classes
        scored = truth != IGNORE
        confusion = np.bincount(truth[scored].astype(np.int64) * c + pred[scored], minlength=c * c).reshape(c, c)
    out = {name: np.zeros(shape, dtype) for name, (shape, dtype) in rules.shapes().items()}
    out["hd95"][:] = np.nan
    too_many = False  # regions of a `single` class
    for k in np.flatnonzero(confusion.sum(0) + confusion.sum(1)):  # the classes on either side
        pred_mask, truth_mask = (pred == k).view(np.uint8), (truth == k).view(np.uint8)
        x, y, bw, bh = cv2.boundingRect(pred_mask | truth_mask)
        rows = slice(max(y - MARGIN, 0), min(y + bh + MARGIN, h))
        cols = slice(max(x - MARGIN, 0), min(x + bw + MARGIN, w))
        pred_mask, truth_mask = pred_mask[rows, cols], truth_mask[rows, cols]
        distances = boundary_distances(boundary_map(pred_mask), boundary_map(truth_mask))
        out["boundary"][k] = boundary_counts(*distances, RADII)
        out["band"][k] = band_counts(pred_mask, truth_mask, WIDTHS)
        out["hd95"][k] = min(hd95(*distances), diagonal)
        count, labels = components(pred_mask)
        out["fragments"][k] = extra_fragments(count, labels, truth_mask)
        if k in rules.single:
            too_many |= regions(pred_mask, labels, count) > max(1, regions(truth_mask))
    out["anatomy_ok"][...] = not too_many and not sides_swapped(confusion, rules.sides)
    has_landmarks = landmarks is not None and bool(np.isfinite(landmarks).all())
    out["jaw_nme"][...] = jaw_nme(pred, landmarks, list(rules.face)) if has_landmarks and rules.face else np.nan
    if not has_landmarks and rules.face and rules.eyes:
        out["jaw_boundary"][:] = jaw_counts(pred, truth, list(rules.face), list(rules.eyes))
    return out


def additive(per_image: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-image arrays (`...` x ERROR_ARRAYS' shapes) as counts that add over images: HD95 and the jaw's NME as
    their sum and count (NaN: not counted), `images` as ones. Summed over images, or weighted by a bootstrap's
    draws, they pool (`error_table`)."""
    out = {name: per_image[name] for name in ("boundary", "band", "fragments", "anatomy_ok", "jaw_boundary")}
    for name, key in (("hd95", "hd95"), ("jaw", "jaw_nme")):
        values = per_image[key]
        out[f"{name}_sum"], out[f"{name}_count"] = np.nan_to_num(values, nan=0.0), np.isfinite(values).astype(np.int64)
    out["images"] = np.ones(per_image["anatomy_ok"].shape, np.int64)
    return out


def summed(per_image: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The split's sums of per-image arrays (N x ...): what pools."""
    return {name: value.sum(0) for name, value in additive(per_image).items()}


def error_table(sums: dict[str, np.ndarray], mean_f1: list[int], present: np.ndarray) -> dict[str, np.ndarray]:
    """The kinds of error from summed counts with any leading shape L (seeds, bootstrap replicates): each key of the
    module's docstring as an L array, and its per-class values as `<key>_class` (L x C). `present`: the classes the
    split's truth holds (C bools); the others are NaN. A class of them that a subset of the images lacks in its
    truth is NaN too, and left out of that subset's means."""
    f = f_of_counts(sums["boundary"])  # L x C x R
    iou = iou_of_counts(sums["band"])  # L x C x W
    images = sums["images"].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = {
            **{f"bf1/{t}px": f[..., i] for i, t in enumerate(RADII)},
            **{f"biou/{d}px": iou[..., i] for i, d in enumerate(WIDTHS)},
            "hd95": np.where(sums["hd95_count"] > 0, sums["hd95_sum"] / sums["hd95_count"], np.nan),
            "fragments": sums["fragments"] / images[..., None],
        }
        out: dict[str, np.ndarray] = {}
        averaged = list(mean_f1)
        for key, values in per_class.items():
            values = np.where(np.asarray(present, bool), values, np.nan)
            chosen = values[..., averaged]
            counted = np.isfinite(chosen)
            if key == "fragments":  # per face, over the mean-F1 classes together
                out[key] = np.where(counted.any(-1), np.where(counted, chosen, 0).sum(-1), np.nan)
            else:
                out[key] = np.where(counted, chosen, 0).sum(-1) / counted.sum(-1)
            out[f"{key}_class"] = values
        out["anatomy_ok"] = sums["anatomy_ok"] / images
        out["jaw_nme"] = np.where(sums["jaw_count"] > 0, sums["jaw_sum"] / sums["jaw_count"], np.nan)
        out[f"jaw_bf1/{JAW_RADIUS}px"] = f_of_counts(sums["jaw_boundary"])
    return out


def pooled_errors(sums: dict[str, np.ndarray], rules: ErrorRules, present: np.ndarray) -> dict[str, float]:
    """The keys of the module's docstring, per class with `/<class>` after them, from a split's sums (`summed`; or a
    metric's pooled state); `present`: the classes the split's truth holds."""
    table = error_table(sums, list(rules.mean_f1), present)
    out = {}
    for key, values in table.items():
        if key.endswith("_class"):
            out.update({f"{key[: -len('_class')]}/{name}": float(values[i]) for i, name in enumerate(rules.names)})
        else:
            out[key] = float(values)
    return out


def errors_of(pred: np.ndarray, truth: np.ndarray, labels: LabelMap | str = "lapa", landmarks=None) -> dict[str, float]:
    """Two label maps' kinds of error, as a run's keys (`bf1/2px`, `hd95/nose`, ...): the public entry for a parse
    made anywhere. `labels`: a class set or a shipped one's name; `landmarks`: LaPa's 106 x 2 points, if any."""
    labels = LabelMap.named(labels) if isinstance(labels, str) else labels
    rules = ErrorRules.of(labels)
    found = image_errors(pred, truth, rules, landmarks)
    present = np.bincount(truth[truth != IGNORE].ravel(), minlength=len(labels))[: len(labels)] > 0
    return pooled_errors(summed({k: v[None] for k, v in found.items()}), rules, present)
