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
from facseg.data.transforms import MEAN, STD
from facseg.metrics import SegmentationMetrics
from facseg.models.factory import build_net


class FaceSegModule(pl.LightningModule):
    """Trains and scores a face parser.

    Every argument is plain data (saved as hyperparameters), so `FaceSegModule.load_from_checkpoint(path)` rebuilds
    the net without Hydra; `crop` records the crop the net was trained on (image_size, align, margin), which
    facseg.predict and facseg.export read back. `channels_last` and `compile` are speed knobs (conf `speed`), not
    saved. Loss: cross-entropy plus `dice_weight` x multiclass Dice, which lifts the small parts (eyes, brows,
    inner mouth) that pixel-wise cross-entropy under-weights.
    """

    num_samples = 4  # test images kept per stage, for the qualitative grid and W&B
    check_finite_every = 10  # training steps between looks at the loss (one host sync each)

    def __init__(
        self,
        model: dict[str, Any],
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        warmup_fraction: float = 0.05,
        dice_weight: float = 1.0,
        crop: dict[str, Any] | None = None,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        # Speed knobs are how this process runs the net, not what the net is: left out of the checkpoint.
        self.save_hyperparameters(ignore=["channels_last", "compile"])
        self.channels_last, self.compile_net = channels_last, compile
        self._first_bad: torch.Tensor | None = None  # the first step whose loss was not finite, -1: none yet
        self.net = build_net(num_classes=len(CLASS_NAMES), **{k: v for k, v in model.items() if k != "name"})
        self.cross_entropy = nn.CrossEntropyLoss()
        self.dice = DiceLoss(mode="multiclass", from_logits=True) if dice_weight > 0 else None
        stages = ("val", "test", "occluded", "occluded_inside", "occluded_outside")
        self.metrics = nn.ModuleDict({stage: SegmentationMetrics(CLASS_NAMES) for stage in stages})
        # Filled by each test epoch: pooled confusion matrices and the first test images' predictions per stage.
        self.confusion: dict[str, torch.Tensor] = {}
        self.samples: dict[str, dict[str, Any]] = {}

    def configure_model(self) -> None:
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if self.compile_net:
            self.net.compile()  # in place: the state dict keeps its keys, checkpoints load without torch.compile

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net(images)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = self.cross_entropy(logits, labels)
        if self.dice is not None:
            loss = loss + self.hparams.dice_weight * self.dice(logits, labels)
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self._loss(self(batch["image"]), batch["label"])
        self._watch_finite(loss)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _watch_finite(self, loss: torch.Tensor) -> None:
        """Fail on a non-finite loss, naming the first bad step, with one host sync per `check_finite_every` steps.

        The first bad step is kept on the device: reading the loss every step would stall a GPU's queue each step
        (measured: 11% of training throughput on an H200).
        """
        if self._first_bad is None or self._first_bad.device != loss.device:
            # Counted on the device from this step on: no host-to-device copy of the step number either.
            self._first_bad = torch.full((), -1, dtype=torch.long, device=loss.device)
            self._steps_seen = torch.zeros((), dtype=torch.long, device=loss.device)
            self._first_step = self.global_step
        bad = ~torch.isfinite(loss.detach())
        self._first_bad = torch.where(bad & (self._first_bad < 0), self._steps_seen, self._first_bad)
        self._steps_seen += 1
        if (self.global_step + 1) % self.check_finite_every == 0:
            self._raise_if_not_finite()

    def _raise_if_not_finite(self) -> None:
        if self._first_bad is not None and (first := int(self._first_bad)) >= 0:
            raise FloatingPointError(f"non-finite training loss at epoch {self.current_epoch}, step "
                                     f"{self._first_step + first}: lower optim.lr or check the data")  # fmt: skip

    def on_train_epoch_end(self) -> None:
        self._raise_if_not_finite()

    def _score_step(self, stage: str, batch: dict[str, Any], batch_idx: int) -> None:
        logits = self(batch["image"])
        self.log(f"{stage}/loss", self._loss(logits, batch["label"]), sync_dist=True, add_dataloader_idx=False,
                 batch_size=len(logits))  # fmt: skip
        if "original_label" in batch:
            # Scored as the literature does: each prediction warped back onto its photo, at the photo's resolution.
            occluders = batch.get("original_occluder", [None] * len(logits))
            for crop_logits, matrix, label, occluder in zip(
                logits, batch["matrix"], batch["original_label"], occluders
            ):
                original = logits_to_original(crop_logits, matrix.cpu().numpy(), *label.shape)
                self._update(stage, original[None], label[None], None if occluder is None else occluder[None])
        else:
            self._update(stage, logits, batch["label"], batch.get("occluder"))
        if stage != "val" and batch_idx == 0 and self.global_rank == 0:
            self._keep_samples(stage, batch, logits)

    def _update(self, stage: str, logits: torch.Tensor, target: torch.Tensor, occluder: torch.Tensor | None) -> None:
        self.metrics[stage].update(logits, target)
        if occluder is not None:  # where the occluder is, and where the face stays visible
            occluder = occluder.to(target.device)
            self.metrics["occluded_inside"].update(logits, target, occluder)
            self.metrics["occluded_outside"].update(logits, target, ~occluder)

    def _keep_samples(self, stage: str, batch: dict[str, Any], logits: torch.Tensor) -> None:
        """The first images of the split, as crops (uint8 RGB, label, prediction), for reports and W&B."""
        n = min(self.num_samples, len(logits))
        mean, std = (torch.tensor(v, device=logits.device)[:, None, None] for v in (MEAN, STD))
        images = ((batch["image"][:n] * std + mean).clamp(0, 1) * 255).round().byte()
        self.samples[stage] = {
            "image": images.permute(0, 2, 3, 1).cpu().numpy(),
            "label": batch["label"][:n].byte().cpu().numpy(),
            "prediction": logits[:n].argmax(1).byte().cpu().numpy(),
        }

    def _compute(self, stage: str) -> dict[str, torch.Tensor]:
        """The stage's metrics (reduced over all processes, so every rank logs the same), then reset."""
        metric = self.metrics[stage]
        values = metric.compute()
        metric.reset()
        self.confusion[stage] = values.pop("confusion").cpu()
        return values

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._score_step("val", batch, batch_idx)

    def on_validation_epoch_end(self) -> None:
        self.log_dict({f"val/{k}": v for k, v in self._compute("val").items()})

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._score_step(("test", "occluded")[dataloader_idx], batch, batch_idx)

    def on_test_epoch_start(self) -> None:
        self.samples, self.confusion = {}, {}

    def on_test_epoch_end(self) -> None:
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
        self.log_dict(out, add_dataloader_idx=False)

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
