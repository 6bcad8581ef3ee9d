"""Parsing photos of any size: faces found (YuNet) and aligned, each parsed in its crop and warped back into
the photo, overlays and label maps written once (`facseg.predict` is its command; the demo page uses it too)."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from facseg.data.crop import warp_to_crop
from facseg.data.detect import Face, FaceFinder
from facseg.data.formats import read_image
from facseg.data.warp import warp_to_photos
from facseg.metrics.top_class import top_class
from facseg.models.inference import Parser, load_parser
from facseg.runtime.atomic import write_bytes, write_json

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def crop_region(matrix: np.ndarray, image_size: int, height: int, width: int) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1: the part of the photo the crop covers (its corners mapped back), within the photo."""
    inverse = cv2.invertAffineTransform(matrix)
    edge = [-0.5, image_size - 0.5]
    corners = np.array([[x, y, 1.0] for x in edge for y in edge]) @ inverse.T
    x0, y0 = np.floor(corners.min(0)).astype(int)
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 1
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def parse_photo(image: np.ndarray, faces: list[Face], parser: Parser, band: int = 256) -> np.ndarray:
    """H x W uint8 class ids: every face parsed in its crop and warped back over its own region of the photo, in
    bands of `band` rows (a 17-megapixel photo's 19 class maps would take 1.3 GB at once); where faces overlap, a
    pixel goes to the face surest that it is part of it (the lowest background probability)."""
    height, width = image.shape[:2]
    crops = np.stack([warp_to_crop(image, None, face.matrix, parser.image_size)[0] for face in faces])
    logits = torch.from_numpy(parser.run(parser.normalise(crops)))
    label = np.zeros((height, width), np.uint8)
    # Each pixel's lowest background probability over the faces so far (compared as is: 1 - p would round to 1).
    background = np.ones((height, width), np.float32) if len(faces) > 1 else None
    for face, face_logits in zip(faces, logits):
        x0, y0, x1, y1 = crop_region(face.matrix, parser.image_size, height, width)
        for top in range(y0, y1, band):
            bottom = min(top + band, y1)
            matrix = face.matrix.copy()
            matrix[:, 2] += matrix[:, :2] @ [x0, top]  # band pixel -> crop, for the band's own pixel grid
            scores = warp_to_photos(face_logits[None], torch.from_numpy(matrix[None]), [(bottom - top, x1 - x0)])
            probs = scores[0][0].softmax(0)
            classes = top_class(probs, 0).byte().numpy()
            if background is None:  # one face: its parse, over its region (background where it is surest)
                label[top:bottom, x0:x1] = classes
                continue
            face_background = probs[0].numpy()
            better = face_background < background[top:bottom, x0:x1]
            label[top:bottom, x0:x1][better] = classes[better]
            background[top:bottom, x0:x1][better] = face_background[better]
    return label


def overlay(image: np.ndarray, label: np.ndarray, colours: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The photo with each labelled pixel tinted by its class colour (`colours`: LabelMap.colour_table())."""
    out = image.copy()
    rows, cols = np.flatnonzero(label.any(1)), np.flatnonzero(label.any(0))
    if len(rows) == 0:
        return out
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))  # the faces: most of a photo is background
    pixels, labels = image[box], label[box]
    blended = pixels.astype(np.float32) * (1 - alpha) + colours[labels].astype(np.float32) * alpha
    out[box] = np.where(labels[..., None] > 0, blended.astype(np.uint8), pixels)
    return out


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


def _decode(path: Path) -> np.ndarray | OSError:
    """The photo, or the error that says why it could not be read (raised for it in the parsing loop)."""
    try:
        return read_image(path)
    except OSError as e:
        return e


def _write_outputs(stem: Path, image: np.ndarray, label: np.ndarray, colours: np.ndarray) -> None:
    """STEM.png (class ids) and STEM_overlay.jpg."""
    _write_image(stem.with_name(f"{stem.name}.png"), label, rgb=False)
    _write_image(stem.with_name(f"{stem.name}_overlay.jpg"), overlay(image, label, colours), rgb=True)


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
    results, failures, no_face = {}, {}, []
    start = time.perf_counter()
    # The next photo is decoded and the last one's outputs encoded and written in two threads while the net parses
    # (OpenCV's codecs release the GIL): at most one photo ahead and one behind in memory.
    with ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(1) as writer:
        decoded, written = reader.submit(_decode, images[0]), None
        for i, path in enumerate(tqdm(images, desc="parsing", unit="image", disable=len(images) == 1)):
            image = decoded.result()
            if i + 1 < len(images):
                decoded = reader.submit(_decode, images[i + 1])
            try:
                if isinstance(image, OSError):
                    raise image
                faces = finder(image, _landmark_file(landmarks, path, single=len(images) == 1))
                if finder.detector is not None and faces[0].source == "whole image":
                    no_face.append(path.name)
                    log.warning("%s: no face found; parsed as a whole image", path.name)
                label = parse_photo(image, faces, parser)
            except (OSError, ValueError) as e:  # an unreadable photo or landmark file: named, the others go on
                failures[path.name] = str(e)
                log.error("%s", e)
                continue
            if written is not None:
                written.result()  # a write error stops the run here
            written = writer.submit(_write_outputs, output / path.stem, image, label, colours)
            results[path.name] = {
                "size": list(image.shape[:2]),
                "faces": [{"source": f.source, "box": f.box, "score": f.score} for f in faces],
            }
        if written is not None:
            written.result()
    seconds = time.perf_counter() - start
    summary = {
        "model": parser.model,
        "checkpoint": str(cfg.ckpt_path),
        "images": results,
        "no_face_found": no_face,
        "failed": failures,
        "photos_per_second": len(results) / seconds if seconds > 0 else None,
    }
    write_json(output / "predictions.json", summary)
    if failures:
        raise RuntimeError(
            f"{len(failures)} of {len(images)} images failed (see {output / 'predictions.json'}): "
            + "; ".join(f"{k}: {v}" for k, v in list(failures.items())[:3])
        )
    return summary
