"""Parse faces in your own photos: a label map (the net's class ids, the photo's resolution) and a colour overlay.

    python -m facseg.predict ckpt_path=model.ckpt input=photo.jpg output=parsed/
    python -m facseg.predict ckpt_path=model.onnx input=photos/ output=parsed/         (ONNX Runtime)
    python -m facseg.predict ckpt_path=model.ckpt input=photos/ output=parsed/ detect=false   (pre-cropped faces)
    python -m facseg.predict ckpt_path=model.ckpt input=LaPa/test/images output=parsed/ landmarks=LaPa/test/landmarks

Faces are found by OpenCV's bundled Haar cascade (no download), or aligned from LaPa's 106-point landmark files
when `landmarks` names them, exactly as in training; `detect=false` parses the whole image (a CelebA-HQ-style
aligned photo, for a net trained on them). Each face is cut into
the crop the net was trained on, parsed, and warped back; where faces overlap, the more confident one wins.
Per image: NAME.png (uint8 class ids) and NAME_overlay.jpg; and predictions.json lists the faces found.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm

import facseg  # noqa: F401  (registers the config resolvers)
from facseg.data.crop import alignment_matrix, letterbox_matrix, warp_to_crop
from facseg.data.formats import read_image, read_landmarks
from facseg.inference import Parser, load_parser
from facseg.io import write_bytes, write_json
from facseg.warp import warp_to_photos

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
# Where a Haar face box lands in the training crop (fractions of its side): its centre and side. Aligned crops:
# measured on LaPa photos with landmarks (the crop's margin leaves room for the box's jitter). Whole photos (a net
# trained with data.align=false, e.g. on CelebA-HQ's aligned photos): the median box of the 776 faces of the 800
# shared CelebAMask-HQ photos in which it finds one (centre 0.501, 0.553; side 0.648, quartiles 0.617-0.678).
BOX_PLACEMENT = {True: ((0.51, 0.59), 0.55), False: ((0.50, 0.55), 0.65)}
CASCADE = "haarcascade_frontalface_default.xml"


@dataclass
class Face:
    matrix: np.ndarray  # 2 x 3: photo -> crop
    source: str  # "detector", "landmarks" or "whole image"
    box: list[int] | None = None  # x, y, w, h of the detection


class FaceFinder:
    def __init__(
        self, image_size: int, margin: float, detect: bool = True, min_face: int = 40, align: bool = True
    ) -> None:
        self.image_size, self.margin, self.min_face = image_size, margin, min_face
        self.box_centre, self.box_side = BOX_PLACEMENT[align]
        self.cascade = None
        if detect:
            self.cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / CASCADE))
            if self.cascade.empty():
                raise RuntimeError(f"OpenCV's {CASCADE} did not load: reinstall opencv-python-headless<5")

    def box_matrix(self, x: float, y: float, w: float, h: float) -> np.ndarray:
        """Scale and shift that put a detected box where training crops have their face box."""
        scale = self.box_side * self.image_size / max(w, h)
        cx, cy = x + w / 2, y + h / 2
        return np.array(
            [
                [scale, 0.0, self.box_centre[0] * self.image_size - scale * cx],
                [0.0, scale, self.box_centre[1] * self.image_size - scale * cy],
            ]
        )

    def __call__(self, image: np.ndarray, landmarks: Path | None = None) -> list[Face]:
        if landmarks is not None:
            return [Face(alignment_matrix(read_landmarks(landmarks), self.image_size, self.margin), "landmarks")]
        if self.cascade is not None:
            grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            boxes = self.cascade.detectMultiScale(
                grey, scaleFactor=1.1, minNeighbors=5, minSize=(self.min_face, self.min_face)
            )
            if len(boxes):
                return [Face(self.box_matrix(*b), "detector", [int(v) for v in b]) for b in boxes]
        return [Face(letterbox_matrix(*image.shape[:2], self.image_size), "whole image")]


def parse_photo(image: np.ndarray, faces: list[Face], parser: Parser) -> np.ndarray:
    """H x W uint8 class ids: every face parsed in its crop and warped back; overlaps go to the surer face."""
    crops = np.stack([warp_to_crop(image, None, face.matrix, parser.image_size)[0] for face in faces])
    logits = torch.from_numpy(parser.run(parser.normalise(crops)))
    matrices = torch.from_numpy(np.stack([face.matrix for face in faces]))
    probs = warp_to_photos(logits, matrices, [image.shape[:2]] * len(faces))[0].softmax(1)
    # Each pixel goes to the face surest that the pixel is part of it (1 - its background probability).
    best_face = probs[:, 0].argmin(0)
    label = probs.argmax(1).gather(0, best_face[None])[0]
    return label.byte().numpy()


def overlay(image: np.ndarray, label: np.ndarray, colours: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The photo with each labelled pixel tinted by its class colour (`colours`: LabelMap.colour_table())."""
    colours = colours[label].astype(np.float32)
    blended = image.astype(np.float32) * (1 - alpha) + colours * alpha
    return np.where(label[..., None] > 0, blended, image).astype(np.uint8)


def _inputs(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise FileNotFoundError(f"input={path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return images
    raise FileNotFoundError(f"input={path}: no such image or folder")


def _landmark_file(landmarks: Path | None, image: Path, single: bool) -> Path | None:
    if landmarks is None:
        return None
    path = landmarks if landmarks.is_file() and single else landmarks / f"{image.stem}.txt"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no landmark file for {image.name} (landmarks= names a LaPa .txt file "
            "for one image, or a folder of NAME.txt)"
        )
    return path


def _write_image(path: Path, image: np.ndarray, rgb: bool) -> None:
    """Written whole or not at all: a kill mid-write leaves no truncated PNG behind."""
    ok, encoded = cv2.imencode(path.suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if rgb else image)
    if not ok:
        raise OSError(f"{path}: could not encode the image")
    write_bytes(path, encoded.tobytes())


def predict(cfg: DictConfig) -> dict[str, Any]:
    if not cfg.ckpt_path or not cfg.input or not cfg.output:
        raise ValueError("give ckpt_path=MODEL (.ckpt, .onnx or .pt), input=IMAGE_OR_FOLDER and output=FOLDER")
    images = _inputs(Path(cfg.input))
    output = Path(cfg.output)
    stems = {}
    for image in images:
        if image.stem in stems:
            raise ValueError(f"{stems[image.stem].name} and {image.name} would both write {image.stem}.png")
        stems[image.stem] = image
    planned = [output / f"{p.stem}{end}" for p in images for end in (".png", "_overlay.jpg")]
    existing = [p for p in planned if p.exists()]
    if existing and not cfg.overwrite:
        raise FileExistsError(
            f"{len(existing)} outputs exist already, e.g. {existing[0]}: "
            "give overwrite=true to replace them, or another output="
        )
    landmarks = Path(cfg.landmarks) if cfg.landmarks else None
    parser = load_parser(cfg.ckpt_path, cfg.device, str(cfg.precision), cfg.channels_last, cfg.compile, cfg.tta)
    finder = FaceFinder(parser.image_size, parser.margin, cfg.detect and landmarks is None, align=parser.align)
    colours = parser.labels.colour_table()
    output.mkdir(parents=True, exist_ok=True)
    results, failures = {}, {}
    for path in tqdm(images, desc="parsing", unit="image", disable=len(images) == 1):
        try:
            image = read_image(path)
            faces = finder(image, _landmark_file(landmarks, path, single=len(images) == 1))
            label = parse_photo(image, faces, parser)
        except (OSError, ValueError) as e:  # an unreadable photo or landmark file: named, the others go on
            failures[path.name] = str(e)
            log.error("%s", e)
            continue
        _write_image(output / f"{path.stem}.png", label, rgb=False)
        _write_image(output / f"{path.stem}_overlay.jpg", overlay(image, label, colours), rgb=True)
        results[path.name] = {
            "size": list(image.shape[:2]),
            "faces": [{"source": f.source, "box": f.box} for f in faces],
        }
    summary = {"model": parser.model, "checkpoint": str(cfg.ckpt_path), "images": results, "failed": failures}
    write_json(output / "predictions.json", summary)
    if failures:
        raise RuntimeError(
            f"{len(failures)} of {len(images)} images failed (see {output / 'predictions.json'}): "
            + "; ".join(f"{k}: {v}" for k, v in list(failures.items())[:3])
        )
    return summary


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    summary = predict(cfg)
    faces = sum(len(r["faces"]) for r in summary["images"].values())
    print(f"{len(summary['images'])} images, {faces} faces parsed -> {cfg.output}")


if __name__ == "__main__":
    main()
