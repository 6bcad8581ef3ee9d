"""CelebAMask-HQ on disk, in the two layouts users have (data=celebamask tells them apart by their folders).

    official, as downloaded:  ROOT/CelebA-HQ-img/<n>.jpg                          1024 px photos, n = 0..29999
                              ROOT/CelebAMask-HQ-mask-anno/<k>/<nnnnn>_<part>.png  512 px binary masks, k = n // 2000
                              ROOT/CelebA-HQ-to-CelebA-mapping.txt                 idx orig_idx orig_file
                              ROOT/list_eval_partition.txt                         CelebA's split (0/1/2 per file)
    preprocessed:             ROOT/images/<id>.jpg, ROOT/masks/<id>.png (index or palette PNG, ids 0..18),
                              ROOT/{train,val,test}.txt (one id per line)

The official release has one binary mask per part present; facseg composes them into one label map per face in the
release's own order (later parts drawn over earlier ones, as its g_mask.py does), once, into `composed_dir`, with a
progress bar and a fingerprint of the part files, so a changed release is composed again. Its split is CelebA's
identity-disjoint one (train 24,183 / val 2,993 / test 2,824), through the mapping file. Photos are scaled to the
label maps' 512 px, where the field scores. NumPy, Pillow and OpenCV only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from facseg.data.formats import CHECK_HINT, SPLITS, SplitFiles

log = logging.getLogger(__name__)

# The parts of the official release, in its drawing order; a part's class id is its place here plus one.
PARTS = tuple(
    "skin nose eye_g l_eye r_eye l_brow r_brow l_ear r_ear mouth u_lip l_lip hair hat ear_r neck_l neck cloth".split()
)
PHOTOS, MASKS, MAPPING, PARTITION = (
    "CelebA-HQ-img",
    "CelebAMask-HQ-mask-anno",
    "CelebA-HQ-to-CelebA-mapping.txt",
    "list_eval_partition.txt",
)
FACES_PER_FOLDER = 2000
PARTITION_OF = {"train": 0, "val": 1, "test": 2}
CELEBAMASK_URL = "https://github.com/switchablenorms/CelebAMask-HQ"
CELEBA_URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
LAYOUTS = (
    f"the official release (ROOT/{PHOTOS}/, ROOT/{MASKS}/, ROOT/{MAPPING}, ROOT/{PARTITION}) or the preprocessed "
    "layout (ROOT/images/, ROOT/masks/, ROOT/{train,val,test}.txt)"
)
COMPOSE_VERSION = 1


def celebamask_layout(root: Path, num_classes: int, composed_dir: Path | str | None):
    """The layout of the CelebAMask-HQ copy at `root`, told apart by its folders."""
    if (root / MASKS).is_dir():
        if composed_dir is None:
            raise ValueError(f"{root} is the official CelebAMask-HQ release: data.composed_dir must name a folder")
        return OfficialLayout(root, num_classes, Path(composed_dir))
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return PreprocessedLayout(root, num_classes)
    raise FileNotFoundError(f"data.root={root} is not a CelebAMask-HQ folder: expected {LAYOUTS} ({CELEBAMASK_URL})")


@dataclass(frozen=True)
class PreprocessedLayout:
    root: Path
    num_classes: int = len(PARTS) + 1
    format = "celebamask"

    def ids(self, split: str) -> list[str]:
        path = self.root / f"{split}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: the preprocessed layout lists each split's ids in {path.name}")
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if not ids:
            raise ValueError(f"{path} lists no ids")
        return ids

    def image(self, id_: str) -> Path:
        jpg = self.root / "images" / f"{id_}.jpg"
        return jpg if jpg.is_file() or not (self.root / "images" / f"{id_}.png").is_file() else jpg.with_suffix(".png")

    def files(self, split: str) -> SplitFiles:
        ids = self.ids(split)
        images = [self.image(i) for i in ids]
        labels = [self.root / "masks" / f"{i}.png" for i in ids]
        for kind, paths in (("photos", images), ("masks", labels)):
            missing = [p.name for p in paths if not p.is_file()]
            if missing:
                raise FileNotFoundError(
                    f"{self.root / (split + '.txt')} lists {len(missing)} ids whose {kind} are missing from "
                    f"{paths[0].parent}, e.g. {missing[:3]} ({CHECK_HINT})"
                )
        return SplitFiles(images, labels, [None] * len(ids), self.num_classes, scale_images=True)

    def prepare(self, workers: int | None = None) -> None:
        for split in SPLITS:
            self.files(split)


def read_split(root: Path) -> dict[str, list[int]]:
    """The official split: CelebA-HQ index -> CelebA file (mapping) -> CelebA partition (0 train, 1 val, 2 test)."""
    mapping, partition = root / MAPPING, root / PARTITION
    if not partition.is_file():
        raise FileNotFoundError(
            f"{partition} is missing: CelebAMask-HQ's official split is CelebA's, by identity. Download "
            f"list_eval_partition.txt from CelebA's Eval folder ({CELEBA_URL}) and put it in {root}"
        )
    if not mapping.is_file():
        raise FileNotFoundError(f"{mapping} is missing: it comes with the CelebAMask-HQ release ({CELEBAMASK_URL})")
    of_file: dict[str, int] = {}
    for number, line in enumerate(partition.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise ValueError(f"{partition}:{number}: expected `<file>.jpg 0|1|2`, found {line!r}")
        of_file[fields[0]] = int(fields[1])
    splits: dict[str, list[int]] = {split: [] for split in SPLITS}
    names = {v: k for k, v in PARTITION_OF.items()}
    for number, line in enumerate(mapping.read_text().splitlines(), 1):
        fields = line.split()
        if not fields or (number == 1 and not fields[0].isdigit()):  # the header: idx orig_idx orig_file
            continue
        if len(fields) != 3 or not fields[0].isdigit():
            raise ValueError(f"{mapping}:{number}: expected `idx orig_idx orig_file`, found {line!r}")
        if fields[2] not in of_file:
            raise ValueError(f"{mapping}:{number}: {fields[2]} is not in {partition}")
        splits[names[of_file[fields[2]]]].append(int(fields[0]))
    return {split: sorted(ids) for split, ids in splits.items()}


def part_path(root: Path, index: int, part: str) -> Path:
    return root / MASKS / str(index // FACES_PER_FOLDER) / f"{index:05d}_{part}.png"


def compose_label(root: Path, index: int) -> np.ndarray:
    """One face's 512 x 512 label map from its part masks, later parts over earlier ones (the release's order)."""
    label = None
    for class_id, part in enumerate(PARTS, 1):
        path = part_path(root, index, part)
        if not path.is_file():
            continue
        try:
            with Image.open(path) as im:
                mask = np.asarray(im.convert("L")) > 127
        except OSError as e:
            raise OSError(f"{path}: unreadable part mask ({e}; {CHECK_HINT})") from e
        if label is None:
            label = np.zeros(mask.shape, np.uint8)
        elif mask.shape != label.shape:
            raise ValueError(f"{path}: {mask.shape[1]}x{mask.shape[0]} px, unlike the face's other part masks")
        label[mask] = class_id
    if label is None:
        raise FileNotFoundError(f"{root / MASKS}: face {index} has no part masks ({index:05d}_<part>.png)")
    return label


def _compose_one(root: Path, index: int, out: Path) -> None:
    Image.fromarray(compose_label(root, index)).save(out / f"{index}.png")


@dataclass(frozen=True)
class OfficialLayout:
    root: Path
    num_classes: int
    composed_dir: Path
    format = "celebamask"

    @property
    def composed(self) -> Path:
        """This copy's composed label maps: one folder per release copy under composed_dir."""
        digest = hashlib.sha1(str(self.root.resolve()).encode()).hexdigest()[:8]
        return self.composed_dir / f"{self.root.name}-{digest}"

    def fingerprint(self) -> str:
        """Names and sizes of the part masks, the mapping and the partition: changes when any of them changes."""
        digest = hashlib.sha256()
        for path in (self.root / MAPPING, self.root / PARTITION):
            digest.update(f"{path.name}:{path.stat().st_size}\n".encode())
        for folder in sorted((self.root / MASKS).iterdir()):
            if folder.is_dir():
                for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                    digest.update(f"{folder.name}/{entry.name}:{entry.stat().st_size}\n".encode())
        return digest.hexdigest()

    def _manifest(self) -> dict:
        return {"version": COMPOSE_VERSION, "parts": list(PARTS), "fingerprint": self.fingerprint()}

    def files(self, split: str) -> SplitFiles:
        manifest = self.composed / "manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(
                f"{self.root}'s label maps are not composed yet (expected in {self.composed}): the data module's "
                f"prepare step composes them, or `python -m facseg.data.cache {self.root} CACHE --format celebamask`"
            )
        ids = read_split(self.root)[split]
        images = [self.root / PHOTOS / f"{i}.jpg" for i in ids]
        missing = [p.name for p in images if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{self.root / PHOTOS} lacks {len(missing)} photos of the {split} split, e.g. {missing[:3]} "
                f"({CHECK_HINT} --format celebamask)"
            )
        labels = [self.composed / "masks" / f"{i}.png" for i in ids]
        return SplitFiles(images, labels, [None] * len(ids), self.num_classes, scale_images=True)

    def prepare(self, workers: int | None = None) -> None:
        """Compose every face's label map once; again when the release's files changed. Atomic: an interrupted
        composition leaves nothing half-written behind."""
        splits = read_split(self.root)  # first: names the missing mapping or partition file
        expected = self._manifest()
        manifest = self.composed / "manifest.json"
        if manifest.is_file() and json.loads(manifest.read_text()) == expected:
            return
        from tqdm import tqdm

        ids = sorted(i for ids in splits.values() for i in ids)
        self.composed_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.composed.name}.", dir=self.composed_dir))
        log.info("Composing %d CelebAMask-HQ label maps from %s into %s", len(ids), self.root / MASKS, self.composed)
        try:
            (tmp / "masks").mkdir()
            n = len(ids)
            with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
                jobs = pool.map(_compose_one, [self.root] * n, ids, [tmp / "masks"] * n, chunksize=64)
                for _ in tqdm(jobs, total=n, desc="composing label maps", unit="face"):
                    pass
            (tmp / "manifest.json").write_text(json.dumps(expected))
            if self.composed.exists():
                shutil.rmtree(self.composed)
            tmp.rename(self.composed)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
