"""The metrics of pooled confusion matrices, in NumPy: what the report's intervals resample (facseg.report.bootstrap)
and what the evaluator's under-occluder rates are. The same definitions as the torchmetrics metrics that training
logs (facseg.metrics.region), for matrices of any leading shape (replicates, seeds, images)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facseg.data.labels import BACKGROUND


def metrics(
    confusion: np.ndarray, mean_f1: Sequence[int], squared_error=None, pixels=None, present: Sequence[int] | None = None
) -> dict[str, np.ndarray]:
    """The metrics of pooled matrices `...` x C x C (any leading shape): `f1`, `iou` (... x C), `f1_fg`, `miou`,
    `pixel_acc`, and `rmse` when the squared error (summed over classes) and pixel count are given.

    The means average one class set: `present`, the classes the split's truth holds (mIoU; `mean_f1` those of them
    in the mean F1). Given, it is the same for every matrix, and a class of it that one matrix (a bootstrap
    replicate, a subset) lacks in both truth and prediction scores 1, agreement on its absence; not given, each
    matrix's own truth decides, and a class it lacks is NaN and left out of the means, predicted or not.

    Of an occluder's hidden pixels scored against the clean truth (what the occluder hides; facseg.scoring.evaluator):
    the share predicted as the class they hide, `hallucinated`, and as background, `not_face`, over the
    non-background truth, and per class (`hallucinated_class`, `not_face_class`, ... x C: of each hidden class's
    pixels); `predicted_as_class` (... x C): the share of the non-background truth predicted as each class (as a
    real object's own class, say eye_g under pasted glasses)."""
    true_positive = np.diagonal(confusion, axis1=-2, axis2=-1)
    in_target, in_pred = confusion.sum(-1), confusion.sum(-2)
    hidden = in_target[..., 1:].sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = true_positive / (in_target + in_pred - true_positive)
        f1 = 2 * true_positive / (in_target + in_pred)
        if present is None:
            absent = in_target == 0
            iou, f1 = np.where(absent, np.nan, iou), np.where(absent, np.nan, f1)
            averaged_f1, averaged = list(mean_f1), slice(None)
        else:
            averaged = list(present)
            averaged_f1 = [i for i in mean_f1 if i in averaged]
            agreed = (in_target + in_pred == 0)[..., averaged]
            iou[..., averaged] = np.where(agreed, 1.0, iou[..., averaged])
            f1[..., averaged] = np.where(agreed, 1.0, f1[..., averaged])
        out = {
            "f1": f1,
            "iou": iou,
            "f1_fg": nanmean(f1[..., averaged_f1]),
            "miou": nanmean(iou[..., averaged]),
            "pixel_acc": true_positive.sum(-1) / confusion.sum((-2, -1)),
            "hallucinated": true_positive[..., 1:].sum(-1) / hidden,
            "not_face": confusion[..., 1:, BACKGROUND].sum(-1) / hidden,
            "hallucinated_class": true_positive / in_target,
            "not_face_class": confusion[..., :, BACKGROUND] / in_target,
            "predicted_as_class": confusion[..., 1:, :].sum(-2) / hidden[..., None],
        }
        if squared_error is not None:
            out["rmse"] = np.sqrt(squared_error / pixels)  # per pixel, summed over classes: unused classes add 0
    return out


def nanmean(values: np.ndarray) -> np.ndarray:
    counted = np.isfinite(values)
    with np.errstate(invalid="ignore"):
        return np.where(counted, values, 0).sum(-1) / counted.sum(-1)


def value(table: dict[str, np.ndarray], key: str, classes: Sequence[str]) -> np.ndarray:
    """`f1_fg`, `miou`, `pixel_acc`, `rmse`, `hallucinated`, `not_face`, or per class `f1/<class>`, `iou/<class>`,
    `hallucinated/<class>`, `not_face/<class>`, `predicted_as/<class>` from `metrics`' output."""
    if "/" in key:
        name, cls = key.split("/", 1)
        return table.get(f"{name}_class", table.get(name))[..., list(classes).index(cls)]
    return table[key]
