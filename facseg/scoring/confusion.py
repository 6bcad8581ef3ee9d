"""The metrics of pooled confusion matrices, in NumPy: what the report's intervals resample (facseg.report.bootstrap)
and what the evaluator's under-occluder rates are. The same definitions as the torchmetrics metrics that training
logs (facseg.scoring.metrics), for matrices of any leading shape (replicates, seeds, images)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facseg.data.labels import BACKGROUND


def metrics(confusion: np.ndarray, mean_f1: Sequence[int], squared_error=None, pixels=None) -> dict[str, np.ndarray]:
    """The metrics of pooled matrices `...` x C x C (any leading shape): `f1`, `iou` (... x C), `f1_fg`, `miou`,
    `pixel_acc`, and `rmse` when the squared error and pixel count are given. NaN where a class is absent.

    Of an occluder's hidden pixels scored against the clean truth (what the occluder hides; facseg.scoring.evaluator):
    the share predicted as the class they hide, `hallucinated`, and as background, `not_face`, over the
    non-background truth, and per class (`hallucinated_class`, `not_face_class`, ... x C: of each hidden class's
    pixels)."""
    true_positive = np.diagonal(confusion, axis1=-2, axis2=-1)
    in_target, in_pred = confusion.sum(-1), confusion.sum(-2)
    hidden = in_target[..., 1:].sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = true_positive / (in_target + in_pred - true_positive)
        f1 = 2 * true_positive / (in_target + in_pred)
        out = {
            "f1": f1,
            "iou": iou,
            "f1_fg": nanmean(f1[..., list(mean_f1)]),
            "miou": nanmean(iou),
            "pixel_acc": true_positive.sum(-1) / confusion.sum((-2, -1)),
            "hallucinated": true_positive[..., 1:].sum(-1) / hidden,
            "not_face": confusion[..., 1:, BACKGROUND].sum(-1) / hidden,
            "hallucinated_class": true_positive / in_target,
            "not_face_class": confusion[..., :, BACKGROUND] / in_target,
        }
        if squared_error is not None:
            out["rmse"] = np.sqrt(squared_error / (pixels * confusion.shape[-1]))
    return out


def nanmean(values: np.ndarray) -> np.ndarray:
    counted = np.isfinite(values)
    with np.errstate(invalid="ignore"):
        return np.where(counted, values, 0).sum(-1) / counted.sum(-1)


def value(table: dict[str, np.ndarray], key: str, classes: Sequence[str]) -> np.ndarray:
    """`f1_fg`, `miou`, `pixel_acc`, `rmse`, `hallucinated`, `not_face`, or per class `f1/<class>`, `iou/<class>`,
    `hallucinated/<class>`, `not_face/<class>` from `metrics`' output."""
    if "/" in key:
        name, cls = key.split("/", 1)
        return table.get(f"{name}_class", table.get(name))[..., list(classes).index(cls)]
    return table[key]
