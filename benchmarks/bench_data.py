"""Training-loader throughput at 512 px: full-size JPEGs (decode + align + augment) vs the prepared crop cache.

    python benchmarks/bench_data.py [--images 96] [--workers 0 1 2]      (make bench-data)

Writes a synthetic LaPa-format set with LaPa-like photo sizes (500 to 1500 px a side) to a temporary folder,
prepares its cache, then times whole epochs of the training loader, with the augmentations of conf/data/lapa.yaml.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir

import facseg
from facseg.data.cache import build_cache
from facseg.data.crop import CropSettings
from facseg.data.formats import LaPaLayout
from facseg.data.synthetic import SyntheticSpec, generate


def loader_throughput(root: Path, cache_dir: Path | None, workers: int, image_size: int) -> float:
    with initialize_config_dir(config_dir=str(facseg.CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "data=lapa",
                f"data.root={root}",
                f"data.image_size={image_size}",
                f"data.num_workers={workers}",
                "data.batch_size=8",
                f"data.cache_dir={cache_dir or 'null'}",
            ],
        )
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup("fit")
    loader = dm.train_dataloader()
    for _ in loader:  # warm-up epoch: workers start, page cache fills, as in any real epoch after the first
        pass
    start, seen = time.perf_counter(), 0
    for batch in loader:
        seen += len(batch["image"])
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=96, help="training images")
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, cache_dir = Path(tmp) / "lapa", Path(tmp) / "cache"
        generate(root, SyntheticSpec(train=args.images, val=8, test=8, size=500, max_size=1500, seed=0))
        for split in ("train", "val", "test"):
            build_cache(LaPaLayout(root), split, CropSettings(image_size=args.image_size), cache_dir)
        print(f"training loader, {args.image_size} px crops, batch 8, {args.images} photos of 500-1500 px a side")
        print(f"{'source':<22}{'workers':>8}{'images/s':>10}{'per worker':>12}")
        for label, cache in (("full-size JPEGs", None), ("prepared crop cache", cache_dir)):
            for workers in args.workers:
                rate = loader_throughput(root, cache, workers, args.image_size)
                print(f"{label:<22}{workers:>8}{rate:>10.1f}{rate / max(1, workers):>12.1f}")


if __name__ == "__main__":
    main()
