"""What feeds the net: (1) training-loader throughput at 512 px, full-size JPEGs (decode + align + augment) vs the
prepared crop cache; (2) training on this machine's device (a GPU when there is one) with each loader-worker count,
the default `auto` among them: which count wins here (facseg.data.workers).

    python benchmarks/bench_data.py [--images 96] [--workers 0 1 2] [--train-size 128] [--repeats 3]
    (make bench-data)

Writes a synthetic LaPa-format set with LaPa-like photo sizes (500 to 1500 px a side) to a temporary folder,
prepares its cache, then times whole epochs of the training loader, with the augmentations of conf/data/lapa.yaml;
then whole epochs of Lightning training (the default U-Net, from the cache; bf16 on a GPU) after a warm-up epoch.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import hydra
import torch
from bench_models import build_module, config, lightning_loop

from facseg.data.cache import build_cache
from facseg.data.crop import CropSettings
from facseg.data.formats import LaPaLayout
from facseg.data.synthetic import SyntheticSpec, generate
from facseg.data.workers import cores, loader_workers
from facseg.runtime.speed import matmul_peak


def data_overrides(root: Path, cache_dir: Path | None, workers: int | str, image_size: int) -> list[str]:
    return [
        "data=lapa",
        f"data.root={root}",
        f"data.image_size={image_size}",
        f"data.num_workers={workers}",
        "data.batch_size=8",
        f"data.cache_dir={cache_dir or 'null'}",
    ]


def loader_throughput(root: Path, cache_dir: Path | None, workers: int, image_size: int) -> float:
    dm = hydra.utils.instantiate(config(data_overrides(root, cache_dir, workers, image_size)).data)
    dm.setup("fit")
    loader = dm.train_dataloader()
    for _ in loader:  # warm-up epoch: workers start, page cache fills, as in any real epoch after the first
        pass
    start, seen = time.perf_counter(), 0
    for batch in loader:
        seen += len(batch["image"])
    return seen / (time.perf_counter() - start)


def training_throughput(root: Path, cache_dir: Path, workers: int | str, image_size: int, device) -> float:
    """images/s of Lightning training (the default net, channels_last; bf16 on a GPU) over an epoch after a warm-up."""
    overrides = data_overrides(root, cache_dir, workers, image_size)
    datamodule = hydra.utils.instantiate(config(overrides).data)
    module = build_module("unet", overrides, channels_last=True)
    return lightning_loop(module, datamodule, device, "bf16" if device.type == "cuda" else "32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=96, help="training images")
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-size", type=int, default=128, help="crop side of the training table (the default's)")
    parser.add_argument("--repeats", type=int, default=3, help="training runs per worker count (best of)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"this machine: {matmul_peak(torch.device('cpu'), '32', 2048):.0f} GFLOP/s (make bench-ref), {cores()} cores")
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
        rate = loader_throughput(root, cache_dir, 0, args.train_size)
        print(f"{f'cache, {args.train_size} px':<22}{0:>8}{rate:>10.1f}{rate:>12.1f}   ({1000 / rate:.1f} ms an item)")
        auto = loader_workers("auto", device.type, torch.cuda.device_count())
        print(f"\ntraining on {device.type}, {args.train_size} px crops from the cache, batch 8: auto = {auto} workers")
        counts = sorted({*args.workers, auto})
        rates = {workers: [] for workers in counts}
        for _ in range(args.repeats):  # interleaved, so that a slow spell of the machine hits every count
            for workers in counts:
                rates[workers].append(training_throughput(root, cache_dir, workers, args.train_size, device))
        print(f"{'workers':>8}{'images/s':>10}   best of {args.repeats} (runs)")
        for workers, runs in rates.items():
            mark = "   (auto)" if workers == auto else ""
            print(f"{workers:>8}{max(runs):>10.1f}   ({', '.join(f'{r:.1f}' for r in runs)}){mark}")


if __name__ == "__main__":
    main()
