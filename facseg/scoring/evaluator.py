"""Test-time evaluation: one callback scores whatever the module predicts on the test loaders and writes the results.

Test loader 0 is the clean test split (`test/...`); with an occluded test, one loader per occluded condition follows
(`occluded/...`, `occluded_severity/0.3/...`, ...: facseg.data.conditions), each scored as a whole, against its
drop from clean, under its occluders (only where they hide face or hair, against the occluded truth and against
what they hide) and on the pixels it leaves visible, beside the clean prediction on those same pixels. A class set
with occluder classes (CelebAMask-HQ's eyeglasses and hats) also scores the clean test photos that wear them
(`natural/...`) and the others (`natural_clear/...`). Scored on the photos, pixel accuracy and RMSE are also given
inside the crop only (`test/crop/...`, `occluded/crop/...`): outside it the prediction is background with certainty
and almost always right, which flatters the whole-photo figures. `ceiling/...` scores the ground truth itself taken
through the crop and back (the crop's label, warped onto the photo as a prediction is): what the crop size costs a
perfect hard prediction, per class (a reference, not a bound: soft scores warped back can do better at boundaries).
The module's test_step returns its members' crop logits (one member but for an Ensemble); scored at the original
resolution, each member's logits are warped back onto the photo (facseg.data.warp, batched, on the module's
device) and only then combined (the weighted mean of their softmax probabilities), so a single net and an ensemble
go through the same warp of the same quantity. Several evaluators can score ensembles of the module's members in
one test pass: each says its ensemble in advance and one banded pass over each batch's photos works out all their
predictions (facseg.scoring.probabilities). The test and each condition, scored as a whole, also give the kinds of
error region overlap does not see (facseg.metrics.errors; `errors=False`: not). Per stage the evaluator keeps the
pooled metrics, one confusion matrix per image, the first images as samples, and writes confusion.json,
per_image.npz and samples.npz (facseg.runtime.record) and the W&B media (facseg.scoring.media).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torchmetrics import MeanMetric

from facseg.data.labels import BACKGROUND, IGNORE
from facseg.data.warp import CERTAIN, PhotoGrid
from facseg.metrics.confusion import metrics as metrics_table
from facseg.metrics.region import Prediction, SegmentationMetrics
from facseg.models.ensemble import normalised_weights
from facseg.runtime.atomic import json_number
from facseg.runtime.record import write_test_files
from facseg.scoring.media import log_media
from facseg.scoring.probabilities import SharedBatch, mean, padded, photo_predictions

SCALARS = ("miou", "f1_fg", "pixel_acc", "rmse")


def occluded_stages(condition: str) -> list[str]:
    """The stages one occluded condition is scored as: its photos, then on its occluders' pixels that hide face or
    hair (against the occluded truth, background, and against the clean truth: what they hide), on the pixels left
    visible (the occluded prediction, and the clean prediction on the same pixels), and inside the crop."""
    return [condition, *(f"{condition}/{part}" for part in ("inside", "hidden", "outside", "visible_clean", "crop"))]


class TestEvaluator(pl.Callback):
    """Scores trainer.test's predictions; `output_dir`: where the test files go (none: nothing written); `members`
    and `weights`: score the weighted mean probability of these members of the module's (None: all, equal
    weights); `log`: give the results to the trainer's loggers (else they are only in `results`); `shared`: the
    SharedBatch of the evaluators that score the same test pass; `loss`: the loss reported (None: the module's).

    What it needs of the module (FaceSegModule): test_step returns M x N x C x S x S member logits, `loss`, its
    class set `label_map` and `hparams.normalisation` from the checkpoint. Of the data module: `test_stages`, what
    each test loader is (`test`, then the occluded conditions), and `test_aliases`.
    """

    __test__ = False  # a callback, not a pytest test class (its name starts with Test)

    def __init__(
        self,
        output_dir: Path | str | None = None,
        num_samples: int = 4,
        members: list[int] | None = None,
        weights: list[float] | None = None,
        log: bool = True,
        shared: SharedBatch | None = None,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        errors: bool = True,
    ) -> None:
        self.errors = errors  # the kinds of error (boundaries, structure, the jawline) of clean and each condition
        self.output_dir = Path(output_dir) if output_dir else None
        self.num_samples = num_samples  # first test images kept per stage, for the qualitative grid and W&B
        # An ensemble of some of the module's members, so that one test pass scores several ensembles of the same
        # nets (one evaluator each; none logs to the trainer's loggers, or they would log the same keys).
        self.members, self.weights = self._scoring(members, weights) if members is not None else (None, None)
        self.log = log
        self.shared = shared or SharedBatch()
        if members is not None:  # said in advance: the shared pass works out this ensemble's prediction with all
            self.shared.expect((self.members, self.weights))
        self.loss = loss  # None: the module's (an ensemble's: its first member's, whose dice weight it has)
        self.losses: dict[str, MeanMetric] = {}
        self.classes: list[str] = []
        self.stages: list[str] = ["test"]  # by test loader index
        self.aliases: dict[str, str] = {}
        self.metrics: dict[str, SegmentationMetrics] = {}
        self.results: dict[str, torch.Tensor] = {}
        self.confusion: dict[str, np.ndarray] = {}
        self.per_image: dict[str, dict[str, np.ndarray]] = {}
        self.samples: dict[str, dict[str, np.ndarray]] = {}
        self.aligned_by: dict[str, dict[str, int]] = {}
        self.kinds: dict[str, dict[int, str]] = {}  # per condition, each image's occluder kind by its index
        self.names: list[str] = []

    @staticmethod
    def _scoring(members: list[int], weights: list[float] | None) -> tuple[tuple[int, ...], tuple[float, ...]]:
        return tuple(members), tuple(normalised_weights(weights, len(members)).tolist())

    @property
    def conditions(self) -> list[str]:
        return self.stages[1:]

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        labels = pl_module.label_map
        self.classes = list(labels.names)
        datamodule = trainer.datamodule
        self.stages = list(getattr(datamodule, "test_stages", ["test"]))
        self.aliases = dict(getattr(datamodule, "test_aliases", {}))
        self.natural = labels.ids(labels.occluders)  # classes that are occluders: the naturally occluded subset
        scored = ["test", "test/crop", "ceiling", *(s for c in self.conditions for s in occluded_stages(c))]
        whole = {"test", *self.conditions}  # the kinds of error: of each condition's photos as a whole
        self.metrics = {
            s: SegmentationMetrics(labels, per_image=True, errors=self.errors and s in whole).to(pl_module.device)
            for s in scored
        }
        self.losses = {s: MeanMetric(nan_strategy="disable").to(pl_module.device) for s in self.stages}
        if self.natural:  # their mean F1 over the classes both subsets have: the occluders' own left out
            faces = replace(labels, mean_f1=tuple(c for c in labels.mean_f1 if c not in labels.occluders))
            for stage in ("natural", "natural_clear"):
                self.metrics[stage] = SegmentationMetrics(faces, per_image=True).to(pl_module.device)
        self.results, self.confusion, self.per_image, self.samples, self.aligned_by = {}, {}, {}, {}, {}
        self.kinds = {}
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
        stage = self.stages[dataloader_idx]
        if self.members is None:  # all the module's members, equally
            self.members, self.weights = self._scoring(list(range(len(outputs))), None)
            self.shared.expect((self.members, self.weights))
        scores = self.shared((dataloader_idx, batch_idx), outputs, batch)
        crop = mean(scores.crop, self.members, self.weights)
        # One net's own logits; an ensemble's log mean probability (what the loss and the samples take).
        crop_scores = outputs[self.members[0]] if len(self.members) == 1 else crop.clamp_min(1e-12).log()
        # The batch's loss once per image: the mean over images. (MeanMetric's `weight` is dropped when
        # nan_strategy="disable", torchmetrics 1.9; "disable" keeps a NaN loss visible.)
        loss = (self.loss or pl_module.loss)(crop_scores, batch["label"])
        self.losses[stage].update(loss.expand(len(crop_scores)))
        index = batch["index"]
        if scores.grid is not None:
            # Scored as the literature does: each prediction warped back onto its photo, at the photo's resolution.
            valid, covered, target = scores.grid.valid, scores.grid.covered, scores.targets["target"]
            scored = scores.prediction((self.members, self.weights), outputs)
            self.metrics[f"{stage}/crop"].update(scored, target, covered, index)
            if stage == "test":
                self._score_ceiling(batch, scores.grid, target, len(pl_module.label_map))

            def photo(key: str) -> torch.Tensor:  # the clean truth is padded with the scores, as a target
                if key == "clean_label":
                    return scores.targets["clean"]
                return padded(batch[f"original_{key}"], *valid.shape[1:], valid.device)

        else:
            target = batch["label"]
            scored, valid = Prediction.of_probs(crop), torch.ones_like(target, dtype=torch.bool)

            def photo(key: str) -> torch.Tensor:
                return batch[key]

        self.metrics[stage].update(
            scored, target, valid, index, batch.get("landmarks") if scores.grid is not None else None
        )
        if stage == "test":
            for condition in self.conditions:  # the clean prediction on what each condition leaves visible
                hidden = photo(f"occluder/{self.aliases.get(condition, condition)}")
                self.metrics[f"{condition}/visible_clean"].update(scored, target, valid & ~hidden, index)
            if self.natural:
                occluded = torch.isin(target, torch.tensor(self.natural, device=target.device)).flatten(1).any(1)
                occluded = occluded[:, None, None]
                self.metrics["natural"].update(scored, target, valid & occluded, index)
                self.metrics["natural_clear"].update(scored, target, valid & ~occluded, index)
        else:
            occluder, clean = photo("occluder"), photo("clean_label")
            # Under-occluder metrics count only the occluder's pixels that hide face or hair: one over background
            # hides nothing.
            hidden = valid & occluder & (clean != BACKGROUND) & (clean != IGNORE)
            self.metrics[f"{stage}/inside"].update(scored, target, hidden, index)
            self.metrics[f"{stage}/hidden"].update(scored, clean, hidden, index)
            self.metrics[f"{stage}/outside"].update(scored, target, valid & ~occluder, index)
            for i, kind in zip(index.tolist(), batch["occluder_kind"]):  # what each image's occluder is
                self.kinds.setdefault(stage, {})[i] = kind
            for source in batch.get("aligned_by", ()):
                counts = self.aligned_by.setdefault(stage, {})
                counts[source] = counts.get(source, 0) + 1
        if batch_idx == 0 and trainer.is_global_zero:
            self._keep_samples(stage, batch, crop_scores, pl_module)

    def _score_ceiling(self, batch: dict[str, Any], grid: PhotoGrid, target: torch.Tensor, c: int) -> None:
        """The crop's own label as a prediction, warped onto the photo and scored: the resolution ceiling."""
        crop_label = batch["label"].to(target.device)
        crop_label = crop_label.where(crop_label != IGNORE, BACKGROUND)
        perfect = torch.nn.functional.one_hot(crop_label, c).permute(0, 3, 1, 2).float() * (2 * CERTAIN) - CERTAIN
        scored = photo_predictions(perfect[None], grid, [((0,), (1.0,))], [target])[0]
        self.metrics["ceiling"].update(scored, target, grid.valid, batch["index"])

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

    def _gather_kinds(self, condition: str) -> dict[int, str]:
        """Each image's occluder kind, from every process under DDP."""
        kinds = self.kinds.get(condition, {})
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, kinds)
            kinds = {i: kind for part in gathered for i, kind in part.items()}
        return kinds

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Clean metrics as `test/...`; per occluded condition C (facseg.data.conditions) `C/...`: the same
        metrics, their drop from clean (`C/drop/...`, clean minus occluded); under the occluders (`C/inside/...`,
        only occluder pixels that hide face or hair): pixel_acc and rmse against the occluded truth (background),
        and from the clean truth, the share of hidden pixels predicted as the part they hide (`hallucinated`) or
        as background (`not_face`), overall and per class; on the pixels left visible, the occluded prediction
        (`C/outside/...`) and the clean one (`C/visible_clean/...`): their gap is what the occluder costs on what
        stays visible."""
        clean = self._compute("test")
        out = {f"{stage}/loss": loss.compute() for stage, loss in self.losses.items() if loss.update_called}
        out.update({f"test/{k}": v for k, v in clean.items()})
        for condition in self.conditions:
            if not self.metrics[condition].update_called:
                continue
            occluded = self._compute(condition)
            out.update({f"{condition}/{k}": v for k, v in occluded.items()})
            out.update({f"{condition}/drop/{k}": clean[k] - occluded[k] for k in clean if k != "rmse"})
            inside = self._compute(f"{condition}/inside")
            out.update({f"{condition}/inside/{k}": inside[k] for k in ("pixel_acc", "rmse")})
            self._compute(f"{condition}/hidden")
            kinds = self._gather_kinds(condition)
            self.per_image[f"{condition}/hidden"]["occluder_kind"] = np.array(
                [kinds[i] for i in self.per_image[f"{condition}/hidden"]["index"].tolist()]
            )
            rates = metrics_table(self.confusion[f"{condition}/hidden"], [])
            for key in ("hallucinated", "not_face"):
                out[f"{condition}/inside/{key}"] = torch.tensor(float(rates[key]))
                for i, name in enumerate(self.classes[1:], start=1):
                    out[f"{condition}/inside/{key}/{name}"] = torch.tensor(float(rates[f"{key}_class"][i]))
            for part in ("outside", "visible_clean"):
                values = self._compute(f"{condition}/{part}")
                out.update({f"{condition}/{part}/{k}": values[k] for k in SCALARS})
        for stage in ("test", *self.conditions):
            if self.metrics[f"{stage}/crop"].update_called:
                inside_crop = self._compute(f"{stage}/crop")
                out.update({f"{stage}/crop/{k}": inside_crop[k] for k in ("pixel_acc", "rmse")})
        for stage in ("natural", "natural_clear"):
            if stage in self.metrics and self.metrics[stage].update_called:
                out.update({f"{stage}/{k}": v for k, v in self._compute(stage).items()})
        for alias, source in self.aliases.items():  # a severity level that is the primary condition
            out.update({alias + k[len(source) :]: v for k, v in list(out.items()) if k.startswith(f"{source}/")})
            for stage in [s for s in self.per_image if s == source or s.startswith(f"{source}/")]:
                self.per_image[alias + stage[len(source) :]] = self.per_image[stage]
        if self.metrics["ceiling"].update_called:
            ceiling = self._compute("ceiling")
            kept = ("miou", "f1_fg", "iou", "f1")  # pixel accuracy and RMSE of one-hot scores say nothing
            out.update({f"ceiling/{k}": v for k, v in ceiling.items() if k.split("/")[0] in kept})
        self.results = out
        self.shared.clear()
        for loss in self.losses.values():
            loss.reset()
        if self.log and trainer.is_global_zero:  # straight to the loggers: Lightning's self.log costs about a
            # millisecond a key, and a test has ~1,000 (every condition, class and region): 0.8 s a run on 2 cores
            numbers = {k: v for k, v in self.numbers().items() if v is not None}
            for logger in trainer.loggers:
                logger.log_metrics(numbers, step=trainer.global_step)

    def numbers(self) -> dict[str, float | None]:
        """The last test's results as JSON numbers (NaN as None)."""
        return {k: json_number(v) for k, v in self.results.items()}

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            if self.output_dir is not None:
                self.write(self.output_dir)
            self.log_media(trainer.loggers)

    def write(self, output_dir: Path) -> None:
        """confusion.json, per_image.npz and samples.npz in `output_dir` (facseg.runtime.record)."""
        pooled = {stage: self.confusion[stage] for stage in self.stages if stage in self.confusion}
        write_test_files(output_dir, self.classes, pooled, self.aligned_by, self.names, self.per_image, self.samples)

    def log_media(self, loggers: list) -> None:
        """The per-class table, confusion matrices and samples of clean and the primary occluded condition."""
        log_media(loggers, self.numbers(), self.classes, self.stages[:2], self.confusion, self.samples)
