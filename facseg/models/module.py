"""FaceSegModule: the one LightningModule, whatever net the config names."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from segmentation_models_pytorch.losses import DiceLoss
from torch import nn

from facseg.data.align import logits_to_original
from facseg.data.classes import CLASS_NAMES
from facseg.metrics import SegmentationMetrics
from facseg.models.factory import build_net


class FaceSegModule(pl.LightningModule):
    """Trains and scores a face parser.

    Every argument is plain data (saved as hyperparameters), so `FaceSegModule.load_from_checkpoint(path)` rebuilds
    the net without Hydra. Loss: cross-entropy plus `dice_weight` x multiclass Dice, which lifts the small parts
    (eyes, brows, inner mouth) that pixel-wise cross-entropy under-weights.
    """

    def __init__(
        self,
        model: dict[str, Any],
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        warmup_fraction: float = 0.05,
        dice_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = build_net(num_classes=len(CLASS_NAMES), **{k: v for k, v in model.items() if k != "name"})
        self.cross_entropy = nn.CrossEntropyLoss()
        self.dice = DiceLoss(mode="multiclass", from_logits=True) if dice_weight > 0 else None
        self.metrics = nn.ModuleDict({stage: SegmentationMetrics(CLASS_NAMES) for stage in ("val", "test")})

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = self.cross_entropy(logits, labels)
        if self.dice is not None:
            loss = loss + self.hparams.dice_weight * self.dice(logits, labels)
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self._loss(self(batch["image"]), batch["label"])
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite training loss ({loss.item()}) at epoch {self.current_epoch}, "
                f"step {self.global_step} (batch {batch_idx}): lower optim.lr or check the data"
            )
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _score_step(self, stage: str, batch: dict[str, Any]) -> None:
        logits = self(batch["image"])
        self.log(f"{stage}/loss", self._loss(logits, batch["label"]), sync_dist=True)
        if "original_label" in batch:
            # Scored as the literature does: each prediction warped back onto its photo, at the photo's resolution.
            for crop_logits, matrix, label in zip(logits, batch["matrix"], batch["original_label"]):
                original = logits_to_original(crop_logits, matrix.cpu().numpy(), *label.shape)
                self.metrics[stage].update(original[None], label[None])
        else:
            self.metrics[stage].update(logits, batch["label"])

    def _score_epoch_end(self, stage: str) -> None:
        metric = self.metrics[stage]
        # compute() already reduces the confusion matrix over all processes: every rank logs the same numbers.
        self.log_dict({f"{stage}/{k}": v for k, v in metric.compute().items()})
        metric.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._score_step("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._score_epoch_end("val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._score_step("test", batch)

    def on_test_epoch_end(self) -> None:
        self._score_epoch_end("test")

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = max(1, int(total * self.hparams.warmup_fraction))

        def warmup_then_cosine(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_then_cosine)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
