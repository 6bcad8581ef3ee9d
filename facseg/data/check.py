"""Check a dataset folder before training on it.

    python -m facseg.data.check ROOT [--format lapa|celebamask] [--workers N]   (the format: from the layout)

Prints, per split, the image, label and landmark counts and the class pixel frequencies, then every problem found,
each naming its file: pairs with a missing partner, image/label size mismatches, label values outside the class
set, labels that are not 1-channel 8-bit (or palette), unreadable or truncated files, landmark files that are not
`106` + 106 `x y` pairs (LaPa); ids listed without their photo or mask, ids in two splits, missing split lists
(CelebAMask-HQ, preprocessed); the mapping and CelebA partition files, photos, part masks that are missing, of
unknown part names, not 512 px, not binary or unreadable (CelebAMask-HQ, official). Exits 0 when the folder is
usable (warnings allowed), 1 otherwise.
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

from facseg.data import celebamask
from facseg.data.formats import LABEL_MODES, SPLITS, MalformedLandmarks, read_landmarks
from facseg.data.labels import FOLDER_CLASSES, LabelMap
from facseg.data.layouts import FORMATS


@dataclass
class SampleResult:
    errors: list[str] = field(default_factory=list)
    class_pixels: np.ndarray | None = None


def _truncated(path: Path, end_marker: bytes) -> bool:
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64))
        return end_marker not in f.read()


def _check_photo(image: Path, result: SampleResult) -> tuple[int, int] | None:
    """The photo's (width, height), None when it is broken (the error is added)."""
    try:
        end = b"\xff\xd9" if image.suffix.lower() == ".jpg" else b"IEND"
        if _truncated(image, end):
            result.errors.append(f"{image}: truncated (no {'JPEG end marker' if end != b'IEND' else 'PNG IEND chunk'})")
            return None
        with Image.open(image) as im:
            size = im.size
            expected = "JPEG" if image.suffix.lower() == ".jpg" else "PNG"
            if im.format != expected:
                result.errors.append(f"{image}: expected a {expected}, found {im.format}")
            im.draft("RGB", (im.size[0] // 8, im.size[1] // 8))  # decode at 1/8 scale: finds corrupt data fast
            im.load()
        return size
    except Exception as e:  # PIL raises many types for broken files
        result.errors.append(f"{image}: unreadable ({e})")
        return None


def _sizes_agree(image_size: tuple[int, int], label_size: tuple[int, int], scale_images: bool) -> bool:
    if not scale_images:
        return image_size == label_size
    # A photo may be larger than its label map (CelebA-HQ: 1024 px photos, 512 px maps), in the same proportions.
    return image_size[0] >= label_size[0] and image_size[0] * label_size[1] == image_size[1] * label_size[0]


def check_sample(
    image: Path, label: Path | None, landmarks: Path | None, num_classes: int = 11, scale_images: bool = False
) -> SampleResult:
    """Every check of one image and its partners; cheap enough to run over all of LaPa in minutes."""
    result = SampleResult()
    image_size = _check_photo(image, result)
    if label is not None:
        try:
            if _truncated(label, b"IEND"):
                result.errors.append(f"{label}: truncated (no PNG IEND chunk)")
                return result
            with Image.open(label) as im:
                if im.mode not in LABEL_MODES:
                    result.errors.append(f"{label}: expected a 1-channel 8-bit (or palette) PNG, found mode {im.mode}")
                values = np.asarray(im)
            label_size = values.shape[1], values.shape[0]
            if image_size is not None and not _sizes_agree(image_size, label_size, scale_images):
                result.errors.append(
                    f"{label}: size {label_size[0]}x{label_size[1]} differs from its image's "
                    f"{image_size[0]}x{image_size[1]}"
                )
            if values.ndim == 2:
                if values.max(initial=0) >= num_classes:
                    bad = sorted(set(np.unique(values[values >= num_classes]).tolist()))
                    result.errors.append(f"{label}: values {bad[:5]} outside 0..{num_classes - 1}")
                else:
                    result.class_pixels = np.bincount(values.ravel(), minlength=num_classes)
        except Exception as e:
            result.errors.append(f"{label}: unreadable ({e})")
    if landmarks is not None:
        try:
            read_landmarks(landmarks)
        except MalformedLandmarks as e:
            result.errors.append(str(e))
    return result


def check_parts(image: Path, parts: list[Path]) -> SampleResult:
    """One face of the official CelebAMask-HQ release: its photo, and each part mask (512 px, binary, readable)."""
    result = SampleResult()
    _check_photo(image, result)
    label = np.zeros((512, 512), np.uint8)
    for path in sorted(parts, key=lambda p: celebamask.PARTS.index(p.stem.split("_", 1)[1])):
        try:
            with Image.open(path) as im:
                mask = np.asarray(im.convert("L"))
            if mask.shape != label.shape:
                result.errors.append(f"{path}: {mask.shape[1]}x{mask.shape[0]} px, expected 512x512")
                continue
            if not np.isin(mask, (0, 255)).all():
                result.errors.append(f"{path}: not a binary mask (values other than 0 and 255)")
            label[mask > 127] = celebamask.PARTS.index(path.stem.split("_", 1)[1]) + 1
        except Exception as e:
            result.errors.append(f"{path}: unreadable ({e})")
    result.class_pixels = np.bincount(label.ravel(), minlength=len(celebamask.PARTS) + 1)
    return result


@dataclass
class SplitReport:
    name: str
    num_classes: int = 11
    images: int = 0
    labels: int = 0
    landmarks: int = 0
    class_pixels: np.ndarray | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.class_pixels is None:
            self.class_pixels = np.zeros(self.num_classes, np.int64)

    def add(self, results) -> None:
        for result in results:
            self.errors += result.errors
            if result.class_pixels is not None:
                self.class_pixels += result.class_pixels


def check_lapa_split(root: Path, split: str, pool: ProcessPoolExecutor, num_classes: int = 11) -> SplitReport:
    report = SplitReport(split, num_classes)
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
    jobs = [(images[s], labels.get(s), landmarks.get(s), num_classes) for s in sorted(images)]
    report.add(pool.map(check_sample, *zip(*jobs), chunksize=64) if jobs else ())
    return report


def check_preprocessed(root: Path, pool: ProcessPoolExecutor, num_classes: int) -> list[SplitReport]:
    """CelebAMask-HQ as preprocessing scripts write it: images/, masks/, {train,val,test}.txt."""
    layout = celebamask.PreprocessedLayout(root, num_classes)
    reports, seen = [], {}
    for split in SPLITS:
        report = SplitReport(split, num_classes)
        reports.append(report)
        try:
            ids = layout.ids(split)
        except (FileNotFoundError, ValueError) as e:
            report.errors.append(str(e))
            continue
        jobs = []
        for id_ in ids:
            if id_ in seen:
                report.errors.append(f"{root / (split + '.txt')}: {id_} is also in {seen[id_]}.txt (splits overlap)")
                continue
            seen[id_] = split
            image, mask = layout.image(id_), root / "masks" / f"{id_}.png"
            report.images += image.is_file()
            report.labels += mask.is_file()
            if not image.is_file():
                report.errors.append(f"{image}: missing (listed in {split}.txt)")
            elif not mask.is_file():
                report.errors.append(f"{mask}: missing (listed in {split}.txt)")
            else:
                jobs.append((image, mask, None, num_classes, True))
        report.add(pool.map(check_sample, *zip(*jobs), chunksize=64) if jobs else ())
    listed = set(seen)
    unlisted = sorted(p.name for p in (root / "masks").glob("*.png") if p.stem not in listed)
    if unlisted:
        reports[0].warnings.append(f"{root / 'masks'}: {len(unlisted)} masks in no split, e.g. {unlisted[:3]}")
    return reports


def check_official(root: Path, pool: ProcessPoolExecutor) -> list[SplitReport]:
    """The official CelebAMask-HQ release: photos, part masks, the mapping and CelebA's partition."""
    num_classes = len(celebamask.PARTS) + 1
    reports = [SplitReport(split, num_classes) for split in SPLITS]
    try:
        splits = celebamask.read_split(root)
    except (FileNotFoundError, ValueError) as e:
        reports[0].errors.append(str(e))
        return reports
    parts: dict[int, list[Path]] = defaultdict(list)
    for folder in sorted(p for p in (root / celebamask.MASKS).iterdir() if p.is_dir()):
        for path in folder.iterdir():
            index, _, part = path.stem.partition("_")
            if path.suffix != ".png" or not index.isdigit() or part not in celebamask.PARTS:
                reports[0].errors.append(
                    f"{path}: not a part mask (expected NNNNN_<part>.png, part one of {' '.join(celebamask.PARTS)})"
                )
            elif not folder.name.isdigit() or int(index) // celebamask.FACES_PER_FOLDER != int(folder.name):
                home = root / celebamask.MASKS / str(int(index) // celebamask.FACES_PER_FOLDER)
                reports[0].errors.append(f"{path}: face {int(index)} belongs in {home}")
            else:
                parts[int(index)].append(path)
    for report, split in zip(reports, SPLITS):
        jobs = []
        for index in splits[split]:
            photo = root / celebamask.PHOTOS / f"{index}.jpg"
            report.images += photo.is_file()
            report.labels += bool(parts.get(index))
            if not photo.is_file():
                report.errors.append(f"{photo}: missing (face {index} of the {split} split)")
            elif not parts.get(index):
                report.errors.append(
                    f"{root / celebamask.MASKS}: face {index} has no part masks ({index:05d}_<part>.png)"
                )
            else:
                if "skin" not in {p.stem.split("_", 1)[1] for p in parts[index]}:
                    report.warnings.append(
                        f"{celebamask.part_path(root, index, 'skin')}: missing (a face without skin)"
                    )
                jobs.append((photo, parts[index]))
        report.add(pool.map(check_parts, *zip(*jobs), chunksize=64) if jobs else ())
    return reports


ACCEPTED = (
    "LaPa (ROOT/{train,val,test}/{images,labels,landmarks}/), CelebAMask-HQ as released (ROOT/CelebA-HQ-img/, "
    "ROOT/CelebAMask-HQ-mask-anno/, ...) or preprocessed (ROOT/images/, ROOT/masks/, ROOT/{train,val,test}.txt), "
    f"or a folder of your own (the preprocessed layout plus ROOT/{FOLDER_CLASSES}, its class set)"
)


def class_set(root: Path, format: str) -> LabelMap:
    return LabelMap.of_folder(root) if format == "folder" else LabelMap.named(format)


def detect_format(root: Path) -> str | None:
    """The format whose layout the folder has (LaPa's split folders, or either CelebAMask-HQ layout); None."""
    if any((root / split / "images").is_dir() for split in SPLITS):
        return "lapa"
    if (root / FOLDER_CLASSES).is_file():
        return "folder"
    if (root / celebamask.MASKS).is_dir() or ((root / "images").is_dir() and (root / "masks").is_dir()):
        return "celebamask"
    return None


def check_dataset(root: Path, workers: int | None = None, format: str | None = None) -> list[SplitReport]:
    """`format`: lapa or celebamask; None: recognised from the folder's layout."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    format = format or detect_format(root)
    if format is None:
        raise FileNotFoundError(f"{root} has none of the layouts facseg reads: {ACCEPTED}")
    num_classes = len(class_set(root, format))
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        if format == "lapa":
            return [check_lapa_split(root, split, pool, num_classes) for split in SPLITS]
        if format == "folder":
            return check_preprocessed(root, pool, num_classes)
        if (root / celebamask.MASKS).is_dir():
            return check_official(root, pool)
        if (root / "images").is_dir() and (root / "masks").is_dir():
            return check_preprocessed(root, pool, num_classes)
        raise FileNotFoundError(f"{root} is not a CelebAMask-HQ folder: expected {celebamask.LAYOUTS}")


def format_report(reports: list[SplitReport], class_names: tuple[str, ...], max_listed: int = 20) -> str:
    lines = [f"{'split':<6} {'images':>7} {'labels':>7} {'landmarks':>9} {'errors':>7} {'warnings':>8}"]
    for r in reports:
        lines.append(
            f"{r.name:<6} {r.images:>7} {r.labels:>7} {r.landmarks:>9} {len(r.errors):>7} {len(r.warnings):>8}"
        )
    lines.append("\nclass pixel frequency (% of labelled pixels)")
    lines.append(f"{'class':<14}" + "".join(f"{r.name:>9}" for r in reports))
    for i, name in enumerate(class_names):
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
    parser.add_argument("root", type=Path, help="the dataset's folder")
    parser.add_argument(
        "--format", choices=FORMATS, default=None, help="the dataset's format (data.format; default: from its layout)"
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--max-listed", type=int, default=20, help="problems listed per kind")
    args = parser.parse_args(argv)
    format = args.format or detect_format(args.root)
    try:
        reports = check_dataset(args.root, args.workers, format)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not any(r.images or r.labels for r in reports):
        print(f"error: {args.root} holds no {format} images or labels: expected {ACCEPTED}", file=sys.stderr)
        return 1
    print(f"{args.root}: {format} layout" + ("" if args.format else " (recognised)"))
    print(format_report(reports, class_set(args.root, format).names, args.max_listed))
    usable = not any(r.errors for r in reports)
    print(f"\n{args.root}: {'usable' if usable else 'NOT usable: fix the errors above'}")
    return 0 if usable else 1


if __name__ == "__main__":
    sys.exit(main())
