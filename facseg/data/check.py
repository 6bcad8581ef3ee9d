"""Check a LaPa-format folder before training on it.

    python -m facseg.data.check ROOT [--workers N]

Prints, per split, the image, label and landmark counts and the class pixel frequencies, then every problem found:
pairs with a missing partner, image/label size mismatches, label values outside 0..10, labels that are not
1-channel 8-bit, unreadable or truncated files, landmark files that are not `106` + 106 `x y` pairs. Exits 0 when
the folder is usable (warnings allowed), 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from facseg.data.classes import CLASS_NAMES, NUM_CLASSES
from facseg.data.formats import SPLITS, MalformedLandmarks, read_landmarks


@dataclass
class SampleResult:
    errors: list[str] = field(default_factory=list)
    class_pixels: np.ndarray | None = None


def _truncated(path: Path, end_marker: bytes) -> bool:
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64))
        return end_marker not in f.read()


def check_sample(image: Path, label: Path | None, landmarks: Path | None) -> SampleResult:
    """Every check of one image and its partners; cheap enough to run over all of LaPa in minutes."""
    result = SampleResult()
    image_size = None
    try:
        if _truncated(image, b"\xff\xd9"):
            result.errors.append(f"{image}: truncated (no JPEG end marker)")
        else:
            with Image.open(image) as im:
                image_size = im.size
                if im.format != "JPEG":
                    result.errors.append(f"{image}: expected a JPEG, found {im.format}")
                im.draft("RGB", (im.size[0] // 8, im.size[1] // 8))  # decode at 1/8 scale: finds corrupt data fast
                im.load()
    except Exception as e:  # PIL raises many types for broken files
        result.errors.append(f"{image}: unreadable ({e})")
    if label is not None:
        try:
            if _truncated(label, b"IEND"):
                result.errors.append(f"{label}: truncated (no PNG IEND chunk)")
                return result
            with Image.open(label) as im:
                if im.mode != "L":
                    result.errors.append(f"{label}: expected a 1-channel 8-bit PNG, found mode {im.mode}")
                values = np.asarray(im)
            if image_size is not None and values.shape[:2] != image_size[::-1]:
                result.errors.append(
                    f"{label}: size {values.shape[1]}x{values.shape[0]} differs from its image's "
                    f"{image_size[0]}x{image_size[1]}"
                )
            if values.ndim == 2:
                if values.max(initial=0) >= NUM_CLASSES:
                    bad = sorted(set(np.unique(values[values >= NUM_CLASSES]).tolist()))
                    result.errors.append(f"{label}: values {bad[:5]} outside 0..{NUM_CLASSES - 1}")
                else:
                    result.class_pixels = np.bincount(values.ravel(), minlength=NUM_CLASSES)
        except Exception as e:
            result.errors.append(f"{label}: unreadable ({e})")
    if landmarks is not None:
        try:
            read_landmarks(landmarks)
        except MalformedLandmarks as e:
            result.errors.append(str(e))
    return result


@dataclass
class SplitReport:
    name: str
    images: int = 0
    labels: int = 0
    landmarks: int = 0
    class_pixels: np.ndarray = field(default_factory=lambda: np.zeros(NUM_CLASSES, np.int64))
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_split(root: Path, split: str, pool: ProcessPoolExecutor) -> SplitReport:
    report = SplitReport(split)
    folders = {kind: root / split / kind for kind in ("images", "labels", "landmarks")}
    stems: dict[str, dict[str, Path]] = defaultdict(dict)
    for kind, suffix in (("images", ".jpg"), ("labels", ".png"), ("landmarks", ".txt")):
        if not folders[kind].is_dir():
            message = f"{folders[kind]}: missing folder"
            (report.warnings if kind == "landmarks" else report.errors).append(message)
            continue
        for path in folders[kind].iterdir():
            if path.suffix.lower() == suffix:
                stems[kind][path.stem] = path
            elif path.is_file():
                report.warnings.append(f"{path}: ignored (expected *{suffix} in {kind}/)")
    report.images, report.labels, report.landmarks = (len(stems[k]) for k in ("images", "labels", "landmarks"))
    images, labels, landmarks = stems["images"], stems["labels"], stems["landmarks"]
    for stem in sorted(labels.keys() - images.keys()):
        report.errors.append(f"{labels[stem]}: label without an image")
    for stem in sorted(images.keys() - labels.keys()):
        report.errors.append(f"{images[stem]}: image without a label ({folders['labels'] / (stem + '.png')})")
    if folders["landmarks"].is_dir():
        for stem in sorted(images.keys() - landmarks.keys()):
            report.warnings.append(f"{images[stem]}: no landmark file (the letterbox crop is used instead)")
        for stem in sorted(landmarks.keys() - images.keys()):
            report.warnings.append(f"{landmarks[stem]}: landmarks without an image")
    if report.images == 0 and folders["images"].is_dir():
        report.errors.append(f"{folders['images']}: no .jpg images")
    stems_sorted = sorted(images)
    jobs = [(images[s], labels.get(s), landmarks.get(s)) for s in stems_sorted]
    for result in pool.map(check_sample, *zip(*jobs), chunksize=64) if jobs else ():
        report.errors += result.errors
        if result.class_pixels is not None:
            report.class_pixels += result.class_pixels
    return report


def check_dataset(root: Path, workers: int | None = None) -> list[SplitReport]:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        return [check_split(root, split, pool) for split in SPLITS]


def format_report(reports: list[SplitReport], max_listed: int = 20) -> str:
    lines = [f"{'split':<6} {'images':>7} {'labels':>7} {'landmarks':>9} {'errors':>7} {'warnings':>8}"]
    for r in reports:
        lines.append(
            f"{r.name:<6} {r.images:>7} {r.labels:>7} {r.landmarks:>9} {len(r.errors):>7} {len(r.warnings):>8}"
        )
    lines.append("\nclass pixel frequency (% of labelled pixels)")
    lines.append(f"{'class':<14}" + "".join(f"{r.name:>9}" for r in reports))
    for i, name in enumerate(CLASS_NAMES):
        cells = "".join(f"{100 * r.class_pixels[i] / max(1, r.class_pixels.sum()):>9.3f}" for r in reports)
        lines.append(f"{name:<14}{cells}")
    for kind in ("errors", "warnings"):
        problems = [p for r in reports for p in getattr(r, kind)]
        if problems:
            lines.append(f"\n{len(problems)} {kind}:")
            lines += [f"  {p}" for p in problems[:max_listed]]
            if len(problems) > max_listed:
                lines.append(f"  ... and {len(problems) - max_listed} more")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="LaPa-format folder: ROOT/{train,val,test}/{images,labels,landmarks}")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--max-listed", type=int, default=20, help="problems listed per kind")
    args = parser.parse_args(argv)
    try:
        reports = check_dataset(args.root, args.workers)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_report(reports, args.max_listed))
    usable = not any(r.errors for r in reports)
    print(f"\n{args.root}: {'usable' if usable else 'NOT usable: fix the errors above'}")
    return 0 if usable else 1


if __name__ == "__main__":
    sys.exit(main())
