"""Each test batch's member probabilities, worked out once for every evaluator that scores the batch: softmax on
the crop and, when scoring at the photo's resolution, each member's logits warped back onto its photo first
(facseg.scoring.warp) and only then turned into probabilities, so a single net and an ensemble go through the same
warp of the same quantity."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import torch

from facseg.scoring.warp import warp_to_photos


@dataclass
class MemberProbabilities:
    """A test batch's members' softmax probabilities, M x N x C x ...: on the crop and, when it is scored on the
    photos, warped back onto them (each member's logits warped, then softmax), with the masks of the photos' own
    pixels and of those the crop covers."""

    crop: torch.Tensor
    photo: torch.Tensor | None = None
    valid: torch.Tensor | None = None
    covered: torch.Tensor | None = None

    @classmethod
    def of(cls, members: torch.Tensor, batch: dict[str, Any]) -> MemberProbabilities:
        probs = cls(members.float().softmax(2))
        if "original_label" in batch:
            sizes = [tuple(label.shape) for label in batch["original_label"]]
            for i, logits in enumerate(members):  # one member at a time: the photos are the big tensors
                warped, probs.valid, probs.covered = warp_to_photos(logits, batch["matrix"], sizes)
                if probs.photo is None:
                    probs.photo = warped.new_empty(len(members), *warped.shape)
                torch.softmax(warped, 1, out=probs.photo[i])
        return probs

    def mean(self, where: str, members: list[int], weights: torch.Tensor) -> torch.Tensor:
        """The members' weighted mean probability, N x C x ..., on the crop or the photo."""
        probs = self.crop if where == "crop" else self.photo
        if len(members) == 1:
            return probs[members[0]]
        out = probs[members[0]] * weights[0].item()
        for member, weight in zip(members[1:], weights[1:].tolist()):  # in place: no M x N x C x H x W copy
            out.add_(probs[member], alpha=weight)
        return out


def trim_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc's malloc_trim; elsewhere nothing)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class SharedBatch:
    """The current test batch's MemberProbabilities, worked out once for all the evaluators given this object
    (facseg.scoring.onepass.score: one evaluator per ensemble of the same checkpoints, in one test pass).

    `trim`: trim the heap as each batch's probabilities are freed. Scoring 16 ensembles in one pass, the photo-sized
    tensors made and freed every batch fragment glibc's heap: 10.2 GB resident after 44 batches without, 2.9 GB
    with, 5 % slower (docs/performance.md).
    """

    def __init__(self, trim: bool = False) -> None:
        self.key: tuple[int, int] | None = None
        self.probs: MemberProbabilities | None = None
        self.trim = trim

    def __call__(self, key: tuple[int, int], members: torch.Tensor, batch: dict[str, Any]) -> MemberProbabilities:
        if key != self.key:
            self.clear()  # the last batch's freed first
            self.key, self.probs = key, MemberProbabilities.of(members, batch)
        return self.probs

    def clear(self) -> None:
        self.key, self.probs = None, None
        if self.trim:
            trim_heap()
