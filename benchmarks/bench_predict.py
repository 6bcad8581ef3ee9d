"""What `facseg predict` costs on photos of 1 to 17 megapixels, and where it goes: photos/s of predict() with an
untrained matched U-Net (the time does not depend on the weights), and seconds per stage (decode, detect, parse
and warp back, overlay, encode and write). The photos are real CelebAMask-HQ faces from ../shared (a synthetic face
when it is absent), each scaled to a third of a photo's width over a blurred noise background, as in a camera's
frame; written as JPEGs once, in a temporary folder.

    python benchmarks/bench_predict.py [--photos 12]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import torch
from omegaconf import OmegaConf

import facseg
from facseg.data.synthetic import render_face
from facseg.models import photos
from facseg.runtime.speed import matmul_peak

CELEBAMASK_MINI = facseg.PROJECT_ROOT.parent / "shared" / "real-data" / "celebamask-hq-mini"
MEGAPIXELS = (1, 2, 4, 8, 12, 17)
STAGES = {  # where the time goes: what predict() calls, by what it does
    "read_image": "decode",
    "FaceFinder": "detect",
    "parse_photo": "parse and warp back",
    "overlay": "overlay",
    "_write_image": "encode and write",
}
SECONDS: dict[str, float] = defaultdict(float)


def timed(stage: str, function):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            SECONDS[stage] += time.perf_counter() - start

    return wrapper


def photo(megapixels: float, face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 4:3 photo of this size with `face` a third of its width, off centre, over blurred noise."""
    width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    height = width * 3 // 4
    background = cv2.GaussianBlur(rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8), (0, 0), 3)
    image = cv2.resize(background, (width, height), interpolation=cv2.INTER_LINEAR)
    side = width // 3
    scaled = cv2.resize(face, (side, side * face.shape[0] // face.shape[1]), interpolation=cv2.INTER_CUBIC)
    top, left = (height - scaled.shape[0]) // 2, width // 2 - side // 3
    image[top : top + scaled.shape[0], left : left + side] = scaled[: height - top]
    return image


def faces(count: int) -> list[np.ndarray]:
    folder = CELEBAMASK_MINI / "images"
    if folder.is_dir():
        return [cv2.imread(str(p)) for p in sorted(folder.iterdir())[:count]]
    return [render_face(np.random.default_rng(i), 512, 512)[0][..., ::-1] for i in range(count)]


def checkpoint(folder: Path) -> Path:
    from bench_ensembles import checkpoint as untrained  # the matched U-Net, saved as a run saves it

    return Path(untrained("unet", 0, [], folder))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=12, help="photos, cycling through the sizes")
    args = parser.parse_args()
    logging.getLogger("facseg").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    print(f"this machine: {matmul_peak(torch.device('cpu'), '32', 2048):.0f} GFLOP/s (make bench-ref)")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "in").mkdir()
        rng = np.random.default_rng(0)
        sizes = []
        for i, face in enumerate(faces(args.photos)):
            image = photo(MEGAPIXELS[i % len(MEGAPIXELS)], face, rng)
            cv2.imwrite(str(folder / "in" / f"{i:02d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
            sizes.append(image.shape[0] * image.shape[1] / 1e6)
        cfg = OmegaConf.load(Path(__file__).parents[1] / "facseg" / "conf" / "predict.yaml")
        cfg.pop("hydra")
        cfg.pop("defaults")
        cfg.ckpt_path, cfg.input, cfg.output = str(checkpoint(folder)), str(folder / "in"), str(folder / "out")
        for name, stage in STAGES.items():
            if name == "FaceFinder":
                photos.FaceFinder.__call__ = timed(stage, photos.FaceFinder.__call__)
            else:
                setattr(photos, name, timed(stage, getattr(photos, name)))
        summary = photos.predict(cfg)
    found = sum(r["faces"][0]["source"] != "whole image" for r in summary["images"].values())
    print(
        f"{len(sizes)} photos of {min(sizes):.1f} to {max(sizes):.1f} MP ({sum(sizes):.0f} MP in all), a face found "
        f"in {found}: {summary['photos_per_second']:.2f} photos/s"
    )
    for stage in STAGES.values():
        print(f"  {stage:20s} {SECONDS[stage]:6.2f} s  ({SECONDS[stage] / len(sizes):.3f} s a photo)")


if __name__ == "__main__":
    main()
