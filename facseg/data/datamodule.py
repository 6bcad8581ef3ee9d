"""The LightningDataModule: train/val/test loaders over a face-parsing dataset (LaPa, CelebAMask-HQ, or the
synthetic LaPa-format default), whatever its layout on disk."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import albumentations as A
import pytorch_lightning as pl
import torch
from pytorch_lightning.accelerators import CPUAccelerator
from torch.utils.data import DataLoader

from facseg.data.cache import CropCache, ensure_cache
from facseg.data.conditions import build_conditions
from facseg.data.crop import CropSettings
from facseg.data.dataset import EpochShuffle, FaceSplit, Shard, collate
from facseg.data.formats import SPLITS
from facseg.data.labels import LabelMap, LabelMapping
from facseg.data.layouts import open_layout
from facseg.data.occlusion import KINDS
from facseg.data.real_occluders import RealOcclusion
from facseg.data.synthetic import SyntheticSpec, ensure_synthetic
from facseg.data.transforms import MEAN, STD, HorizontalFlipSwap, RandomOccluder, build_pipeline
from facseg.data.workers import loader_workers

log = logging.getLogger(__name__)


class FaceDataModule(pl.LightningDataModule):
    """Train/val/test loaders over a dataset in `format` (facseg.data.formats); `synthetic` generates a LaPa-format
    folder on first use.

    `labels`: the dataset's class set (a LabelMap config; LaPa's by default). `target_labels`: another class set to
    train or score in, through the mapping the dataset's class set declares to it (facseg.evaluate sets it to a
    checkpoint's classes); its labels then replace the dataset's everywhere. `occluded_test` (null: off) adds a
    test loader per occluded condition (facseg.data.conditions): the same test images, each with its fixed
    occluder; `test_stages` names the test loaders in order. `recorded_settings` is what a checkpoint records
    of this data (crop, class set, normalisation): facseg.evaluate scores a checkpoint with its own.
    """

    def __init__(
        self,
        root: str | None,
        name: str = "lapa",
        format: str = "lapa",
        labels: dict | LabelMap | None = None,
        target_labels: dict | LabelMap | None = None,
        composed_dir: str | None = None,
        image_size: int = 128,
        align: bool = True,
        margin: float = 0.6,
        normalisation: dict[str, Sequence[float]] | None = None,
        eval_resolution: str = "original",
        cache_dir: str | None = None,
        batch_size: int = 8,
        num_workers: int | str = "auto",
        augmentations: Sequence[A.BasicTransform] = (),
        occlusion: dict | None = None,
        occluded_test: dict | None = None,
        synthetic: dict | None = None,
        pin_memory: bool | str = "auto",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if root is None:
            raise ValueError(
                f"data={name} has no folder: give data.root=/path/to/it, or set paths.{name} once in "
                "conf/local/default.yaml (docs/data.md)"
            )
        if eval_resolution not in ("original", "crop"):
            raise ValueError(f"data.eval_resolution={eval_resolution}: expected 'original' or 'crop'")
        self.root = Path(root)
        self.name = name  # how results and W&B tags call this data
        self.format, self.composed_dir = format, composed_dir
        self.dataset_labels = LabelMap.from_config(labels) if labels else LabelMap.named("lapa")
        if format == "folder":  # a dataset of one's own brings its class set
            self.dataset_labels = LabelMap.of_folder(self.root)
        self.labels, self.mapping = self.dataset_labels, None
        if target_labels and LabelMap.from_config(target_labels).names != self.dataset_labels.names:
            self.labels = LabelMap.from_config(target_labels)
            self.mapping = LabelMapping(self.dataset_labels, self.labels)
        self.settings = CropSettings(image_size=image_size, align=align, margin=margin)
        normalisation = normalisation or {"mean": MEAN, "std": STD}
        self.mean, self.std = tuple(normalisation["mean"]), tuple(normalisation["std"])
        self.eval_resolution = eval_resolution
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.batch_size = batch_size
        loader_workers(num_workers, "cpu")  # a wrong setting is named now, not when the first loader starts
        if pin_memory not in (True, False, "auto"):
            raise ValueError(f"data.pin_memory={pin_memory!r}: expected true, false or auto (true on a GPU)")
        self.num_workers = num_workers  # a count, or "auto": chosen by the trainer's device (facseg.data.workers)
        self.augmentations = list(augmentations)
        for augmentation in self.augmentations:
            if isinstance(augmentation, HorizontalFlipSwap):
                augmentation.mirror = self.labels.mirror().astype("uint8")  # this class set's left/right pairs
        if occlusion and occlusion.get("p", 0) > 0:
            kinds = occlusion.get("kinds", KINDS)
            face = tuple(self.labels.ids(self.labels.face))
            self.augmentations.append(RandomOccluder(tuple(occlusion["coverage"]), kinds, occlusion["p"], face))
        self.conditions, self.test_aliases = [], {}
        if occluded_test:
            self.conditions, self.test_aliases = build_conditions(
                occluded_test, self.labels, self.settings, eval_resolution
            )
        self.synthetic = SyntheticSpec(**synthetic) if synthetic else None
        self.pin_memory = pin_memory
        self.seed = seed
        self.splits: dict[str, FaceSplit] = {}

    @property
    def classes(self) -> tuple[str, ...]:
        return self.labels.names

    @property
    def test_stages(self) -> list[str]:
        """What each test loader is scored as: `test`, then each occluded condition's name."""
        return ["test", *(c.name for c in self.conditions)]

    @property
    def layout(self):
        return open_layout(self.root, self.format, len(self.dataset_labels), self.composed_dir)

    @property
    def recorded_settings(self) -> dict[str, Any]:
        """What a net trained on this data must be scored with: the crop, the class names, the normalisation."""
        return {
            "crop": asdict(self.settings),
            "labels": self.labels.to_dict(),
            "normalisation": {"mean": list(self.mean), "std": list(self.std)},
        }

    def prepare_data(self) -> None:
        """Runs once per machine: generate synthetic data, check the layout (compose CelebAMask-HQ's label maps).
        The crop caches are built by setup, for the splits its stage reads (every process: one builds, the others
        wait for it on its lock)."""
        if self.synthetic is not None:
            ensure_synthetic(self.root, self.synthetic)
        for condition in self.conditions:
            if isinstance(condition.occlusion, RealOcclusion):
                condition.occlusion.occluders.load()  # cut out once, into its cache, before workers start
        layout = self.layout
        layout.prepare()

    @property
    def cached_splits(self) -> tuple[str, ...]:
        """The splits read from the crop cache: none without one, and the test split only when scored on crops."""
        if self.cache_dir is None:
            return ()
        return tuple(s for s in SPLITS if s != "test" or self.eval_resolution != "original")

    def setup(self, stage: str | None = None) -> None:
        layout = self.layout
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(stage, SPLITS)
        for split in wanted:
            if split in self.splits:
                continue
            cache = None
            if split in self.cached_splits:  # built here, for what this stage reads: a test alone crops no train split
                ensure_cache(layout, split, self.settings, self.cache_dir)
                cache = CropCache.find(self.cache_dir, split, self.settings, layout)
            transform = build_pipeline(self.augmentations if split == "train" else (), self.mean, self.std)
            keep_original = split == "test" and self.eval_resolution == "original"
            files = layout.files(split)
            visible = self.conditions if split == "test" else ()
            self.splits[split] = FaceSplit(
                files, self.settings, transform, keep_original, cache, self.seed, mapping=self.mapping, visible=visible
            )
            if split == "test":
                for condition in self.conditions:
                    self.splits[condition.name] = FaceSplit(
                        files, self.settings, transform, keep_original, cache, self.seed, condition, self.mapping
                    )

    def _device(self) -> tuple[str, int]:
        """The trainer's device type and the machine's GPUs ("cpu" without a trainer: a loader made by hand)."""
        if self.trainer is None or isinstance(self.trainer.accelerator, CPUAccelerator):
            return "cpu", 1
        return "gpu", torch.cuda.device_count() or self.trainer.num_devices

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        dataset = self.splits[split]
        accelerator, gpus = self._device()
        workers = loader_workers(self.num_workers, accelerator, gpus)
        pin_memory = accelerator != "cpu" if self.pin_memory == "auto" else self.pin_memory
        if train and self.num_workers == "auto":
            log.info("Loader: %d worker processes on %s (data.num_workers=auto)", workers, accelerator)
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
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=pin_memory,
            collate_fn=collate,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        """The test split; and with `occluded_test`, one loader per occluded condition after it (`test_stages`)."""
        if self.conditions:
            return [self._loader(stage) for stage in self.test_stages]
        return self._loader("test")
