"""FaceSegModule: the one LightningModule, whatever net the config names. It trains and predicts; test-time scoring
is facseg.scoring's."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from segmentation_models_pytorch.losses import DiceLoss
from torch import nn

from facseg.data.labels import IGNORE, LabelMap
from facseg.data.transforms import MEAN, STD
from facseg.metrics.region import SegmentationMetrics
from facseg.models.ensemble import Ensemble
from facseg.models.factory import build_net

TRAINED_WITH = "trained_with"  # the checkpoint's record of the run's precision and memory layout


class FaceSegModule(pl.LightningModule):
    """Trains a face parser and selects it on validation.

    The checkpoint holds every argument but the optimizer, the scheduler and the speed knobs, all plain data, so
    `FaceSegModule.load_from_checkpoint(path)` rebuilds the net without Hydra and knows how to score it: `labels`
    (its class set, a facseg.data.labels.LabelMap as plain data; LaPa's by default), `crop` (image_size, align,
    margin) and `normalisation` (mean, std), which facseg.evaluate, facseg.predict and facseg.export read back.
    Loss: cross-entropy plus `dice_weight` x multiclass Dice, which lifts the small parts (eyes, brows, inner mouth)
    that pixel-wise cross-entropy under-weights; label pixels of value IGNORE (classes a mapped class set has no
    counterpart for) count in neither. A net with an auxiliary head (PSPNet, `model.aux_weight` > 0) adds
    `aux_weight` x the same loss of the auxiliary logits in training; validation and test use the main head only.

    `optimizer` is called with the parameters and `scheduler` with the optimizer and the run's total optimizer
    steps (Hydra `_partial_` configs, conf/optimizer and conf/scheduler); the scheduler steps every optimizer step.
    """

    check_finite_every = 10  # training steps between looks at the loss (one host sync each)

    def __init__(
        self,
        model: dict[str, Any],
        labels: dict[str, Any] | None = None,
        crop: dict[str, Any] | None = None,
        normalisation: dict[str, Sequence[float]] | None = None,
        dice_weight: float = 1.0,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        normalisation = normalisation or {"mean": list(MEAN), "std": list(STD)}  # recorded as such in the checkpoint
        labels = LabelMap.from_config(labels).to_dict() if labels else LabelMap.named("lapa").to_dict()
        # logger=False: run.py logs the whole (redacted) config; the module's arguments would be a second copy.
        self.save_hyperparameters(ignore=["optimizer", "scheduler", "channels_last", "compile"], logger=False)
        self.optimizer, self.scheduler = optimizer, scheduler
        self.channels_last, self.compile_net = channels_last, compile
        self.trained_with: dict[str, Any] = {}  # read from a checkpoint (on_load_checkpoint); empty: not recorded
        self._first_bad: torch.Tensor | None = None  # the first step whose loss was not finite, -1: none yet
        self.label_map = LabelMap.from_config(labels)
        self.aux_weight = float(model.get("aux_weight", 0.0))
        net_args = {k: v for k, v in model.items() if k not in ("name", "aux_weight", "auto_bf16")}
        self.net = build_net(num_classes=len(self.label_map), aux=self.aux_weight > 0, **net_args)
        self.cross_entropy = nn.CrossEntropyLoss(ignore_index=IGNORE)
        self.dice = DiceLoss(mode="multiclass", from_logits=True, ignore_index=IGNORE) if dice_weight > 0 else None
        self.train_metrics = SegmentationMetrics(self.label_map)  # on the augmented batches: how well the net fits
        self.val_metrics = SegmentationMetrics(self.label_map)

    def configure_model(self) -> None:
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if self.compile_net:
            self.net.compile()  # in place: the state dict keeps its keys, checkpoints load without torch.compile

    def _memory_format(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.net(self._memory_format(images))
        expected = (len(self.label_map), *images.shape[-2:])
        if not isinstance(logits, torch.Tensor) or tuple(logits.shape[1:]) != expected:
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ValueError(
                f"the net returned {shape} for {tuple(images.shape)} images: expected N x {expected[0]} x "
                f"{expected[1]} x {expected[2]} logits (model.net: one logit map per class, at the input's size)"
            )
        return logits

    def member_logits(self, images: torch.Tensor) -> torch.Tensor:
        """M x N x C x S x S: each member's logits when the net is an Ensemble, else the net's own (M = 1)."""
        if isinstance(self.net, Ensemble):
            return self.net.member_logits(self._memory_format(images))
        return self(images)[None]

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = self.cross_entropy(logits, labels)
        if self.dice is not None:
            loss = loss + self.hparams.dice_weight * self.dice(logits, labels)
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        if self.aux_weight > 0:
            logits, aux_logits = self.net.forward_with_aux(self._memory_format(batch["image"]))
            loss = self.loss(logits, batch["label"]) + self.aux_weight * self.loss(aux_logits, batch["label"])
        else:
            logits = self(batch["image"])
            loss = self.loss(logits, batch["label"])
        self._watch_finite(loss)
        self.log("train/loss", loss, prog_bar=True)
        self.train_metrics.update(logits.detach(), batch["label"])
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
            raise FloatingPointError(
                f"non-finite training loss at epoch {self.current_epoch}, step {self._first_step + first}: "
                "lower optimizer.lr or check the data"
            )

    def on_train_epoch_end(self) -> None:
        self._raise_if_not_finite()
        self._log_epoch_metrics("train", self.train_metrics, ("miou", "f1_fg", "pixel_acc"))

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        logits = self(batch["image"])
        loss = self.loss(logits, batch["label"])
        self.log("val/loss", loss, sync_dist=True, batch_size=len(logits))
        self.val_metrics.update(logits, batch["label"])

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val", self.val_metrics)

    def _log_epoch_metrics(self, stage: str, metric: SegmentationMetrics, keys: tuple[str, ...] | None = None) -> None:
        """The epoch's metrics, reduced over all processes (every rank logs the same), then reset."""
        values = metric.compute()
        metric.reset()
        values.pop("confusion")
        self.log_dict({f"{stage}/{k}": v for k, v in values.items() if keys is None or k in keys})

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """The members' crop logits; facseg.scoring.evaluator.TestEvaluator scores them."""
        return self.member_logits(batch["image"])

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # How the run computed, beside what the net is (not a hyperparameter): in bf16 both the precision and the
        # memory layout move the numbers, and a rescoring computes as the run did (facseg.scoring.checkpoints).
        checkpoint[TRAINED_WITH] = {"precision": str(self.trainer.precision), "channels_last": self.channels_last}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.trained_with = checkpoint.get(TRAINED_WITH) or {}  # {}: a checkpoint written before it was recorded

    def configure_optimizers(self) -> dict[str, Any]:
        if self.optimizer is None:
            raise ValueError("FaceSegModule was built without an optimizer: give optimizer= (conf/optimizer)")
        optimizer = self.optimizer(self.parameters())
        if self.scheduler is None:
            return {"optimizer": optimizer}
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = self.scheduler(optimizer, total_steps=total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
