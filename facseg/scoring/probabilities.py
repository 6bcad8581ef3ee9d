"""Each test batch's scores, worked out once for every evaluator that scores the batch (facseg.scoring.onepass: one
evaluator per ensemble of the same checkpoints): the members' softmax probabilities on the crop and, when scoring
at the photo's resolution, each evaluator's Prediction on the photos.

On the photos, each member's logits are warped back (facseg.data.warp) and only then turned into probabilities,
so a single net and an ensemble go through the same warp of the same quantity; an ensemble is the weighted mean of
its members' probabilities. The photos are worked through a band of rows at a time, every member and every
evaluator's ensemble in each band, and only what the metrics read is kept: the arg-max, the sum of squared
probabilities and the probability of each target's class (never N x C x H x W probabilities, per member or at
all). Each pixel's arithmetic is that of whole tensors, but a CPU kernel may round a band's last bit otherwise (its
vector tail): probabilities agree to a float's rounding, arg-maxes wherever two classes are not tied to within it
(tests/test_crop.py); a whole test pass's numbers on the synthetic and CelebAMask-HQ test splits came out bit for
bit the same. About 2x faster on 2 CPU cores, the bands staying in the cache (docs/performance.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from facseg.data.labels import BACKGROUND, IGNORE
from facseg.data.warp import PhotoGrid
from facseg.metrics.region import Prediction
from facseg.runtime.memory import trim_heap

BAND = 1 << 19  # floats of one member's probabilities per band of rows (2 MB): what stays in a CPU's cache
Scoring = tuple[tuple[int, ...], tuple[float, ...]]  # an ensemble's members and their normalised weights


def padded(tensors: list[torch.Tensor], height: int, width: int, device: torch.device) -> torch.Tensor:
    """Photo-sized tensors of several sizes, padded with zeros to one N x H x W tensor."""
    out = torch.zeros(len(tensors), height, width, dtype=tensors[0].dtype, device=device)
    for i, t in enumerate(tensors):
        out[i, : t.shape[0], : t.shape[1]] = t.to(device)
    return out


def mean(probs: torch.Tensor, members: tuple[int, ...], weights: tuple[float, ...]) -> torch.Tensor:
    """The members' weighted mean probability, N x C x ... (one member: its own, as it is)."""
    if len(members) == 1:
        return probs[members[0]]
    out = probs[members[0]] * weights[0]
    for member, weight in zip(members[1:], weights[1:]):  # in place: no M x N x C x H x W copy
        out.add_(probs[member], alpha=weight)
    return out


def photo_predictions(
    logits: torch.Tensor, grid: PhotoGrid, scorings: list[Scoring], targets: list[torch.Tensor]
) -> list[Prediction]:
    """M x N x C x S x S member crop logits -> each scoring's Prediction on the photos (N x H x W), with the
    probability of each target's class (N x H x W class ids, no IGNORE) kept for its squared error."""
    m, n, c = logits.shape[:3]
    height, width = grid.valid.shape[1:]
    used = sorted({i for members, _ in scorings for i in members})
    preds = [Prediction.empty(n, height, width, logits.device, targets) for _ in scorings]
    ids = {id(t): t.where(t != IGNORE, BACKGROUND).unsqueeze(1) for t in targets}
    rows = max(1, BAND // (n * c * width))
    for top in range(0, height, rows):
        band = grid.band(top, top + rows)
        probs = logits.new_empty(m, n, c, *band.grid.shape[1:3], dtype=torch.float32)
        for i in used:
            torch.softmax(band.warp(logits[i]), 1, out=probs[i])
        for (members, weights), pred in zip(scorings, preds):
            pred.fill(slice(top, top + rows), mean(probs, members, weights), ids)
    return preds


@dataclass
class BatchScores:
    """A test batch's members' softmax probabilities on the crop (M x N x C x S x S) and, when it is scored on the
    photos, its PhotoGrid, its targets there (`target`, and under an occluded condition `clean`, padded) and each
    scoring's Prediction on them."""

    crop: torch.Tensor
    grid: PhotoGrid | None = None
    photo: dict | None = None  # scoring -> Prediction
    targets: dict | None = None  # name -> N x H x W

    def prediction(self, scoring: Scoring, logits: torch.Tensor) -> Prediction:
        """The scoring's Prediction on the photos (worked out alone if no evaluator said it in advance)."""
        if scoring not in self.photo:
            targets = list(self.targets.values())
            self.photo[scoring] = photo_predictions(logits, self.grid, [scoring], targets)[0]
        return self.photo[scoring]


class SharedBatch:
    """The current test batch's BatchScores, worked out once for all the evaluators given this object, each of which
    says in advance what it scores (`expect`): their photo predictions come out of one banded pass.

    The heap is trimmed as each batch's scores are freed (facseg.runtime.memory): the photo-sized tensors made and
    freed every batch would otherwise fragment it, and the resident memory would grow with the test split (one
    run's test of 48 photos at 512 px, every default condition: 8.2 GB without, 1.8 GB with, and no slower;
    16 ensembles in one pass: 10.2 GB after 44 batches without, 2.9 GB with; docs/performance.md).
    """

    def __init__(self) -> None:
        self.key: tuple[int, int] | None = None
        self.scores: BatchScores | None = None
        self.scorings: list[Scoring] = []

    def expect(self, scoring: Scoring) -> None:
        if scoring not in self.scorings:
            self.scorings.append(scoring)

    def __call__(self, key: tuple[int, int], members: torch.Tensor, batch: dict[str, Any]) -> BatchScores:
        if key != self.key:
            self.clear()  # the last batch's freed first
            self.key, self.scores = key, self._scores(members, batch)
        return self.scores

    def _scores(self, members: torch.Tensor, batch: dict[str, Any]) -> BatchScores:
        scores = BatchScores(members.float().softmax(2))
        if "original_label" in batch:
            sizes = [tuple(label.shape) for label in batch["original_label"]]
            scores.grid = grid = PhotoGrid.of(batch["matrix"], sizes, members.shape[-1], members.device)
            height, width = grid.valid.shape[1:]
            scores.targets = {"target": padded(batch["original_label"], height, width, members.device)}
            if "original_clean_label" in batch:
                scores.targets["clean"] = padded(batch["original_clean_label"], height, width, members.device)
            targets = list(scores.targets.values())
            scores.photo = dict(zip(self.scorings, photo_predictions(members, grid, self.scorings, targets)))
        return scores

    def clear(self) -> None:
        self.key, self.scores = None, None
        trim_heap()
