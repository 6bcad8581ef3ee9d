"""A LaPa-layout copy of a CelebAMask-HQ set in LaPa's 11 classes: what `data=lapa` reads, to time the README's main
job on real faces (issue 42; docs/performance.md).

    python benchmarks/lapa_copy.py ../shared/real-data/celebamask-hq-mini data/celebamask-mini-lapa
    python -m facseg.run -m model=unet,segnet,pspnet data=lapa data.root=data/celebamask-mini-lapa

Each photo at its label map's size, as facseg reads CelebAMask-HQ (its 1,024 px photos scaled to the 512 px masks),
written as JPEG at quality 100; each label map through CelebAMask-HQ's mapping to LaPa's classes
(conf/data/labels/celebamask.yaml: ears as skin, eyes and brows by position), eyeglasses as background, LaPa's
convention for what occludes a face (a LaPa label file holds no value that is not a class). No landmark files:
facseg then crops by the letterbox. The data is non-commercial research data: the copy goes under data/ or
elsewhere outside what git tracks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from facseg.data.formats import SPLITS
from facseg.data.labels import BACKGROUND, IGNORE, LabelMap, LabelMapping
from facseg.data.layouts import open_layout


def copy_as_lapa(source: Path, out: Path) -> dict[str, int]:
    """Writes out/SPLIT/images/NAME.jpg and out/SPLIT/labels/NAME.png for every split; the photos per split."""
    celebamask, lapa = LabelMap.named("celebamask"), LabelMap.named("lapa")
    mapping = LabelMapping(celebamask, lapa)
    layout = open_layout(source, "celebamask", len(celebamask), out / ".composed")
    layout.prepare()
    counts = {}
    for split in SPLITS:
        files = layout.files(split)
        images, labels = out / split / "images", out / split / "labels"
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        for index, name in enumerate(files.names):
            image, label = files.read(index)
            mapped = mapping(label)
            mapped[mapped == IGNORE] = BACKGROUND
            cv2.imwrite(str(images / f"{name}.jpg"), image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100])
            cv2.imwrite(str(labels / f"{name}.png"), mapped.astype(np.uint8))
        counts[split] = len(files.names)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a CelebAMask-HQ set (the release, or ../shared's mini copy)")
    parser.add_argument("out", type=Path, help="the LaPa-layout copy's folder (outside what git tracks)")
    args = parser.parse_args(argv)
    counts = copy_as_lapa(args.source, args.out)
    print(f"{args.out}: " + ", ".join(f"{n} {split}" for split, n in counts.items()) + " photos in LaPa's layout")


if __name__ == "__main__":
    main()
