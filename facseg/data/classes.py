"""LaPa's label map: class ids, names, display colours and the left/right pairs a mirror swaps."""

from __future__ import annotations

import numpy as np

CLASS_NAMES: tuple[str, ...] = (
    "background",
    "skin",
    "left_eyebrow",
    "right_eyebrow",
    "left_eye",
    "right_eye",
    "nose",
    "upper_lip",
    "inner_mouth",
    "lower_lip",
    "hair",
)
NUM_CLASSES = len(CLASS_NAMES)
BACKGROUND = 0

# "left" means the left side of the image, so a horizontal flip turns a left eyebrow into a right one.
FLIP_PAIRS: tuple[tuple[int, int], ...] = ((2, 3), (4, 5))

# RGB colours for overlays and figures, one per class id.
CLASS_COLOURS = np.array(
    [
        (0, 0, 0),
        (255, 204, 153),
        (0, 153, 0),
        (0, 255, 0),
        (0, 0, 204),
        (51, 153, 255),
        (255, 153, 0),
        (204, 0, 0),
        (102, 0, 102),
        (255, 51, 153),
        (102, 51, 0),
    ],
    dtype=np.uint8,
)


def flip_lut() -> np.ndarray:
    """A lookup table mapping every class id to its mirror-image id."""
    lut = np.arange(NUM_CLASSES, dtype=np.uint8)
    for a, b in FLIP_PAIRS:
        lut[a], lut[b] = b, a
    return lut


def colourise(label: np.ndarray) -> np.ndarray:
    """An HxW label map as an HxWx3 RGB image."""
    return CLASS_COLOURS[label]
