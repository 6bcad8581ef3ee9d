"""Datasets' files on disk: which photo goes with which label map (and landmarks), per split, and their readers.

    data.format=lapa         ROOT/{train,val,test}/{images/NAME.jpg, labels/NAME.png, landmarks/NAME.txt}
    data.format=celebamask   CelebAMask-HQ as released, or as its preprocessing scripts write it (see
                             facseg.data.celebamask)

facseg.data.layouts.open_layout gives a dataset's Layout; `Layout.files(split)` its SplitFiles; `SplitFiles.read(i)`
one photo and its label map, at the label map's resolution. Every reader raises an error that names the file and what
was expected. NumPy, Pillow and OpenCV only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from PIL import Image

from facseg.data.landmarks import NUM_LANDMARKS

SPLITS = ("train", "val", "test")  # LaPa's split folders, in this order everywhere
LAYOUT = "ROOT/{train,val,test}/{images/NAME.jpg, labels/NAME.png, landmarks/NAME.txt}"
LAPA_URL = "https://github.com/JDAI-CV/lapa-dataset"
CHECK_HINT = "run `python -m facseg.data.check ROOT` to list every bad file"


class MalformedLandmarks(ValueError):
    pass


@dataclass(frozen=True)
class SplitFiles:
    """One split's files, in order: every image with its label and its landmark file (missing or None: none).

    `scale_images`: photos larger than their label maps are scaled down to them (CelebA-HQ's photos are 1024 px,
    its label maps 512 px, and the field scores at 512); otherwise a size mismatch is an error.
    """

    images: list[Path]
    labels: list[Path]
    landmarks: list[Path | None]
    num_classes: int
    scale_images: bool = False

    @property
    def names(self) -> list[str]:
        return [p.stem for p in self.images]

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(H x W x 3 uint8 RGB photo, H x W uint8 label map) of one image, at the label map's resolution."""
        image = read_image(self.images[index])
        label = read_label(self.labels[index], None if self.scale_images else image.shape[:2], self.num_classes)
        if image.shape[:2] != label.shape:
            if image.shape[0] < label.shape[0] or image.shape[1] < label.shape[1]:
                raise ValueError(
                    f"{self.images[index]}: {image.shape[1]}x{image.shape[0]} px, smaller than its label map "
                    f"{self.labels[index]} ({label.shape[1]}x{label.shape[0]})"
                )
            image = cv2.resize(image, label.shape[::-1], interpolation=cv2.INTER_AREA)
        return image, label

    def points(self, index: int) -> np.ndarray | None:
        """The photo's 106 landmarks (x y, its pixels), read once per photo by whatever needs them; None without a
        landmark file."""
        path = self.landmarks[index]
        return read_landmarks(path) if path is not None and path.is_file() else None


class Layout(Protocol):
    """A dataset on disk: `files(split)` for each of SPLITS; `prepare()` builds what reading it needs, once."""

    root: Path
    format: str  # data.format

    def files(self, split: str) -> SplitFiles: ...

    def prepare(self, workers: int | None = None) -> None: ...


@dataclass(frozen=True)
class LaPaLayout:
    root: Path
    num_classes: int = 11
    format = "lapa"

    def files(self, split: str) -> SplitFiles:
        return split_files(self.root, split, self.num_classes)

    def prepare(self, workers: int | None = None) -> None:
        missing = [
            str(self.root / s / k) for s in SPLITS for k in ("images", "labels") if not (self.root / s / k).is_dir()
        ]
        if missing:
            raise FileNotFoundError(
                f"data.root={self.root} is not a LaPa-format folder: missing {', '.join(missing)}. Expected {LAYOUT}; "
                f"LaPa is published at {LAPA_URL}."
            )


def split_files(root: Path | str, split: str, num_classes: int = 11) -> SplitFiles:
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
    return SplitFiles(images, labels, [split_dir / "landmarks" / f"{p.stem}.txt" for p in images], num_classes)


def read_image(path: Path) -> np.ndarray:
    """H x W x 3 uint8 RGB."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"{path}: unreadable image ({CHECK_HINT})")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


LABEL_MODES = ("L", "P")  # 8-bit grey, or palette PNGs, whose indices are the class ids


def read_label(path: Path, shape: tuple[int, int] | None, num_classes: int) -> np.ndarray:
    """H x W uint8 class ids, checked against the image's shape (when given) and the class count.

    Pillow, not OpenCV: OpenCV turns a palette PNG into the palette's colours, losing the ids.
    """
    try:
        with Image.open(path) as im:
            mode = im.mode
            label = np.array(im)
    except (OSError, ValueError) as e:
        raise OSError(f"{path}: unreadable label ({e}; {CHECK_HINT})") from e
    if mode not in LABEL_MODES or (shape is not None and label.shape != shape):
        expected = "" if shape is None else f" of {shape[1]}x{shape[0]} px like its image"
        raise ValueError(
            f"{path}: expected a 1-channel 8-bit (or palette) label{expected}, found mode {mode} {label.shape}"
        )
    if label.max(initial=0) >= num_classes:
        raise ValueError(f"{path}: label values must be 0..{num_classes - 1}, found {label.max()}")
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
