"""Faces found by the YuNet detector (vendored in facseg/assets/yunet, run by OpenCV), each as the photo -> crop
matrix a net expects: its 5 points (eye centres, nose tip, mouth corners) fitted to the training template, as
training aligns from landmarks; for a net trained on whole aligned photos (data.align=false, e.g. CelebA-HQ's), to
where those photos put the points. Used by facseg.predict on users' photos and by the occluded test that realigns
occluded photos from what a detector sees."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facseg.data.crop import letterbox_matrix, similarity_matrix, template_points
from facseg.data.formats import read_landmarks
from facseg.data.landmarks import ALIGNMENT_POINTS

YUNET = Path(__file__).resolve().parents[1] / "assets" / "yunet" / "yunet_n_320_320.onnx"
# YuNet looks at a copy of the photo scaled to this long side (never enlarged): a 17-megapixel portrait costs what a
# 640 px one does, and faces stay larger than YuNet's smallest.
DETECT_SIDE = 640
# How CelebA-HQ frames its aligned photos: where YuNet puts the 5 points (fractions of the side), the mean over the
# 798 of the 800 shared CelebAMask-HQ photos in which it finds a face (std 0.01-0.04 of the side).
WHOLE_PHOTO_POINTS = np.array(
    [[0.3788, 0.4777], [0.6217, 0.4789], [0.4993, 0.6301], [0.3930, 0.7299], [0.6101, 0.7305]]
)


@dataclass
class Face:
    matrix: np.ndarray  # 2 x 3: photo -> crop
    source: str  # "detector", "landmarks" or "whole image"
    box: list[int] | None = None  # x, y, w, h of the detection
    score: float | None = None  # the detector's confidence


class FaceFinder:
    """The faces of a photo, each as the photo -> crop matrix the net expects (`align`: the net's crop.align)."""

    def __init__(
        self, image_size: int, margin: float, detect: bool = True, align: bool = True, min_score: float = 0.7
    ) -> None:
        self.image_size = image_size
        self.template = template_points(image_size, margin) if align else WHOLE_PHOTO_POINTS * image_size
        self.detector = None
        if detect:
            # score threshold, NMS IoU, at most 5000 candidates; the input size is set per photo
            self.detector = cv2.FaceDetectorYN.create(str(YUNET), "", (320, 320), min_score, 0.3, 5000)

    def detect(self, image: np.ndarray) -> list[Face]:
        """YuNet on a scaled copy; points and boxes scaled back to the photo; the surest face first."""
        scale = min(1.0, DETECT_SIDE / max(image.shape[:2]))
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
        self.detector.setInputSize((small.shape[1], small.shape[0]))
        _, found = self.detector.detect(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        faces = []
        for row in [] if found is None else found:
            points = row[4:14].reshape(5, 2).astype(np.float64) / scale
            box = [int(round(v / scale)) for v in row[:4]]
            faces.append(Face(similarity_matrix(points, self.template), "detector", box, float(row[14])))
        return sorted(faces, key=lambda face: -face.score)

    def __call__(self, image: np.ndarray, landmarks: Path | None = None) -> list[Face]:
        """The faces found; none found (or detect=false): the whole photo, letterboxed, as one face."""
        if landmarks is not None:
            points = read_landmarks(landmarks)[list(ALIGNMENT_POINTS)]
            return [Face(similarity_matrix(points, self.template), "landmarks")]
        faces = self.detect(image) if self.detector is not None else []
        return faces or [Face(letterbox_matrix(*image.shape[:2], self.image_size), "whole image")]
