"""What a tested run leaves behind for reports and dashboards, beside metrics.json.

- `confusion.json`: the pooled test confusion matrices (rows: truth, columns: prediction), clean and occluded.
- `samples.npz`: the first test images as crops, with truth and prediction, clean and occluded (`STAGE/KEY`).
- `cost.json`: parameters, GFLOPs and inference latency of the net (timings vary; metrics.json stays exact).
- W&B: per-class table, confusion matrices, and the samples as images with class-labelled masks.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl

from facseg.data.classes import CLASS_NAMES
from facseg.io import json_number, write_bytes, write_json
from facseg.models.module import FaceSegModule

RESULT_PREFIXES = ("test/", "occluded/")
CONFUSION_FILE, SAMPLES_FILE, COST_FILE = "confusion.json", "samples.npz", "cost.json"
STAGES = ("test", "occluded")


def test_metrics(trainer: pl.Trainer) -> dict[str, float | None]:
    return {k: json_number(v) for k, v in trainer.callback_metrics.items() if k.startswith(RESULT_PREFIXES)}


def write_test_details(module: FaceSegModule, output_dir: Path) -> None:
    confusion = {stage: module.confusion[stage].tolist() for stage in STAGES if stage in module.confusion}
    write_json(output_dir / CONFUSION_FILE, {"classes": list(CLASS_NAMES), **confusion})
    arrays = {f"{stage}/{key}": value for stage, sample in module.samples.items() for key, value in sample.items()}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_bytes(output_dir / SAMPLES_FILE, buffer.getvalue())


def log_to_wandb(loggers: list, module: FaceSegModule, metrics: dict[str, Any]) -> None:
    """Media for the W&B run (offline or live) of this job; nothing when W&B is not among the loggers."""
    runs = [logger.experiment for logger in loggers if type(logger).__name__ == "WandbLogger"]
    if not runs:
        return
    import wandb

    labels = dict(enumerate(CLASS_NAMES))
    columns = ["class"] + [f"{stage}/{m}" for stage in STAGES for m in ("iou", "f1")]
    rows = [[name, *(metrics.get(f"{stage}/{m}/{name}") for stage in STAGES for m in ("iou", "f1"))]
            for name in CLASS_NAMES]  # fmt: skip
    media: dict[str, Any] = {"test/per_class": wandb.Table(columns=columns, data=rows)}
    for stage, confusion in module.confusion.items():
        if stage in STAGES:
            cells = [[CLASS_NAMES[i], CLASS_NAMES[j], int(n)] for i, row in enumerate(confusion.tolist())
                     for j, n in enumerate(row)]  # fmt: skip
            media[f"{stage}/confusion_matrix"] = wandb.plot_table(
                "wandb/confusion_matrix/v1",
                wandb.Table(columns=["Actual", "Predicted", "nPredictions"], data=cells),
                {"Actual": "Actual", "Predicted": "Predicted", "nPredictions": "nPredictions"},
                {"title": f"{stage} confusion matrix (pixels)"},
            )
    for stage, sample in module.samples.items():
        media[f"{stage}/samples"] = [
            wandb.Image(
                image,
                caption=f"{stage} image {i}",
                masks={
                    "prediction": {"mask_data": prediction, "class_labels": labels},
                    "ground_truth": {"mask_data": label, "class_labels": labels},
                },
            )  # fmt: skip
            for i, (image, label, prediction) in enumerate(zip(sample["image"], sample["label"], sample["prediction"]))
        ]
    for run in runs:
        run.log(media)
