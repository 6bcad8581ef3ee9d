"""Albumentations pipelines: one per stage, the same for every model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
from albumentations.pytorch import ToTensorV2

from facseg.data.classes import flip_lut

# ImageNet statistics: what SMP's encoders expect, pretrained or not, so that weights can be swapped in.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class HorizontalFlipSwap(A.HorizontalFlip):
    """A horizontal flip that also relabels left/right parts (2<->3 eyebrows, 4<->5 eyes) in the mask.

    A plain flip moves the left eye's pixels to the right side while keeping its "left" id, which teaches the
    net that a left eye can sit on either side.
    """

    _lut = flip_lut()

    def apply_to_mask(self, mask: np.ndarray, *args: Any, **params: Any) -> np.ndarray:
        return self._lut[super().apply_to_mask(mask, *args, **params)]


def build_pipeline(image_size: int, augmentations: Sequence[A.BasicTransform] = ()) -> A.Compose:
    """Resize to the training resolution, augment (train only), normalise, make tensors.

    Resizing first makes every later step run on image_size pixels rather than on the original photo.
    """
    return A.Compose(
        [
            A.Resize(image_size, image_size, interpolation=cv2.INTER_AREA),
            *augmentations,
            A.Normalize(mean=MEAN, std=STD),
            ToTensorV2(),
        ]
    )
