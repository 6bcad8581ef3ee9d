"""Test-time evaluation: one callback scores whatever the module predicts on the test loaders and writes the results.

Test loader 0 is the clean test split (`test/...`), loader 1 its occluded copy (`occluded/...`, plus the drop from
clean, the occluders' own pixels and the visible rest). Scored on the photos, pixel accuracy and RMSE are also given
inside the crop only (`test/crop/...`, `occluded/crop/...`): outside it the prediction is background with certainty
and almost always right, which flatters the whole-photo figures. `ceiling/...` scores the ground truth itself taken
through the crop and back (the crop's label, warped onto the photo as a prediction is): what the crop size costs a
perfect hard prediction, per class (a reference, not a bound: soft scores warped back can do better at boundaries).
The module's test_step returns its members' crop logits
(one member but for an Ensemble); scored at the original resolution, each member's logits are warped back onto the
photo (facseg.warp, batched, on the module's device) and only then combined, so a single net and an ensemble go
through the same warp of the same quantity. Per stage the evaluator keeps the pooled metrics, one confusion matrix
per image, the first images as samples, and writes confusion.json, per_image.npz and samples.npz (facseg.results)
and the W&B media.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from facseg.data.labels import BACKGROUND, IGNORE
from facseg.io import json_number, write_json, write_npz
from facseg.loggers import is_wandb
from facseg.metrics import SegmentationMetrics
from facseg.results import CONFUSION_FILE, PER_IMAGE_FILE, SAMPLES_FILE
from facseg.warp import CERTAIN, warp_to_photos

STAGES = ("test", "occluded")  # by test loader index
RESULT_PREFIXES = (*(f"{stage}/" for stage in STAGES), "ceiling/")
# The occluded stage is also scored on the occluders' own pixels and on the rest of the photo; on photos, both stages
# inside the crop too, and the ground truth through the crop and back (the ceiling).
SCORED = (*STAGES, "occluded_inside", "occluded_outside", "test_crop", "occluded_crop", "ceiling")


def logged_results(trainer: pl.Trainer) -> dict[str, float | None]:
    """Every test-stage value the last trainer.test logged (metrics and losses), as JSON numbers."""
    return {k: json_number(v) for k, v in trainer.callback_metrics.items() if k.startswith(RESULT_PREFIXES)}


def _padded(tensors: list[torch.Tensor], height: int, width: int, device: torch.device) -> torch.Tensor:
    out = torch.zeros(len(tensors), height, width, dtype=tensors[0].dtype, device=device)
    for i, t in enumerate(tensors):
        out[i, : t.shape[0], : t.shape[1]] = t.to(device)
    return out


class TestEvaluator(pl.Callback):
    """Scores trainer.test's predictions; `output_dir`: where the test files go (none: nothing written).

    What it needs of the module (FaceSegModule): test_step returns M x N x C x S x S member logits, `combine` turns
    members into scores, `loss`, its class set `label_map` and `hparams.normalisation` from the checkpoint.
    """

    def __init__(self, output_dir: Path | str | None = None, num_samples: int = 4) -> None:
        self.output_dir = Path(output_dir) if output_dir else None
        self.num_samples = num_samples  # first test images kept per stage, for the qualitative grid and W&B
        self.classes: list[str] = []
        self.metrics: dict[str, SegmentationMetrics] = {}
        self.results: dict[str, torch.Tensor] = {}
        self.confusion: dict[str, np.ndarray] = {}
        self.per_image: dict[str, dict[str, np.ndarray]] = {}
        self.samples: dict[str, dict[str, np.ndarray]] = {}
        self.names: list[str] = []

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.classes = list(pl_module.label_map.names)
        self.metrics = {
            s: SegmentationMetrics(pl_module.label_map, per_image=True).to(pl_module.device) for s in SCORED
        }
        self.results, self.confusion, self.per_image, self.samples = {}, {}, {}, {}
        loaders = trainer.test_dataloaders
        self.names = list((loaders[0] if isinstance(loaders, list) else loaders).dataset.names)

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: torch.Tensor,
        batch: dict[str, Any],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        stage, members = STAGES[dataloader_idx], outputs
        crop_scores = pl_module.combine(members)
        loss = pl_module.loss(crop_scores, batch["label"])
        pl_module.log(f"{stage}/loss", loss, sync_dist=True, add_dataloader_idx=False, batch_size=len(crop_scores))
        if "original_label" in batch:
            # Scored as the literature does: each prediction warped back onto its photo, at the photo's resolution.
            labels = batch["original_label"]
            sizes = [tuple(label.shape) for label in labels]
            m, n = members.shape[:2]
            warped, valid, covered = warp_to_photos(members.flatten(0, 1), batch["matrix"].repeat(m, 1, 1), sizes * m)
            scores, valid, covered = pl_module.combine(warped.unflatten(0, (m, n))), valid[:n], covered[:n]
            target = _padded(labels, *valid.shape[1:], scores.device)
            occluders = batch.get("original_occluder")
            occluder = None if occluders is None else _padded(occluders, *valid.shape[1:], scores.device)
            self.metrics[f"{stage}_crop"].update(scores, target, covered, batch["index"])
            if stage == "test":
                self._score_ceiling(batch, sizes, target, valid, len(pl_module.label_map))
        else:
            scores, target, valid, occluder = crop_scores, batch["label"], None, batch.get("occluder")
        index = batch["index"]
        self.metrics[stage].update(scores, target, valid, index)
        if occluder is not None:
            inside, outside = (occluder, ~occluder) if valid is None else (occluder & valid, ~occluder & valid)
            self.metrics["occluded_inside"].update(scores, target, inside, index)
            self.metrics["occluded_outside"].update(scores, target, outside, index)
        if batch_idx == 0 and trainer.is_global_zero:
            self._keep_samples(stage, batch, crop_scores, pl_module)

    def _score_ceiling(self, batch: dict[str, Any], sizes: list, target: torch.Tensor, valid: torch.Tensor, c: int):
        """The crop's own label as a prediction, warped onto the photo and scored: the resolution ceiling."""
        crop_label = batch["label"].to(target.device)
        crop_label = crop_label.where(crop_label != IGNORE, BACKGROUND)
        perfect = torch.nn.functional.one_hot(crop_label, c).permute(0, 3, 1, 2).float() * (2 * CERTAIN) - CERTAIN
        warped, _, _ = warp_to_photos(perfect, batch["matrix"], sizes)
        self.metrics["ceiling"].update(warped, target, valid, batch["index"])

    def _keep_samples(self, stage: str, batch: dict[str, Any], scores: torch.Tensor, pl_module) -> None:
        """The first images of the split, as crops (uint8 RGB, label, prediction), for reports and W&B."""
        n = min(self.num_samples, len(scores))
        normalisation = pl_module.hparams.normalisation
        mean, std = (torch.tensor(normalisation[k], device=scores.device)[:, None, None] for k in ("mean", "std"))
        images = ((batch["image"][:n] * std + mean).clamp(0, 1) * 255).round().byte()
        self.samples[stage] = {
            "image": images.permute(0, 2, 3, 1).cpu().numpy(),
            "label": batch["label"][:n].byte().cpu().numpy(),
            "prediction": scores[:n].argmax(1).byte().cpu().numpy(),
        }

    def _compute(self, stage: str) -> dict[str, torch.Tensor]:
        """The stage's metrics, reduced over all processes (so every rank logs the same); keeps its matrices."""
        metric = self.metrics[stage]
        values = metric.compute()
        self.confusion[stage] = values.pop("confusion").cpu().numpy()
        self.per_image[stage] = {k: v.cpu().numpy() for k, v in metric.per_image_results().items()}
        metric.reset()
        return values

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Clean metrics as `test/...`; with an occluded test loader also `occluded/...`: the same metrics, their
        drop from clean (`occluded/drop/...`, clean minus occluded), and the occluders' own pixels vs the rest."""
        clean = self._compute("test")
        out = {f"test/{k}": v for k, v in clean.items()}
        if self.metrics["occluded"].update_called:
            occluded = self._compute("occluded")
            out.update({f"occluded/{k}": v for k, v in occluded.items()})
            out.update({f"occluded/drop/{k}": clean[k] - occluded[k] for k in clean if k != "rmse"})
            # Inside, the truth is all background: pixel_acc is the share of occluder pixels left unlabelled.
            inside, outside = self._compute("occluded_inside"), self._compute("occluded_outside")
            out.update({f"occluded/inside/{k}": inside[k] for k in ("pixel_acc", "rmse")})
            out.update({f"occluded/outside/{k}": outside[k] for k in ("miou", "f1_fg", "pixel_acc", "rmse")})
        for stage in STAGES:
            if self.metrics[f"{stage}_crop"].update_called:
                inside_crop = self._compute(f"{stage}_crop")
                out.update({f"{stage}/crop/{k}": inside_crop[k] for k in ("pixel_acc", "rmse")})
        if self.metrics["ceiling"].update_called:
            ceiling = self._compute("ceiling")
            kept = ("miou", "f1_fg", "iou", "f1")  # pixel accuracy and RMSE of one-hot scores say nothing
            out.update({f"ceiling/{k}": v for k, v in ceiling.items() if k.split("/")[0] in kept})
        self.results = out
        pl_module.log_dict(out, add_dataloader_idx=False)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            if self.output_dir is not None:
                self.write(self.output_dir)
            self.log_media(trainer.loggers)

    def write(self, output_dir: Path) -> None:
        """confusion.json, per_image.npz and samples.npz in `output_dir`."""
        output_dir.mkdir(parents=True, exist_ok=True)
        pooled = {stage: self.confusion[stage].tolist() for stage in STAGES if stage in self.confusion}
        write_json(output_dir / CONFUSION_FILE, {"classes": self.classes, **pooled})
        per_image = {"names": np.array(self.names), "classes": np.array(self.classes)}
        for stage, arrays in self.per_image.items():
            for key, value in arrays.items():
                # Counts in the narrowest integer type that holds them: a LaPa split is 2,000 matrices.
                narrow = value.astype(np.min_scalar_type(value.max(initial=0))) if value.dtype.kind == "i" else value
                per_image[f"{stage}/{key}"] = narrow
        write_npz(output_dir / PER_IMAGE_FILE, per_image)
        write_npz(
            output_dir / SAMPLES_FILE, {f"{s}/{k}": v for s, kept in self.samples.items() for k, v in kept.items()}
        )

    def log_media(self, loggers: list) -> None:
        """Per-class table, confusion matrices and samples for the W&B run (offline or live) of this job, if any."""
        runs = [logger.experiment for logger in loggers if is_wandb(logger)]
        if not runs:
            return
        import wandb

        results = {k: json_number(v) for k, v in self.results.items()}
        names = self.classes
        columns = ["class"] + [f"{stage}/{m}" for stage in STAGES for m in ("iou", "f1")]
        rows = [[c, *(results.get(f"{stage}/{m}/{c}") for stage in STAGES for m in ("iou", "f1"))] for c in names]
        media: dict[str, Any] = {"test/per_class": wandb.Table(columns=columns, data=rows)}
        for stage in STAGES:
            if stage in self.confusion:
                cells = [[names[i], names[j], int(n)] for (i, j), n in np.ndenumerate(self.confusion[stage])]
                media[f"{stage}/confusion_matrix"] = wandb.plot_table(
                    "wandb/confusion_matrix/v1",
                    wandb.Table(columns=["Actual", "Predicted", "nPredictions"], data=cells),
                    {"Actual": "Actual", "Predicted": "Predicted", "nPredictions": "nPredictions"},
                    {"title": f"{stage} confusion matrix (pixels)"},
                )
        labels = dict(enumerate(names))
        for stage, kept in self.samples.items():
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
