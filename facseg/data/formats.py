"""LaPa's files on disk: the folder layout, and the readers and writers of its images, labels and landmarks.

    ROOT/{train,val,test}/{images/NAME.jpg, labels/NAME.png, landmarks/NAME.txt}

Every reader raises an error that names the file and what was expected. NumPy and OpenCV only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facseg.data.classes import NUM_CLASSES, NUM_LANDMARKS

SPLITS = ("train", "val", "test")  # LaPa's split folders, in this order everywhere
LAYOUT = "ROOT/{train,val,test}/{images/NAME.jpg, labels/NAME.png, landmarks/NAME.txt}"
LAPA_URL = "https://github.com/JDAI-CV/lapa-dataset"
CHECK_HINT = "run `python -m facseg.data.check ROOT` to list every bad file"


class MalformedLandmarks(ValueError):
    pass


@dataclass(frozen=True)
class SplitFiles:
    """One split's files, in name order: every image with its label and (possibly missing) landmark file."""

    images: list[Path]
    labels: list[Path]
    landmarks: list[Path]

    @property
    def names(self) -> list[str]:
        return [p.stem for p in self.images]


def split_files(root: Path | str, split: str) -> SplitFiles:
    """The files of `root/split`; raises, naming the folder or the files, when the layout is broken."""
    split_dir = Path(root) / split
    images_dir, labels_dir = split_dir / "images", split_dir / "labels"
    for folder in (images_dir, labels_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is missing: expected LaPa's layout {LAYOUT} (LaPa: {LAPA_URL})")
    images = sorted(images_dir.glob("*.jpg"))
    if not images:
        raise FileNotFoundError(f"{images_dir} holds no .jpg images: expected LaPa's layout {LAYOUT}")
    labels = [labels_dir / f"{p.stem}.png" for p in images]
    missing = [p.name for p in labels if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{labels_dir} lacks the labels of {len(missing)} images, e.g. {missing[:3]} ({CHECK_HINT})"
        )
    return SplitFiles(images, labels, [split_dir / "landmarks" / f"{p.stem}.txt" for p in images])


def read_image(path: Path) -> np.ndarray:
    """H x W x 3 uint8 RGB."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"{path}: unreadable image ({CHECK_HINT})")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_label(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """H x W uint8 class ids, checked against the image's shape and the class count."""
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise OSError(f"{path}: unreadable label ({CHECK_HINT})")
    if label.ndim != 2 or label.shape != shape or label.dtype != np.uint8:
        raise ValueError(
            f"{path}: expected a 1-channel 8-bit label of {shape[1]}x{shape[0]} px like its image, "
            f"found shape {label.shape} {label.dtype}"
        )
    if label.max() >= NUM_CLASSES:
        raise ValueError(f"{path}: label values must be 0..{NUM_CLASSES - 1}, found {label.max()}")
    return label


def read_landmarks(path: Path) -> np.ndarray:
    """LaPa's landmark file: the count 106, then 106 `x y` pairs. Raises MalformedLandmarks naming the file."""
    try:
        tokens = path.read_text().split()
    except (OSError, UnicodeDecodeError) as e:
        raise MalformedLandmarks(f"{path}: unreadable ({e})") from e
    if not tokens or tokens[0] != str(NUM_LANDMARKS):
        raise MalformedLandmarks(f"{path}: expected the count {NUM_LANDMARKS} first, found {tokens[:1]}")
    if len(tokens) != 1 + 2 * NUM_LANDMARKS:
        raise MalformedLandmarks(f"{path}: expected {NUM_LANDMARKS} x y pairs, found {(len(tokens) - 1) / 2:g}")
    try:
        points = np.array(tokens[1:], dtype=np.float64).reshape(NUM_LANDMARKS, 2)
    except ValueError as e:
        raise MalformedLandmarks(f"{path}: coordinates must be numbers ({e})") from e
    if not np.isfinite(points).all():
        raise MalformedLandmarks(f"{path}: coordinates must be finite")
    return points


def write_landmarks(path: Path, points: np.ndarray) -> None:
    """LaPa's landmark format: the point count, then one `x y` line per point."""
    lines = [str(len(points))] + [f"{x:.3f} {y:.3f}" for x, y in points]
    path.write_text("\n".join(lines) + "\n")
