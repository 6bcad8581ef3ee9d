"""Boundary quality of one class, from the literature's definitions, at the scoring resolution (pixels).

- Boundary F (the DAVIS benchmark's `f_measure`, Perazzi et al. CVPR 2016; per class as GSCNN's `f_boundary`):
  each mask's 1-px boundary map; a predicted boundary pixel is matched when a truth boundary pixel lies within a
  disk of radius t (Euclidean, x^2 + y^2 <= t^2, skimage's `disk`), and the converse for recall; F is their
  harmonic mean. facseg fixes t in pixels (1, 2, 4) where DAVIS takes 0.8 % of the diagonal.
- Boundary IoU (Cheng et al., CVPR 2021, `mask_to_boundary`): the inner band of width d of each mask (the mask
  minus its erosion by a 3x3 square, d times, the image's edge counted as outside), and the IoU of the two bands.
  facseg fixes d at 2 and 5 px: the paper's 2 % of the diagonal is 14 px at 512 px, wider than a brow, so the band
  would be the whole part and Boundary IoU its region IoU.

Both are kept as additive counts (matched and total boundary pixels; the bands' intersection and union), so that
they pool over images as the confusion matrices do. The distances also give HD95 (facseg.metrics.structure).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import cKDTree

CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """The 1-px inner boundary (uint8 0/1) of a 0/1 mask: its pixels with a 4-neighbour outside it. The image's
    edge is not a boundary, as in DAVIS's `_seg2bmap` (which marks a pixel whose right, lower or lower-right
    neighbour differs: thinner, and not the same under a flip; this map is)."""
    mask = mask.astype(np.uint8, copy=False)
    return mask - cv2.erode(mask, CROSS)  # erode's default border counts as inside


def inner_band(mask: np.ndarray, width: int) -> np.ndarray:
    """Boundary IoU's band (uint8 0/1): the mask's pixels within `width` 8-connected steps of its outside, the
    image's edge counted as outside (the paper pads one zero pixel before eroding)."""
    mask = mask.astype(np.uint8, copy=False)
    square = np.ones((2 * width + 1, 2 * width + 1), np.uint8)  # = the 3 x 3 square `width` times, in one pass
    return mask - cv2.erode(mask, square, borderType=cv2.BORDER_CONSTANT, borderValue=0)


def boundary_distances(pred_boundary: np.ndarray, truth_boundary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each predicted boundary pixel's Euclidean distance to the nearest truth boundary pixel, and the converse
    (float64, exact: nearest neighbours among the boundary pixels, SciPy's k-d tree; inf where the other boundary is
    empty). Boundaries are thin, so this costs far less than a distance transform of the image."""
    pred_points, truth_points = pixels(pred_boundary), pixels(truth_boundary)
    return nearest(pred_points, truth_points), nearest(truth_points, pred_points)


def pixels(mask: np.ndarray) -> np.ndarray:
    """The x y coordinates of a 0/1 mask's pixels, n x 2 (OpenCV's findNonZero: a third of NumPy's argwhere)."""
    found = cv2.findNonZero(mask)
    return np.zeros((0, 2), np.int32) if found is None else found[:, 0]


def nearest(points: np.ndarray, to: np.ndarray) -> np.ndarray:
    """Each point's distance to the nearest of `to` (inf when `to` is empty)."""
    if len(to) == 0 or len(points) == 0:
        return np.full(len(points), np.inf)
    return cKDTree(to, balanced_tree=False, compact_nodes=False).query(points)[0]  # unbalanced: built faster


def boundary_counts(pred_distances: np.ndarray, truth_distances: np.ndarray, radii: tuple[int, ...]) -> np.ndarray:
    """len(radii) x 4: matched predicted boundary pixels, predicted boundary pixels, matched truth boundary
    pixels, truth boundary pixels; from `boundary_distances`."""
    return np.array(
        [
            [(pred_distances <= t).sum(), len(pred_distances), (truth_distances <= t).sum(), len(truth_distances)]
            for t in radii
        ],
        dtype=np.int64,
    )


def band_counts(pred_mask: np.ndarray, truth_mask: np.ndarray, widths: tuple[int, ...]) -> np.ndarray:
    """len(widths) x 2: the intersection and the union of the two inner bands, in pixels."""
    out = np.zeros((len(widths), 2), np.int64)
    for i, width in enumerate(widths):
        pred_band, truth_band = inner_band(pred_mask, width), inner_band(truth_mask, width)
        inter = int(np.count_nonzero(pred_band & truth_band))
        out[i] = inter, int(np.count_nonzero(pred_band)) + int(np.count_nonzero(truth_band)) - inter
    return out


def f_of_counts(counts: np.ndarray) -> np.ndarray:
    """Boundary F from counts `...` x 4 (pooled over images by summing): NaN where the truth has no boundary
    pixel (a class the truth lacks, as region F1); 0 where it has and nothing matched."""
    matched_pred, pred, matched_truth, truth = np.moveaxis(counts.astype(np.float64), -1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(pred > 0, matched_pred / pred, 0.0)
        recall = matched_truth / truth
        f = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return np.where(truth > 0, f, np.nan)


def iou_of_counts(counts: np.ndarray) -> np.ndarray:
    """Boundary IoU from counts `...` x 2 (summed over images): NaN where both bands are empty."""
    inter, union = np.moveaxis(counts.astype(np.float64), -1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, np.nan)
