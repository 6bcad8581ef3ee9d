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
over processes under DDP): what intervals by bootstrap over images and paired tests between models resample. They
are spooled to disk as they come (facseg.runtime.spool), so that a test pass's memory does not grow with its split.

With `errors`, each image's kinds of error too (facseg.metrics.errors: boundaries, structure, the jawline), kept
per image beside its matrix and summed into the pooled state, their keys beside the region metrics'.

Label pixels of value IGNORE are not scored (as if outside `where`).

A class the split's truth lacks has no F1 or IoU (NaN), predicted or not, and is left out of the means: the classes
averaged are those of the truth, the same for every model scored on the split (a model that predicts an absent
class loses precision on the classes it took the pixels from, not a class of its own).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities.distributed import gather_all_tensors

from facseg.data.labels import BACKGROUND, IGNORE, LabelMap
from facseg.metrics.errors import ERROR_ARRAYS, ErrorRules, image_errors, pooled_errors, summed
from facseg.metrics.top_class import top_class
from facseg.runtime.spool import Spool

PER_IMAGE = ("index", "confusion", "squared_error", "pixels")


@dataclass
class Prediction:
    """A batch's predictions, worked out once for every metric that scores it (the evaluator scores one batch on
    several sets of pixels, against one or two targets): the arg-max class and each pixel's sum of squared
    probabilities, from which any target's squared error follows: sum_c (p_c - [c = t])^2 = sum_c p_c^2 - 2 p_t + 1;
    the probabilities themselves (N x C x H x W, float32), or only each target's p_t (`targets`, made band by band
    on the photos: facseg.scoring.probabilities); and, per target, each pixel's confusion cell and squared error
    (`against`)."""

    pred: torch.Tensor  # N x H x W
    square_sum: torch.Tensor  # N x H x W
    probs: torch.Tensor | None = None
    targets: dict = field(default_factory=dict, repr=False)  # id(target) -> (target, p_t)
    paired: dict = field(default_factory=dict, repr=False)  # id(target) -> (target, cells, error)

    @classmethod
    def of(cls, logits: torch.Tensor) -> Prediction:
        return cls.of_probs(logits.float().softmax(1))  # float32 whatever the logits' precision (bf16 under AMP)

    @classmethod
    def of_probs(cls, probs: torch.Tensor) -> Prediction:
        return cls(top_class(probs), probs.square().sum(1), probs)

    @classmethod
    def empty(cls, n: int, height: int, width: int, device: torch.device, targets: list[torch.Tensor]) -> Prediction:
        """To be filled band by band (`fill`), keeping each target's p_t and not the probabilities."""
        pred = torch.empty(n, height, width, dtype=torch.long, device=device)
        found = {id(t): (t, torch.empty(n, height, width, device=device)) for t in targets}
        return cls(pred, torch.empty(n, height, width, device=device), targets=found)

    def fill(self, rows: slice, probs: torch.Tensor, targets: dict[int, torch.Tensor]) -> None:
        """These rows' values from their probabilities (N x C x rows x W); `targets`: id(target) -> its class ids
        with IGNORE as BACKGROUND (a valid index for the gather; never counted), N x 1 x H x W."""
        self.pred[:, rows] = top_class(probs)
        self.square_sum[:, rows] = probs.square().sum(1)
        for key, ids in targets.items():
            self.targets[key][1][:, rows] = probs.gather(1, ids[:, :, rows]).squeeze(1)

    def against(self, target: torch.Tensor, c: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each pixel's confusion cell, (image, truth, prediction) as one index (N x C x C for a pixel not scored:
        an IGNORE label; `c` classes), and its squared error (0 where not scored); once per target, whatever the
        masks."""
        found = self.paired.get(id(target))
        if found is None:
            n = len(target)
            counted = target != IGNORE
            ignored = not bool(counted.all())
            target_ids = target.where(counted, BACKGROUND) if ignored else target  # a valid index for the gather
            cells = (torch.arange(n, device=target.device)[:, None, None] * c + target_ids) * c + self.pred
            cells = cells.int()  # int32: each mask's pass over them (where, bincount) moves half the bytes
            if id(target) in self.targets:
                p_target = self.targets[id(target)][1]
            else:
                p_target = self.probs.gather(1, target_ids.unsqueeze(1)).squeeze(1)
            error = (self.square_sum - 2 * p_target + 1).clamp_(min=0)
            if ignored:
                cells, error = cells.where(counted, n * c * c), error * counted
            found = self.paired[id(target)] = (target, cells, error)  # the target kept: its id stays its own
        return found[1], found[2]


@functools.cache
def error_pool() -> ThreadPoolExecutor:
    """Threads for the kinds of error, one per core torch uses: the net is idle while a batch is scored, and
    OpenCV, SciPy's k-d trees and NumPy's large operations release the GIL."""
    return ThreadPoolExecutor(max(1, torch.get_num_threads()), thread_name_prefix="facseg-errors")


class SegmentationMetrics(Metric):
    full_state_update = False
    higher_is_better = True

    def __init__(self, classes: LabelMap | Sequence[str], per_image: bool = False, errors: bool = False) -> None:
        """`classes`: a class set, or class names (mean F1 then over all but the background); `errors`: also the
        kinds of error region overlap does not see (facseg.metrics.errors; a class set, not names)."""
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
        self.images: dict[str, Spool] = {}  # PER_IMAGE name -> its rows, made by the first update
        self.rules = ErrorRules.of(classes) if errors else None
        if self.rules is not None:  # each image's counts, summed (facseg.metrics.errors.summed)
            for name, value in summed(self._no_image_errors()).items():
                dtype = torch.float64 if value.dtype.kind == "f" else torch.long
                self.add_state(f"errors_{name}", torch.zeros(value.shape, dtype=dtype), dist_reduce_fx="sum")
        self.per_image_names = PER_IMAGE + (ERROR_ARRAYS if self.rules is not None else ())

    def _no_image_errors(self) -> dict[str, np.ndarray]:
        return {name: np.zeros((0, *shape), dtype) for name, (shape, dtype) in self.rules.shapes().items()}

    def update(
        self,
        logits: torch.Tensor | Prediction,
        target: torch.Tensor,
        where: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
        landmarks: torch.Tensor | None = None,
    ) -> None:
        """logits: N x C x H x W (or their Prediction); target: N x H x W class ids; where: N x H x W bool, the
        pixels to score (all); index: the N images' places in the split (needed with `per_image`); landmarks:
        N x 106 x 2, in the target's pixels (NaN: none), for the jawline's error.

        With `errors`, each image's kinds of error are worked out on its scored box (`where`: a photo padded at
        its bottom and right), on the CPU."""
        scored = logits if isinstance(logits, Prediction) else Prediction.of(logits)
        if scored.probs is not None and scored.probs.shape[1] != self.num_classes:
            raise ValueError(f"logits {tuple(scored.probs.shape)} do not match {self.num_classes} classes")
        if scored.pred.shape[-2:] != target.shape[-2:]:
            raise ValueError(f"predictions {tuple(scored.pred.shape)} do not match target {tuple(target.shape)}")
        n, c = len(target), self.num_classes
        cells, error = scored.against(target, c)
        if where is not None:
            cells, error = cells.where(where, n * c * c), error * where
        # One bincount for the whole batch: cell (image, truth, prediction), the last bin the pixels not scored.
        confusion = torch.bincount(cells.flatten(), minlength=n * c * c + 1)[:-1].reshape(n, c, c)
        # Summed in float64, as the split holds ~10^9 terms.
        squared_error = error.sum(dim=(1, 2), dtype=torch.float64)
        pixels = confusion.sum(dim=(1, 2))
        self.confmat += confusion.sum(0)
        self.squared_error += squared_error.sum()
        self.pixels += pixels.sum()
        values = [index, confusion, squared_error, pixels]
        if self.rules is not None:
            errors = self._errors(scored.pred, target, where, confusion, landmarks)
            for name, value in summed(errors).items():
                state = getattr(self, f"errors_{name}")
                state += torch.from_numpy(np.asarray(value)).to(state)
            values += [errors[name] for name in ERROR_ARRAYS]
        if self.per_image:
            if index is None:
                raise ValueError("SegmentationMetrics(per_image=True).update needs the images' index")
            for name, value in zip(self.per_image_names, values):
                value = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
                if name not in self.images:
                    self.images[name] = Spool(value.dtype, value.shape[1:])
                self.images[name].append(value)

    def _errors(self, pred, target, where, confusion, landmarks) -> dict[str, np.ndarray]:
        """The batch's kinds of error, image by image (facseg.metrics.errors.image_errors), stacked."""
        pred, target = pred.to(torch.uint8).cpu().numpy(), target.to(torch.uint8).cpu().numpy()
        confusion = confusion.cpu().numpy()
        boxes = where.cpu().numpy() if where is not None else None
        points = landmarks.cpu().numpy() if landmarks is not None else None

        def one(i: int) -> dict[str, np.ndarray]:
            h, w = target.shape[1:]
            if boxes is not None:  # the photo's size: its scored rows and columns
                h, w = int(boxes[i].any(1).nonzero()[0][-1]) + 1, int(boxes[i].any(0).nonzero()[0][-1]) + 1
            truth = target[i, :h, :w].copy()
            if boxes is not None:
                truth[~boxes[i, :h, :w]] = IGNORE
            return image_errors(pred[i, :h, :w], truth, self.rules, None if points is None else points[i], confusion[i])

        found = list(error_pool().map(one, range(len(target))))  # images apart: the same numbers in any order
        return {name: np.stack([f[name] for f in found]) for name in ERROR_ARRAYS}

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
        if self.rules is not None:
            sums = {
                name[len("errors_") :]: getattr(self, name).cpu().numpy()
                for name in self._defaults
                if name.startswith("errors_")
            }
            found = pooled_errors(sums, self.rules, present=(in_target > 0).cpu().numpy())
            out.update({k: torch.tensor(v) for k, v in found.items()})
        return {**{k: v.float() for k, v in out.items()}, "confusion": self.confmat.clone()}

    def per_image_results(self) -> dict[str, torch.Tensor]:
        """Every scored image's `index`, `confusion` (N x C x C), `squared_error` and `pixels`, in index order: on
        the CPU, memory-mapped from the spool where one process scored them in order.

        Under DDP, every process's images are gathered (each stage's in memory, in turn).
        """
        if self.images:
            values = {name: torch.from_numpy(self.images[name].array()) for name in self.per_image_names}
        else:  # no image here (a process whose shard had none): its part of the gather
            c = self.num_classes
            values = {"index": torch.zeros(0, dtype=torch.long), "confusion": torch.zeros(0, c, c, dtype=torch.long)}
            values.update(squared_error=torch.zeros(0, dtype=torch.float64), pixels=torch.zeros(0, dtype=torch.long))
            if self.rules is not None:
                values.update({k: torch.from_numpy(v) for k, v in self._no_image_errors().items()})
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            device = self.confmat.device  # NCCL gathers on the GPU
            values = {k: torch.cat(gather_all_tensors(v.to(device))).cpu() for k, v in values.items()}
        index = values["index"]
        if len(index) > 1 and not bool((index[1:] > index[:-1]).all()):
            order = index.argsort()
            values = {name: value[order] for name, value in values.items()}
        return values

    def reset(self) -> None:
        super().reset()
        for spool in self.images.values():
            spool.close()
        self.images = {}
