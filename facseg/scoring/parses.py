"""Scoring any parse: label-map PNGs made by anything (another tool, another paper's model) against a split of any
layout facseg reads, with the metrics and the keys of a run's metrics.json (`facseg score`). No torch.

The prediction of photo NAME is PRED_DIR/NAME.png, a 1-channel (or palette) PNG of the truth's size whose values are
the truth's class ids. Every problem is found before anything is scored, and each kind is said in one line naming
its files: ids of the split with no prediction, predictions of another size than their truth, class ids outside the
class set. Region metrics from one confusion matrix pooled over the split (facseg.metrics.confusion), the kinds of
error from each photo's counts (facseg.metrics.errors); a label map has no probabilities, so `rmse` is null.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from facseg.data.check import class_set, detect_format
from facseg.data.formats import LABEL_MODES, read_label
from facseg.data.labels import IGNORE, LabelMap
from facseg.data.layouts import open_layout
from facseg.metrics.confusion import metrics
from facseg.metrics.errors import ERROR_ARRAYS, ErrorRules, image_errors, pooled_errors, summed

log = logging.getLogger(__name__)
LISTED = 5  # files named per problem


class UnscorableParses(ValueError):
    """The predictions do not fit the split: one line per kind of problem, naming the files."""


def read_prediction(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        if image.mode not in LABEL_MODES:
            raise UnscorableParses(
                f"{path}: expected a 1-channel 8-bit (or palette) label map, found mode {image.mode}"
            )
        return np.asarray(image)


def score_parses(pred_dir: Path | str, truth_root: Path | str, split: str = "test", format: str | None = None) -> dict:
    """The metrics.json of the predictions in `pred_dir` against `split` of the dataset at `truth_root` (`format`:
    its layout; default: recognised from the folder)."""
    pred_dir, truth_root = Path(pred_dir), Path(truth_root)
    if not pred_dir.is_dir():
        raise UnscorableParses(f"{pred_dir}: no such folder of predicted label maps (NAME.png)")
    format = format or detect_format(truth_root)
    if format is None:
        raise UnscorableParses(
            f"{truth_root}: not a layout facseg reads (LaPa, CelebAMask-HQ, a folder with classes.yaml)"
        )
    labels = class_set(truth_root, format)
    files = open_layout(truth_root, format, len(labels)).files(split)
    preds = [pred_dir / f"{name}.png" for name in files.names]
    check_predictions(preds, files.labels, len(labels))
    extra = len(list(pred_dir.glob("*.png"))) - len(preds)
    if extra > 0:
        log.warning("%s: %d label maps are not in the %s split and are not scored", pred_dir, extra, split)
    rules = ErrorRules.of(labels)
    c = len(labels)
    confusion = np.zeros((c, c), np.int64)
    found: dict[str, list] = {name: [] for name in ERROR_ARRAYS}
    for index, (pred_path, truth_path) in enumerate(zip(preds, files.labels)):
        pred, truth = read_prediction(pred_path), read_label(truth_path, None, c)
        scored = truth != IGNORE
        image = np.bincount(truth[scored].astype(np.int64) * c + pred[scored], minlength=c * c).reshape(c, c)
        confusion += image
        for name, value in image_errors(pred, truth, rules, files.points(index), image).items():
            found[name].append(value)
    return results(confusion, {k: np.stack(v) for k, v in found.items()}, labels, "test" if split == "test" else split)


def check_predictions(preds: list[Path], truths: list[Path], num_classes: int) -> None:
    """Raises UnscorableParses with one line per kind of problem (a few files named each, and how many)."""
    problems: dict[str, list[str]] = {"missing": [], "size": [], "classes": []}
    for pred, truth in zip(preds, truths):
        if not pred.is_file():
            problems["missing"].append(pred.name)
            continue
        with Image.open(pred) as a, Image.open(truth) as b:
            if a.size != b.size:
                problems["size"].append(f"{pred.name} {a.size[0]}x{a.size[1]} (truth {b.size[0]}x{b.size[1]})")
                continue
        top = int(read_prediction(pred).max(initial=0))
        if top >= num_classes:
            problems["classes"].append(f"{pred.name} has {top}")
    lines = {
        "missing": "no prediction for {n} of the split's photos",
        "size": "{n} predictions are not their truth's size",
        "classes": f"{{n}} predictions hold class ids outside 0..{num_classes - 1}",
    }
    said = [
        f"{lines[kind].format(n=len(found))}: {', '.join(found[:LISTED])}{', ...' if len(found) > LISTED else ''}"
        for kind, found in problems.items()
        if found
    ]
    if said:
        raise UnscorableParses(f"{preds[0].parent}: " + "\n".join(said))


def results(confusion: np.ndarray, per_image: dict[str, np.ndarray], labels: LabelMap, prefix: str) -> dict[str, Any]:
    table = metrics(confusion, labels.ids(labels.mean_f1))
    out: dict[str, Any] = {f"{prefix}/{k}": float(table[k]) for k in ("miou", "f1_fg", "pixel_acc")}
    out[f"{prefix}/rmse"] = None  # a label map has no probabilities
    for i, name in enumerate(labels.names):
        out[f"{prefix}/iou/{name}"] = float(table["iou"][i])
        out[f"{prefix}/f1/{name}"] = float(table["f1"][i])
    errors = pooled_errors(summed(per_image), ErrorRules.of(labels), present=confusion.sum(1) > 0)
    out.update({f"{prefix}/{k}": v for k, v in errors.items()})
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in out.items()}
