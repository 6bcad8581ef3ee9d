"""Albumentations pieces: the left/right-aware flip, a random occluder, and the per-stage pipeline."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import albumentations as A
import numpy as np
from albumentations.pytorch import ToTensorV2

from facseg.data.labels import BACKGROUND, LabelMap
from facseg.data.landmarks import NUM_LANDMARKS, landmark_flip_permutation
from facseg.data.occlusion import KINDS, LAPA_FACE, Occlusion, draw_occluder

# ImageNet statistics: what SMP's encoders expect, pretrained or not, so that weights can be swapped in.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class HorizontalFlipSwap(A.HorizontalFlip):
    """A horizontal flip that keeps each sided class on its own side of the face.

    In the mask it swaps the class set's left/right pairs (`mirror`: id -> mirrored id; LaPa's 2<->3 eyebrows and
    4<->5 eyes unless the data module sets its class set's); given LaPa's 106 landmarks as keypoints (in order, with
    `remove_invisible=False`), it also renumbers them, so that point 74 stays the left eye's centre. A plain flip
    would teach the net that a left eye can sit on either side.
    """

    _perm = landmark_flip_permutation()

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p=p)
        self.mirror = LabelMap.named("lapa").mirror().astype(np.uint8)

    def apply_to_mask(self, mask: np.ndarray, *args: Any, **params: Any) -> np.ndarray:
        return self.mirror[super().apply_to_mask(mask, *args, **params)]

    def apply_to_keypoints(self, keypoints: np.ndarray, **params: Any) -> np.ndarray:
        flipped = super().apply_to_keypoints(keypoints, **params)
        if len(flipped) != NUM_LANDMARKS:
            raise ValueError(
                f"HorizontalFlipSwap renumbers LaPa's {NUM_LANDMARKS} landmarks, got {len(flipped)} "
                "keypoints (use KeypointParams(remove_invisible=False))"
            )
        return flipped[self._perm]


class RandomOccluder(A.DualTransform):
    """Training augmentation: an occluder (facseg.data.occlusion) hiding a random fraction of the face.

    Its pixels are labelled background, as LaPa labels real occluders. `coverage`: the range the hidden fraction of
    the face is drawn from; `kinds`: which occluders to draw from.
    """

    def __init__(
        self,
        coverage: tuple[float, float] = (0.1, 0.3),
        kinds: Sequence[str] = KINDS,
        p: float = 0.5,
        face: Sequence[int] = LAPA_FACE,
    ) -> None:
        super().__init__(p=p)
        self.coverage = coverage
        self.kinds = tuple(kinds)
        self.face = tuple(face)

    @property
    def targets_as_params(self) -> list[str]:
        return ["mask"]

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        rng = self.random_generator
        coverage = rng.uniform(*self.coverage)
        return {"occlusion": draw_occluder(data["mask"], coverage, rng, self.kinds, face=self.face)}

    def apply(self, img: np.ndarray, occlusion: Occlusion, **params: Any) -> np.ndarray:
        return occlusion.apply(img)[0]

    def apply_to_mask(self, mask: np.ndarray, occlusion: Occlusion, **params: Any) -> np.ndarray:
        out = mask.copy()
        out[occlusion.mask] = BACKGROUND
        return out

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("coverage", "kinds", "face")


def build_pipeline(
    augmentations: Sequence[A.BasicTransform] = (), mean: Sequence[float] = MEAN, std: Sequence[float] = STD
) -> A.Compose:
    """Augment (training only), normalise, make tensors; the input is already the aligned square crop."""
    return A.Compose([*augmentations, A.Normalize(mean=mean, std=std), ToTensorV2()])


def seed_pipeline(pipeline: A.Compose, seed: int, epoch: int, index: int) -> None:
    """Make the augmentation of one sample a function of (run seed, epoch, sample index) alone.

    Albumentations ignores the global seeds and keeps its own generators, which every DataLoader worker copies, so a
    run's augmentations would otherwise change with the worker count and between identical runs. One shared stream
    for all transforms: Compose(seed=...) would give each transform the same stream, correlating their draws.
    """
    pipeline.set_random_state(np.random.default_rng([seed, epoch, index]), random.Random(f"{seed}/{epoch}/{index}"))
