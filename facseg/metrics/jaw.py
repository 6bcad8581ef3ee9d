"""The jawline: how far the predicted face outline lies from the true one, below the eyes.

- `jaw_nme`, where the photo has LaPa's 106 landmarks (LaPa, the synthetic set): the mean distance from the jaw
  contour's 33 landmarks (0-32) to the predicted face outline, normalised by the inter-ocular distance (the outer
  eye corners, 66 and 79, as 300-W's NME), as landmark benchmarks report an error. The face outline is the 1-px
  boundary of the union of the class set's `face` classes (facseg.data.labels: hair and background out), so the
  jaw is where the face meets neck, hair or background. No predicted face: the photo's diagonal.
- `jaw_bf1/2px`, where it has none (CelebAMask-HQ, a folder): the boundary F at 2 px (facseg.metrics.boundary) of
  the face outline in the rows below the truth's eyes (their mean row): the jaw and the cheeks, not the hairline.
"""

from __future__ import annotations

import cv2
import numpy as np

from facseg.metrics.boundary import boundary_counts, boundary_distances, boundary_map, nearest, pixels

JAW = slice(0, 33)  # LaPa's contour, left to right (facseg.data.landmarks)
OUTER_EYE_CORNERS = (66, 79)
JAW_RADIUS = 2


def face_mask(label: np.ndarray, face: list[int]) -> np.ndarray:
    lut = np.zeros(256, np.uint8)
    lut[face] = 1
    return lut[label]


def jaw_nme(pred: np.ndarray, landmarks: np.ndarray, face: list[int]) -> float:
    """The mean distance of the jaw landmarks (106 x 2, x y in the label map's pixels) to the predicted face's
    outline, over the inter-ocular distance."""
    outline = pixels(boundary_map(face_mask(pred, face)))  # x y, as the landmarks
    distances = np.minimum(nearest(landmarks[JAW], outline), np.hypot(*pred.shape))  # no predicted face: the diagonal
    inter_ocular = np.linalg.norm(landmarks[OUTER_EYE_CORNERS[0]] - landmarks[OUTER_EYE_CORNERS[1]])
    return float(distances.mean() / inter_ocular)


def jaw_counts(pred: np.ndarray, truth: np.ndarray, face: list[int], eyes: list[int]) -> np.ndarray:
    """Boundary F's 4 counts at 2 px (facseg.metrics.boundary.boundary_counts) of the face outline below the
    truth's eyes; zeros where the truth has no eye (the photo does not count)."""
    eye_rows = cv2.findNonZero(face_mask(truth, eyes))
    if eye_rows is None:
        return np.zeros(4, np.int64)
    below = int(eye_rows[:, 0, 1].mean()) + 1
    # The rows below the eyes, and the one above them (a pixel of the first row is on the outline when the pixel
    # above it is not face): the outlines there are those of the whole maps.
    top = max(below - 1, 0)
    pred_outline = boundary_map(face_mask(pred[top:], face))[below - top :]
    truth_outline = boundary_map(face_mask(truth[top:], face))[below - top :]
    return boundary_counts(*boundary_distances(pred_outline, truth_outline), (JAW_RADIUS,))[0]
