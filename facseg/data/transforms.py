"""Albumentations pieces: the left/right-aware flip, a random occluder, and the per-stage pipeline."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
from albumentations.pytorch import ToTensorV2

from facseg.data.classes import BACKGROUND, NUM_LANDMARKS, flip_lut, landmark_flip_permutation

# ImageNet statistics: what SMP's encoders expect, pretrained or not, so that weights can be swapped in.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class HorizontalFlipSwap(A.HorizontalFlip):
    """A horizontal flip that keeps "left" meaning the image's left.

    In the mask it swaps 2<->3 (eyebrows) and 4<->5 (eyes); given LaPa's 106 landmarks as keypoints (in order,
    with `remove_invisible=False`), it also renumbers them, so that point 74 stays the left eye's centre. A plain
    flip would teach the net that a left eye can sit on either side.
    """

    _lut = flip_lut()
    _perm = landmark_flip_permutation()

    def apply_to_mask(self, mask: np.ndarray, *args: Any, **params: Any) -> np.ndarray:
        return self._lut[super().apply_to_mask(mask, *args, **params)]

    def apply_to_keypoints(self, keypoints: np.ndarray, **params: Any) -> np.ndarray:
        flipped = super().apply_to_keypoints(keypoints, **params)
        if len(flipped) != NUM_LANDMARKS:
            raise ValueError(f"HorizontalFlipSwap renumbers LaPa's {NUM_LANDMARKS} landmarks, got {len(flipped)} "
                             "keypoints (use KeypointParams(remove_invisible=False))")  # fmt: skip
        return flipped[self._perm]


class RandomOccluder(A.DualTransform):
    """Paste an object over part of the face: a solid or noise-textured ellipse, polygon or bar.

    Ground truth under the occluder becomes background, as LaPa annotates real occluders (hands, microphones): only
    visible parts are labelled, so a parser is rewarded for not hallucinating an eye through a hand. `coverage` is
    the fraction of the face's bounding box (all non-background pixels) that the occluder's box spans.
    """

    def __init__(self, coverage: tuple[float, float] = (0.1, 0.3), p: float = 0.5) -> None:
        super().__init__(p=p)
        self.coverage = coverage

    @property
    def targets_as_params(self) -> list[str]:
        return ["mask"]

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        mask = data["mask"]
        ys, xs = np.nonzero(mask != BACKGROUND)
        if len(xs) == 0:
            ys, xs = np.array([0, mask.shape[0] - 1]), np.array([0, mask.shape[1] - 1])
        x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
        rng = self.random_generator
        side = np.sqrt(rng.uniform(*self.coverage))
        w, h = max(2, int(side * (x1 - x0 + 1))), max(2, int(side * (y1 - y0 + 1)))
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        shape = np.zeros(mask.shape, np.uint8)
        kind = rng.integers(3)
        if kind == 0:
            cv2.ellipse(shape, (int(cx), int(cy)), (w // 2, h // 2), float(rng.uniform(0, 180)), 0, 360, 1, -1)
        elif kind == 1:
            angles = np.sort(rng.uniform(0, 2 * np.pi, 7))
            radii = rng.uniform(0.5, 1.0, 7)
            pts = np.stack([cx + radii * w / 2 * np.cos(angles), cy + radii * h / 2 * np.sin(angles)], 1)
            cv2.fillPoly(shape, [pts.astype(np.int32)], 1)
        else:  # a bar: glasses' frame, a microphone, a strap
            angle = rng.uniform(-np.pi / 4, np.pi / 4) + (np.pi / 2 if rng.random() < 0.3 else 0)
            dx, dy = np.cos(angle) * w / 2, np.sin(angle) * w / 2
            thickness = max(2, int(h * rng.uniform(0.1, 0.25)))
            cv2.line(shape, (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy)), 1, thickness)
        colour = rng.uniform(0, 255, 3)
        noise = rng.normal(0, rng.uniform(0, 60), (*mask.shape, 3)) if rng.random() < 0.5 else 0.0
        return {"occluder": shape.astype(bool), "fill": np.clip(colour + noise, 0, 255)}

    def apply(self, img: np.ndarray, occluder: np.ndarray, fill: Any, **params: Any) -> np.ndarray:
        out = img.copy()
        fill = np.broadcast_to(fill, img.shape)
        out[occluder] = fill[occluder].astype(img.dtype)
        return out

    def apply_to_mask(self, mask: np.ndarray, occluder: np.ndarray, **params: Any) -> np.ndarray:
        out = mask.copy()
        out[occluder] = BACKGROUND
        return out

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("coverage",)


def build_pipeline(augmentations: Sequence[A.BasicTransform] = ()) -> A.Compose:
    """Augment (training only), normalise, make tensors; the input is already the aligned square crop."""
    return A.Compose([*augmentations, A.Normalize(mean=MEAN, std=STD), ToTensorV2()])


def seed_pipeline(pipeline: A.Compose, seed: int, epoch: int, index: int) -> None:
    """Make the augmentation of one sample a function of (run seed, epoch, sample index) alone.

    Albumentations ignores the global seeds and keeps its own generators, which every DataLoader worker copies, so a
    run's augmentations would otherwise change with the worker count and between identical runs. One shared stream
    for all transforms: Compose(seed=...) would give each transform the same stream, correlating their draws.
    """
    pipeline.set_random_state(np.random.default_rng([seed, epoch, index]), random.Random(f"{seed}/{epoch}/{index}"))
