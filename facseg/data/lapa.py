"""LaPa on disk: one split as a Dataset, and the LightningDataModule; synthetic data uses the same code."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from facseg.data import SPLITS
from facseg.data.align import alignment_matrix, letterbox_matrix, warp_to_crop
from facseg.data.check import read_landmarks
from facseg.data.classes import NUM_CLASSES
from facseg.data.occlusion import KINDS, FixedOcclusion
from facseg.data.prepare import CropCache, CropSettings, build_cache
from facseg.data.synthetic import SyntheticSpec, ensure_synthetic
from facseg.data.transforms import RandomOccluder, build_pipeline, seed_pipeline

log = logging.getLogger(__name__)

LAYOUT = "ROOT/{train,val,test}/{images/NAME.jpg, labels/NAME.png, landmarks/NAME.txt}"
LAPA_URL = "https://github.com/JDAI-CV/lapa-dataset"


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"{path}: unreadable image (run `python -m facseg.data.check ROOT` to list every bad file)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_label(path: Path, shape: tuple[int, int]) -> np.ndarray:
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise OSError(f"{path}: unreadable label (run `python -m facseg.data.check ROOT` to list every bad file)")
    if label.ndim != 2 or label.shape != shape or label.dtype != np.uint8:
        raise ValueError(f"{path}: expected a 1-channel 8-bit label of {shape[1]}x{shape[0]} px like its image, "
                         f"found shape {label.shape} {label.dtype}")  # fmt: skip
    if label.max() >= NUM_CLASSES:
        raise ValueError(f"{path}: label values must be 0..{NUM_CLASSES - 1}, found {label.max()}")
    return label


class LaPaSplit(Dataset):
    """One split of a LaPa-format folder, as aligned square crops.

    Each sample is a dict: `image` (3 x S x S float, normalised), `label` (S x S long); with `keep_original`, also
    `original_label` (H x W long, the label as published) and `matrix` (2 x 3, photo -> crop), for scoring at the
    original resolution. With `occlusion`, every image carries its fixed occluder (`occluder`, S x S bool, or
    `original_occluder`, H x W, when scored at the original resolution), labelled background underneath.
    """

    def __init__(
        self,
        root: Path | str,
        split: str,
        settings: CropSettings,
        transform: A.Compose,
        keep_original: bool = False,
        cache: CropCache | None = None,
        seed: int = 0,
        occlusion: FixedOcclusion | None = None,
    ) -> None:
        self.split_dir = Path(root) / split
        images_dir, labels_dir = self.split_dir / "images", self.split_dir / "labels"
        for folder in (images_dir, labels_dir):
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder} is missing: expected LaPa's layout {LAYOUT} (LaPa: {LAPA_URL})")
        self.images = sorted(images_dir.glob("*.jpg"))
        if not self.images:
            raise FileNotFoundError(f"{images_dir} holds no .jpg images: expected LaPa's layout {LAYOUT}")
        self.labels = [labels_dir / f"{p.stem}.png" for p in self.images]
        missing = [p.name for p in self.labels if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{labels_dir} lacks the labels of {len(missing)} images, e.g. {missing[:3]} "
                                    "(`python -m facseg.data.check ROOT` lists every problem)")  # fmt: skip
        self.landmarks = [self.split_dir / "landmarks" / f"{p.stem}.txt" for p in self.images]
        self.settings = settings
        self.transform = transform
        self.keep_original = keep_original
        self.cache = cache
        self.seed = seed
        self.occlusion = occlusion
        if cache is not None and cache.names != [p.stem for p in self.images]:
            raise ValueError(f"the crop cache {cache.folder} lists other images than {images_dir}; "
                             "rebuild it with `python -m facseg.data.prepare`")  # fmt: skip

    def __len__(self) -> int:
        return len(self.images)

    def crop(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(crop image, crop label, photo->crop matrix, photo label, occluder mask), from the cache when there is one.

        The photo label is None from the cache. With `occlusion`, the occluder is drawn at the resolution the image
        is scored at (on the photo with `keep_original`, else on the crop) and its mask is that resolution's.
        """
        occluder = None
        if self.cache is not None and not self.keep_original:
            (crop, crop_label, matrix), label = self.cache.get(index), None
        else:
            image = read_image(self.images[index])
            label = read_label(self.labels[index], image.shape[:2])
            if self.occlusion is not None and self.keep_original:
                occlusion = self.occlusion(index, label)
                (image, label), occluder = occlusion.apply(image, label), occlusion.mask
            matrix = self.matrix(index, image.shape[:2])
            crop, crop_label = warp_to_crop(image, label, matrix, self.settings.image_size)
        if self.occlusion is not None and not self.keep_original:
            occlusion = self.occlusion(index, crop_label)
            (crop, crop_label), occluder = occlusion.apply(crop, crop_label), occlusion.mask
        return crop, crop_label, matrix, label, occluder

    def matrix(self, index: int, shape: tuple[int, int]) -> np.ndarray:
        """Landmark alignment when on and the landmark file exists; else the letterbox (whole photo, centred)."""
        path = self.landmarks[index]
        if self.settings.align and path.is_file():
            return alignment_matrix(read_landmarks(path), self.settings.image_size, self.settings.margin)
        return letterbox_matrix(*shape, self.settings.image_size)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """`key`: an index, or (epoch, index) from EpochShuffle, which fixes the sample's augmentation."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        crop, crop_label, matrix, original, occluder = self.crop(index)
        seed_pipeline(self.transform, self.seed, epoch, index)
        out = self.transform(image=crop, mask=crop_label)
        sample = {"image": out["image"], "label": out["mask"].long()}
        if self.keep_original:
            sample["original_label"] = torch.from_numpy(original).long()
            sample["matrix"] = torch.from_numpy(matrix)
        if self.occlusion is not None:
            sample["original_occluder" if self.keep_original else "occluder"] = torch.from_numpy(occluder)
        return sample


class EpochShuffle(Sampler):
    """Shuffles anew each epoch from (seed, epoch) alone, and hands the epoch to the dataset with each index.

    The training order and every augmentation then depend on the seed and the epoch only, not on the worker count,
    the global random state or whether the run was resumed: what makes a resumed run end like an uninterrupted one.
    Under DDP each of `world` processes takes every world-th index of the same order, the order cut to a multiple of
    `world` so that all take the same number of steps. Lightning calls set_epoch before each epoch.
    """

    def __init__(self, size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.size, self.seed, self.rank, self.world = size, seed, rank, world
        self.epoch, self._skip = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip(self, samples: int) -> None:
        """Start the next pass this many samples into this process's share (resuming mid-epoch)."""
        self._skip = samples

    def __len__(self) -> int:
        return self.size // self.world

    def __iter__(self):
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        share = order[: len(self) * self.world][self.rank :: self.world]
        skip, self._skip = self._skip, 0
        return ((self.epoch, int(i)) for i in share[skip:])


class Shard(Sampler):
    """Every world-th index, in order, without padding: under DDP each val/test image is scored exactly once.

    (Lightning's DistributedSampler pads the last batch with repeated images, which pooled metrics would count
    twice.) The shares may differ by one image; the metric states are summed over processes at the end.
    """

    def __init__(self, size: int, rank: int, world: int) -> None:
        self.indices = range(rank, size, world)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self):
        return iter(self.indices)


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the crops; keep original-resolution labels (each its own size) as a list."""
    ragged = {"original_label", "original_occluder"}
    batch = default_collate([{k: v for k, v in s.items() if k not in ragged} for s in samples])
    for key in ragged & samples[0].keys():
        batch[key] = [s[key] for s in samples]
    return batch


class LaPaDataModule(pl.LightningDataModule):
    """Train/val/test loaders over a LaPa-format folder; `synthetic` generates that folder on first use.

    `occluded_test` (coverage, seed, kinds, textured; null: off) adds a second test loader: the same test images,
    each with its fixed occluder (facseg.data.occlusion.FixedOcclusion). The module scores it as `occluded/...`.
    """

    def __init__(
        self,
        root: str,
        name: str = "lapa",
        image_size: int = 128,
        align: bool = True,
        margin: float = 0.6,
        eval_resolution: str = "original",
        cache_dir: str | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        augmentations: Sequence[A.BasicTransform] = (),
        occlusion: dict | None = None,
        occluded_test: dict | None = None,
        synthetic: dict | None = None,
        pin_memory: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if eval_resolution not in ("original", "crop"):
            raise ValueError(f"data.eval_resolution={eval_resolution}: expected 'original' or 'crop'")
        self.root = Path(root)
        self.name = name  # how results and W&B tags call this data
        self.settings = CropSettings(image_size=image_size, align=align, margin=margin)
        self.eval_resolution = eval_resolution
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.augmentations = list(augmentations)
        if occlusion and occlusion.get("p", 0) > 0:
            self.augmentations.append(RandomOccluder(tuple(occlusion["coverage"]), occlusion.get("kinds", KINDS),
                                                     occlusion["p"]))  # fmt: skip
        self.occluded_test = None
        if occluded_test:
            self.occluded_test = FixedOcclusion(**{**occluded_test, "kinds": tuple(occluded_test.get("kinds", KINDS))})
        self.synthetic = SyntheticSpec(**synthetic) if synthetic else None
        self.pin_memory = pin_memory
        self.seed = seed
        self.splits: dict[str, LaPaSplit] = {}

    def prepare_data(self) -> None:
        """Runs once per machine: generate synthetic data, check the layout, build missing crop caches."""
        if self.synthetic is not None:
            ensure_synthetic(self.root, self.synthetic)
        missing = [
            str(self.root / s / k) for s in SPLITS for k in ("images", "labels") if not (self.root / s / k).is_dir()
        ]
        if missing:
            raise FileNotFoundError(
                f"data.root={self.root} is not a LaPa-format folder: missing {', '.join(missing)}. Expected {LAYOUT}; "
                f"LaPa is published at {LAPA_URL}."
            )
        if self.cache_dir is not None:
            for split in SPLITS:
                if CropCache.find(self.cache_dir, split, self.settings, self.root) is None:
                    build_cache(self.root, split, self.settings, self.cache_dir)

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test", "occluded")}.get(stage, SPLITS)
        for split in wanted:
            if split == "occluded":
                if self.occluded_test is not None and split not in self.splits:
                    test = self.splits["test"]
                    self.splits[split] = LaPaSplit(self.root, "test", self.settings, test.transform, test.keep_original,
                                                   test.cache, self.seed, self.occluded_test)  # fmt: skip
                continue
            if split in self.splits:
                continue
            cache = None
            if self.cache_dir is not None:
                cache = CropCache.find(self.cache_dir, split, self.settings, self.root)
                if cache is None:
                    raise FileNotFoundError(f"no crop cache for {split} in {self.cache_dir}: prepare_data builds it")
            transform = build_pipeline(self.augmentations if split == "train" else ())
            keep_original = split == "test" and self.eval_resolution == "original"
            self.splits[split] = LaPaSplit(self.root, split, self.settings, transform, keep_original, cache, self.seed)

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        dataset = self.splits[split]
        # The data module shards for DDP itself (trainer.use_distributed_sampler=false): see EpochShuffle and Shard.
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        if train:
            sampler = EpochShuffle(len(dataset), self.seed, rank, world)
        else:
            sampler = Shard(len(dataset), rank, world) if world > 1 else None
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            generator=torch.Generator().manual_seed(self.seed),  # leaves the global RNG to the model (dropout)
            drop_last=train,  # BatchNorm after global pooling (PSPNet) fails on a last batch of one image
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
            collate_fn=collate,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        """The test split; and its occluded copy, as a second loader, when `occluded_test` is set."""
        if "occluded" in self.splits:
            return [self._loader("test"), self._loader("occluded")]
        return self._loader("test")
