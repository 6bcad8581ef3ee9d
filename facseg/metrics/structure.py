"""Global structure of a parse: where region overlap is blind to the shape of the error.

- Extra fragments: the 8-connected components of a class's prediction that touch no truth pixel of that class
  (a stray blob of eye on the cheek; the part's own region, however ragged, is not one).
- HD95: the 95th-percentile Hausdorff distance between the two boundaries (facseg.metrics.boundary's 1-px maps),
  symmetric as MONAI's `compute_hausdorff_distance(percentile=95)`: the larger of the two directed 95th
  percentiles. Conventions differ where a class is on one side only (MONAI returns NaN, TransUNet 0): facseg
  scores the photo's diagonal, so that a miss stays in the mean; absent from both, the image does not count.
- A plausible parse (`anatomy_ok`): for each class of the class set's `single` (each eye, brow, the nose and each
  lip: facseg.data.labels' `anatomy`), no more regions than the truth shows, one at least (a region: a component of
  at least a tenth of the class's largest; a brow parted by a strand of hair is two in the truth too, and
  CelebAMask-HQ's masks hold stray pixels of a lip or a brow in about a third of the faces), and for each pair of
  its `sides`, no pixel of one predicted where the truth has the other (a left eye where the right one is).
"""

from __future__ import annotations

import cv2
import numpy as np


def components(mask: np.ndarray) -> tuple[int, np.ndarray]:
    """The number of 8-connected components of a 0/1 mask, and its map of their labels (0: outside)."""
    count, labels = cv2.connectedComponents(mask.astype(np.uint8, copy=False), connectivity=8)
    return count - 1, labels


def regions(mask: np.ndarray, labels: np.ndarray | None = None, count: int | None = None) -> int:
    """A mask's regions: its 8-connected components of at least a tenth of its largest one's pixels (a speck, a
    stray pixel of an annotation's edge, is not a region; extra fragments count those). `labels`, `count`: its
    components (`components`), where they are at hand."""
    if labels is None:
        count, labels = components(mask)
    if count <= 1:
        return count
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    return int(np.count_nonzero(areas * 10 >= areas.max()))


def extra_fragments(count: int, labels: np.ndarray, truth_mask: np.ndarray) -> int:
    """Of a prediction's `count` components (`components`), those that touch no pixel of `truth_mask`."""
    if count == 0:
        return 0
    touching = np.bincount(labels[truth_mask > 0], minlength=count + 1)[1:]  # label 0: outside the prediction
    return count - int(np.count_nonzero(touching))


def hd95(pred_distances: np.ndarray, truth_distances: np.ndarray) -> float:
    """The symmetric 95th-percentile Hausdorff distance of two boundaries, from each one's pixels' distances to the
    other (facseg.metrics.boundary.boundary_distances); inf where one boundary is empty (the caller scores the
    diagonal)."""
    if len(pred_distances) == 0 or len(truth_distances) == 0:
        return float("inf")
    return float(max(percentile_95(pred_distances), percentile_95(truth_distances)))


def percentile_95(values: np.ndarray) -> float:
    """NumPy's default (linear) 95th percentile, by one partial sort: np.percentile's overhead is most of its time
    on a boundary's few thousand distances."""
    rank = 0.95 * (len(values) - 1)
    low = int(rank)
    high = min(low + 1, len(values) - 1)
    parted = np.partition(values, (low, high))
    return float(parted[low] + (parted[high] - parted[low]) * (rank - low))


def sides_swapped(confusion: np.ndarray, sides: list[tuple[int, int]]) -> bool:
    """Whether, in an image's confusion matrix (truth x prediction), any pixel of one side of a pair is predicted
    where the truth has the other."""
    return any(confusion[a, b] + confusion[b, a] > 0 for a, b in sides)
