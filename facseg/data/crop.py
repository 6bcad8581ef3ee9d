"""The crop a net sees: a photo warped to a square, aligned on 5 landmarks (or letterboxed), and its settings.

As in the face-parsing literature, 5 points (eye centres, nose tip, mouth corners) are fitted by least squares to a
fixed template, so every face lands at the same place and size in the crop whatever its position, scale and roll in
the photo. Every matrix here maps original pixel coordinates to crop pixel coordinates (2 x 3, OpenCV's convention);
facseg.data.warp takes predictions the way back. NumPy and OpenCV only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facseg.data.labels import BACKGROUND
from facseg.data.landmarks import ALIGNMENT_POINTS


@dataclass(frozen=True)
class CropSettings:
    """Everything that decides a crop's pixels; a checkpoint records them (`crop`) and is scored with them."""

    image_size: int = 512
    align: bool = True  # 5-point landmark alignment; False: letterbox the whole photo
    margin: float = 0.6


# The 5-point template of face recognition crops (ArcFace, 112 x 112 px): left eye, right eye, nose tip, left and
# right mouth corners, as fractions of the crop side. Left = image left, as in LaPa.
TEMPLATE = (
    np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]])
    / 112.0
)


def template_points(image_size: int, margin: float) -> np.ndarray:
    """The template in crop pixels, shrunk about the crop centre by 1 / (1 + margin) and moved down a little.

    The recognition template crops tightly around eyes and mouth; a face parser must also see the forehead, the
    hair and the jaw, hence the margin (0.6: the eyes are a fifth of the crop apart), and hair reaches further above
    the eyes than the chin below the mouth, hence the shift.
    """
    return ((TEMPLATE - 0.5) / (1.0 + margin) + [0.5, 0.55]) * image_size


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares similarity (rotation, uniform scale, translation; no reflection) taking src to dst."""
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    s, d = src - src_mean, dst - dst_mean
    # Umeyama (1991): the rotation from the SVD of the cross-covariance, the scale from the singular values.
    u, sigma, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(sigma) @ sign) / s.var(0).sum()
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def alignment_matrix(landmarks: np.ndarray, image_size: int, margin: float) -> np.ndarray:
    """Photo -> crop, from LaPa's 106 landmarks."""
    return similarity_matrix(landmarks[list(ALIGNMENT_POINTS)], template_points(image_size, margin))


def letterbox_matrix(height: int, width: int, image_size: int) -> np.ndarray:
    """Photo -> crop without landmarks: the whole photo, scaled to fit and centred, the rest padded.

    The fallback for images without a landmark file, and the mapping when alignment is off.
    """
    scale = image_size / max(height, width)
    # Pixel centres sit at integer coordinates, so the photo's edges (-0.5, W - 0.5) map to the crop's edges.
    shift = 0.5 * scale - 0.5
    return np.array(
        [
            [scale, 0.0, (image_size - scale * width) / 2 + shift],
            [0.0, scale, (image_size - scale * height) / 2 + shift],
        ]
    )


def warp_to_crop(image: np.ndarray, label: np.ndarray | None, matrix: np.ndarray, image_size: int):
    """Warp a photo (bilinear) and its label map (nearest) into the crop; outside the photo is black / background."""
    scale = np.sqrt(abs(np.linalg.det(matrix[:, :2])))
    if scale < 0.5:
        # A bilinear warp that shrinks a photo more than 2x aliases; shrink by area first, warp the rest.
        factor = 2 * scale
        image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        image_matrix = matrix @ np.diag([1 / factor, 1 / factor, 1.0])
    else:
        image_matrix = matrix
    size = (image_size, image_size)
    crop = cv2.warpAffine(image, image_matrix, size, flags=cv2.INTER_LINEAR, borderValue=0)
    if label is None:
        return crop, None
    crop_label = cv2.warpAffine(label, matrix, size, flags=cv2.INTER_NEAREST, borderValue=BACKGROUND)
    return crop, crop_label


def crop_matrix(points: np.ndarray | None, shape: tuple[int, int], settings: CropSettings) -> np.ndarray:
    """Photo -> crop: landmark alignment when on and the photo has landmarks (SplitFiles.points); else the
    letterbox."""
    if settings.align and points is not None:
        return alignment_matrix(points, settings.image_size, settings.margin)
    return letterbox_matrix(*shape, settings.image_size)
