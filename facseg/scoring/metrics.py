"""Face-parsing metrics as the literature computes them, from one confusion matrix pooled over a whole split.

- `iou/<class>`, `f1/<class>`: per class, from the pooled confusion matrix (not averaged per image).
- `miou`: mean IoU over all classes, background included.
- `f1_fg`: mean F1 over the class set's `mean_f1` classes: the "mean F1" papers report (LaPa: the 10 foreground
  classes, hair in; CelebAMask-HQ: the 18 non-background classes).
- `pixel_acc`: micro accuracy, correct pixels / all pixels (torchmetrics' default `macro` is mean recall).
- `rmse`: sqrt of the mean over pixels of sum_c (softmax probability_c - one-hot target_c)^2, the root of the
  per-pixel Brier score summed over classes: a class nobody predicts adds nothing to it, so it does not depend on
  the size of the class set (0 for a certain, right prediction; sqrt(2) for a certain, wrong one).

`confusion`: the pooled matrix itself (rows: target, columns: prediction), for reports. With `per_image`, the metric
also keeps each image's confusion matrix, squared error and pixel count, under its index in the split (gathered
over processes under DDP): what intervals by bootstrap over images and paired tests between models resample.

Label pixels of value IGNORE are not scored (as if outside `where`).

A class the split's truth lacks has no F1 or IoU (NaN), predicted or not, and is left out of the means: the classes
averaged are those of the truth, the same for every model scored on the split (a model that predicts an absent
class loses precision on the classes it took the pixels from, not a class of its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from facseg.data.labels import BACKGROUND, IGNORE, LabelMap

PER_IMAGE = ("index", "confusion", "squared_error", "pixels")


@dataclass
class Prediction:
    """A batch's predictions, worked out once for every metric that scores it (the evaluator scores one batch on
    several sets of pixels): the arg-max class, the softmax probabilities and each pixel's sum of squared
    probabilities, from which any target's squared error follows: sum_c (p_c - [c = t])^2 = sum_c p_c^2 - 2 p_t + 1."""

    pred: torch.Tensor  # N x H x W
    probs: torch.Tensor  # N x C x H x W, float32
    square_sum: torch.Tensor  # N x H x W

    @classmethod
    def of(cls, logits: torch.Tensor) -> Prediction:
        return cls.of_probs(logits.float().softmax(1))  # float32 whatever the logits' precision (bf16 under AMP)

    @classmethod
    def of_probs(cls, probs: torch.Tensor) -> Prediction:
        # max(1).indices = argmax(1), first index on ties; 7x faster on the CPU (torch 2.14, NCHW)
        return cls(probs.max(1).indices, probs, probs.square().sum(1))


class SegmentationMetrics(Metric):
    full_state_update = False
    higher_is_better = True

    def __init__(self, classes: LabelMap | Sequence[str], per_image: bool = False) -> None:
        """`classes`: a class set, or class names (mean F1 then over all but the background)."""
        super().__init__()
        self.class_names = classes.names if isinstance(classes, LabelMap) else tuple(classes)
        self.num_classes = len(self.class_names)
        averaged = classes.mean_f1 if isinstance(classes, LabelMap) else self.class_names[BACKGROUND + 1 :]
        self.mean_f1 = [self.class_names.index(name) for name in averaged]
        self.per_image = per_image
        # int64 and float64 sums: a LaPa test split at original resolution is ~10^9 pixels.
        c = self.num_classes
        self.add_state("confmat", torch.zeros(c, c, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("squared_error", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("pixels", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        if per_image:
            for name in PER_IMAGE:
                self.add_state(f"image_{name}", [], dist_reduce_fx="cat")

    def update(
        self,
        logits: torch.Tensor | Prediction,
        target: torch.Tensor,
        where: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
    ) -> None:
        """logits: N x C x H x W (or their Prediction); target: N x H x W class ids; where: N x H x W bool, the
        pixels to score (all); index: the N images' places in the split (needed with `per_image`)."""
        scored = logits if isinstance(logits, Prediction) else Prediction.of(logits)
        if scored.probs.shape[1] != self.num_classes or scored.pred.shape[-2:] != target.shape[-2:]:
            raise ValueError(
                f"logits {tuple(scored.probs.shape)} do not match {self.num_classes} classes and target "
                f"{tuple(target.shape)}"
            )
        n, c = len(target), self.num_classes
        if (target == IGNORE).any():
            counted = target != IGNORE
            where = counted if where is None else where & counted
            target = target.where(counted, BACKGROUND)  # a valid index for the gathers below; never counted
        # One bincount for the whole batch: cell (image, truth, prediction).
        cells = (torch.arange(n, device=target.device)[:, None, None] * c + target) * c + scored.pred
        if where is not None:
            cells = cells[where]
        confusion = torch.bincount(cells.flatten(), minlength=n * c * c).reshape(n, c, c)
        # Each pixel's squared error from the probabilities' square sum and the target's probability (no one-hot
        # tensor), summed in float64, as the split holds ~10^9 terms.
        p_target = scored.probs.gather(1, target.unsqueeze(1)).squeeze(1)
        error = (scored.square_sum - 2 * p_target + 1).clamp_(min=0)
        if where is not None:
            error = error * where
        squared_error = error.sum(dim=(1, 2), dtype=torch.float64)
        pixels = confusion.sum(dim=(1, 2))
        self.confmat += confusion.sum(0)
        self.squared_error += squared_error.sum()
        self.pixels += pixels.sum()
        if self.per_image:
            if index is None:
                raise ValueError("SegmentationMetrics(per_image=True).update needs the images' index")
            for name, value in zip(PER_IMAGE, (index, confusion, squared_error, pixels)):
                getattr(self, f"image_{name}").append(value.to(self.confmat.device))

    def compute(self) -> dict[str, torch.Tensor]:
        confmat = self.confmat.double()
        true_positive = confmat.diagonal()
        in_target, in_pred = confmat.sum(1), confmat.sum(0)
        union = in_target + in_pred - true_positive
        absent = in_target == 0  # not in the truth: no F1 or IoU, for every model alike
        iou = (true_positive / union).masked_fill(absent, float("nan"))
        f1 = (2 * true_positive / (in_target + in_pred)).masked_fill(absent, float("nan"))
        out = {
            "miou": iou.nanmean(),
            "f1_fg": f1[self.mean_f1].nanmean(),
            "pixel_acc": true_positive.sum() / confmat.sum(),
            "rmse": (self.squared_error / self.pixels).sqrt(),
        }
        for i, name in enumerate(self.class_names):
            out[f"iou/{name}"] = iou[i]
            out[f"f1/{name}"] = f1[i]
        return {**{k: v.float() for k, v in out.items()}, "confusion": self.confmat.clone()}

    def per_image_results(self) -> dict[str, torch.Tensor]:
        """Every scored image's `index`, `confusion` (N x C x C), `squared_error` and `pixels`, in index order.

        Under DDP, every process's images are gathered.
        """
        with self.sync_context(should_sync=self._to_sync):
            values = {name: dim_zero_cat(getattr(self, f"image_{name}")) for name in PER_IMAGE}
        order = values["index"].argsort()
        return {name: value[order] for name, value in values.items()}
