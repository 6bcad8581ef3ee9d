"""What a test puts in its W&B run beside the numbers: the per-class table, confusion matrices and sample images."""

from __future__ import annotations

from typing import Any

import numpy as np

from facseg.runtime.loggers import is_wandb


def log_media(
    loggers: list,
    results: dict[str, float | None],
    classes: list[str],
    stages: list[str],
    confusion: dict[str, np.ndarray],
    samples: dict[str, dict[str, np.ndarray]],
) -> None:
    """Into the W&B run (offline or live) of `loggers`, if any: the per-class IoU and F1 of `stages` (clean and the
    primary occluded condition), their pooled confusion matrices, and the sample crops with truth and prediction."""
    runs = [logger.experiment for logger in loggers if is_wandb(logger)]
    if not runs:
        return
    import wandb

    columns = ["class"] + [f"{stage}/{m}" for stage in stages for m in ("iou", "f1")]
    rows = [[c, *(results.get(f"{stage}/{m}/{c}") for stage in stages for m in ("iou", "f1"))] for c in classes]
    media: dict[str, Any] = {"test/per_class": wandb.Table(columns=columns, data=rows)}
    for stage in stages:
        if stage in confusion:
            cells = [[classes[i], classes[j], int(n)] for (i, j), n in np.ndenumerate(confusion[stage])]
            media[f"{stage}/confusion_matrix"] = wandb.plot_table(
                "wandb/confusion_matrix/v1",
                wandb.Table(columns=["Actual", "Predicted", "nPredictions"], data=cells),
                {"Actual": "Actual", "Predicted": "Predicted", "nPredictions": "nPredictions"},
                {"title": f"{stage} confusion matrix (pixels)"},
            )
    labels = dict(enumerate(classes))
    for stage, kept in samples.items():
        media[f"{stage}/samples"] = [
            wandb.Image(
                image,
                caption=f"{stage} image {i}",
                masks={
                    "prediction": {"mask_data": prediction, "class_labels": labels},
                    "ground_truth": {"mask_data": label, "class_labels": labels},
                },
            )
            for i, (image, label, prediction) in enumerate(zip(kept["image"], kept["label"], kept["prediction"]))
        ]
    for run in runs:
        run.log(media)
