"""The crop cache: every photo aligned and cropped once, at the training resolution.

    python -m facseg.data.cache ROOT CACHE_DIR [--format lapa|celebamask] [--image-size 512] [--no-align]
                                  [--margin 0.6] [--workers N]

Decoding a 1-2 megapixel JPEG and warping it costs tens of milliseconds, every epoch, for every image: that is what
starves a GPU on LaPa. The cache stores, per split, the crops (`images.npy`, N x S x S x 3 uint8), their labels
(`labels.npy`) and the photo->crop matrices (`matrices.npy`) as memory-mapped arrays, plus a manifest of the settings
and a fingerprint of the source files. The data module (`data.cache_dir=CACHE_DIR`) builds a missing cache, uses one
whose settings and fingerprint match, and rebuilds a stale one (files added, removed or resized), with a progress
bar; one process builds while any other that wants the same cache waits for it (a lock file beside it), so the
points of a sweep started at once build it once. On by default for real datasets (`data.cache_dir`, under
paths.data_dir); `data.cache_dir=null` decodes the photos every time. The test split is scored on the photos
(data.eval_resolution=original) and is cached only when scored on crops. The official CelebAMask-HQ release's
label maps are composed first (into CACHE_DIR/composed here, data.composed_dir in a run).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from itertools import repeat
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facseg.data.crop import CropSettings, crop_matrix, warp_to_crop
from facseg.data.formats import SPLITS, Layout, SplitFiles
from facseg.data.labels import LabelMap
from facseg.data.layouts import FORMATS, open_layout
from facseg.runtime.atomic import locked

log = logging.getLogger(__name__)

CACHE_VERSION = 1


class StaleCache(ValueError):
    """A cache built from other files or settings than the run's."""


def cache_folder(cache_dir: Path, root: Path, split: str, settings: CropSettings) -> Path:
    """One folder per dataset copy, split and settings, so that several coexist under one cache_dir."""
    source = f"{Path(root).name}-{hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:8]}"
    how = f"align{settings.margin:g}" if settings.align else "letterbox"
    return Path(cache_dir) / source / f"{split}-{settings.image_size}px-{how}"


def fingerprint(files: SplitFiles) -> str:
    """A hash of the split's file names and sizes: changes when files are added, removed or change size.

    Sizes rather than contents: hashing 22,000 photos would take longer than the check is worth.
    """
    digest = hashlib.sha256()
    for kind in ("images", "labels", "landmarks"):
        for path in getattr(files, kind):
            if path is not None and path.is_file():
                digest.update(f"{kind}/{path.name}:{path.stat().st_size}\n".encode())
    return digest.hexdigest()


class CropCache:
    """A built cache of one split, read through memory maps opened lazily (each DataLoader worker maps its own)."""

    def __init__(self, folder: Path, names: list[str]) -> None:
        self.folder = folder
        self.names = names
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @classmethod
    def find(cls, cache_dir: Path, split: str, settings: CropSettings, layout: Layout) -> CropCache | None:
        """The cache for these settings, None when not built yet; raises when it was built from other files."""
        root = layout.root
        folder = cache_folder(cache_dir, root, split, settings)
        manifest_path = folder / "manifest.json"
        if not manifest_path.is_file():
            return None
        manifest = json.loads(manifest_path.read_text())
        expected = {
            "version": CACHE_VERSION,
            "settings": asdict(settings),
            "fingerprint": fingerprint(layout.files(split)),
        }
        found = {k: manifest.get(k) for k in expected}
        if found != expected:
            differs = [k for k in expected if found[k] != expected[k]]
            rebuild = f"python -m facseg.data.cache {root} {cache_dir} --format {layout.format} --force"
            raise StaleCache(
                f"the crop cache {folder} does not match the {split} split of {root} ({', '.join(differs)} differ): "
                f"delete it, or rebuild it with `{rebuild}`"
            )
        return cls(folder, manifest["names"])

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._arrays is None:
            self._arrays = tuple(
                np.load(self.folder / f"{k}.npy", mmap_mode="r") for k in ("images", "labels", "matrices")
            )
        images, labels, matrices = self._arrays
        return np.array(images[index]), np.array(labels[index]), np.array(matrices[index])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_arrays": None}  # never pickle the maps into worker processes


def crop_one(files: SplitFiles, index: int, settings: CropSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(crop, crop label, photo -> crop matrix) of one image of a split, as the datasets cut it."""
    image, label = files.read(index)
    matrix = crop_matrix(files.points(index), image.shape[:2], settings)
    return (*warp_to_crop(image, label, matrix, settings.image_size), matrix)


class RowWriter:
    """An .npy file of known shape written row by row, in order, through a plain file: the pages of a memory map
    written to count as the process's resident memory until the system writes them back (a LaPa training split
    at 512 px is 14 GB of crops), a file's writes do not."""

    def __init__(self, path: Path, dtype: type, shape: tuple[int, ...]) -> None:
        self.dtype, self.shape, self.rows = np.dtype(dtype), shape, 0
        self.file = open(path, "wb")  # noqa: SIM115 (closed by __exit__)
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(self.file, header)

    def write(self, row: np.ndarray) -> None:
        self.file.write(np.ascontiguousarray(row, self.dtype).tobytes())
        self.rows += 1

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *failed) -> None:
        self.file.close()
        if not any(failed) and self.rows != self.shape[0]:
            raise RuntimeError(f"{self.file.name}: {self.rows} rows written of {self.shape[0]}")


def build_cache(
    layout: Layout, split: str, settings: CropSettings, cache_dir: Path, workers: int | None = None
) -> Path:
    """Write the split's crops; atomically, so an interrupted build leaves no half cache behind."""
    files = layout.files(split)
    folder = cache_folder(cache_dir, layout.root, split, settings)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    n, s = len(files.images), settings.image_size
    log.info("Building the %s crop cache (%d images, %d px) at %s", split, n, s, folder)
    try:
        with (
            RowWriter(tmp / "images.npy", np.uint8, (n, s, s, 3)) as images,
            RowWriter(tmp / "labels.npy", np.uint8, (n, s, s)) as labels,
            RowWriter(tmp / "matrices.npy", np.float64, (n, 2, 3)) as matrices,
            ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool,
        ):
            crops = pool.map(crop_one, repeat(files), range(n), repeat(settings), chunksize=16)
            for crop, label, matrix in tqdm(crops, total=n, desc=f"crop cache, {split}", unit="photo"):
                images.write(crop)
                labels.write(label)
                matrices.write(matrix)
        manifest = {
            "version": CACHE_VERSION,
            "settings": asdict(settings),
            "fingerprint": fingerprint(files),
            "names": files.names,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest))
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def ensure_cache(
    layout: Layout, split: str, settings: CropSettings, cache_dir: Path, workers: int | None = None, force=False
) -> Path:
    """The split's cache, built when missing, stale or `force`d. One builder at a time: a process that finds
    another building waits for it and then uses what it built."""
    folder = cache_folder(cache_dir, layout.root, split, settings)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with locked(folder.parent / f".{folder.name}.lock"):
        try:
            if not force and CropCache.find(cache_dir, split, settings, layout) is not None:
                return folder
        except StaleCache as e:
            log.warning("%s; rebuilding it", str(e).split(":")[0])
        return build_cache(layout, split, settings, cache_dir, workers)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="the dataset's folder")
    parser.add_argument("cache_dir", type=Path, help="where the caches go (data.cache_dir)")
    parser.add_argument("--format", choices=FORMATS, default="lapa", help="the dataset's format (data.format)")
    parser.add_argument("--image-size", type=int, default=CropSettings.image_size)
    parser.add_argument("--no-align", action="store_true", help="letterbox the whole photo instead of aligning")
    parser.add_argument("--margin", type=float, default=CropSettings.margin)
    parser.add_argument("--splits", nargs="+", default=list(SPLITS))
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--force", action="store_true", help="rebuild caches that are up to date")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # CelebA-HQ's photos are aligned crops already: data=celebamask letterboxes them (data.align=false).
    align = not args.no_align and args.format != "celebamask"
    settings = CropSettings(image_size=args.image_size, align=align, margin=args.margin)
    num_classes = len(LabelMap.named(args.format))  # each format's own class set
    layout = open_layout(args.root, args.format, num_classes, args.cache_dir / "composed")
    layout.prepare(args.workers)
    for split in args.splits:
        log.info("%s", ensure_cache(layout, split, settings, args.cache_dir, args.workers, args.force))


if __name__ == "__main__":
    main()
