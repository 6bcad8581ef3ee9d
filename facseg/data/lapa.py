"""LaPa on disk: the dataset (one split) and the LightningDataModule; synthetic data uses the same code."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import albumentations as A
import cv2
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from facseg.data.classes import CLASS_NAMES, NUM_CLASSES
from facseg.data.synthetic import SyntheticSpec, ensure_synthetic
from facseg.data.transforms import build_pipeline

log = logging.getLogger(__name__)

LAYOUT = "ROOT/{train,val,test}/{images/NAME.jpg, labels/NAME.png, landmarks/NAME.txt}"
LAPA_URL = "https://github.com/JDAI-CV/lapa-dataset"


class LaPaSplit(Dataset):
    """One split of a LaPa-format folder: (image tensor 3xHxW float, label tensor HxW long) pairs."""

    def __init__(self, root: Path | str, split: str, transform: A.Compose) -> None:
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
            raise FileNotFoundError(f"{labels_dir} lacks the labels of {len(missing)} images, e.g. {missing[:3]}")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = cv2.imread(str(self.images[index]), cv2.IMREAD_COLOR)
        label = cv2.imread(str(self.labels[index]), cv2.IMREAD_UNCHANGED)
        if image is None or label is None:
            raise OSError(f"cannot read {self.images[index] if image is None else self.labels[index]}")
        if label.ndim != 2 or label.shape != image.shape[:2]:
            raise ValueError(
                f"{self.labels[index]}: expected a 1-channel label of size {image.shape[:2]}, found shape {label.shape}"
            )
        out = self.transform(image=cv2.cvtColor(image, cv2.COLOR_BGR2RGB), mask=label)
        return out["image"], out["mask"].long()


class LaPaDataModule(pl.LightningDataModule):
    """Train/val/test loaders over a LaPa-format folder; `synthetic` generates that folder on first use."""

    num_classes = NUM_CLASSES
    class_names = CLASS_NAMES

    def __init__(
        self,
        root: str,
        name: str = "lapa",
        image_size: int = 128,
        batch_size: int = 16,
        num_workers: int = 0,
        augmentations: Sequence[A.BasicTransform] = (),
        synthetic: dict | None = None,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.name = name  # how results and W&B tags call this data
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.augmentations = list(augmentations)
        self.synthetic = SyntheticSpec(**synthetic) if synthetic else None
        self.pin_memory = pin_memory
        self.splits: dict[str, LaPaSplit] = {}

    def prepare_data(self) -> None:
        if self.synthetic is not None:
            ensure_synthetic(self.root, self.synthetic)
        elif not self.root.is_dir():
            raise FileNotFoundError(
                f"data.root={self.root} does not exist: expected LaPa's layout {LAYOUT} (LaPa: {LAPA_URL})"
            )

    def setup(self, stage: str | None = None) -> None:
        plain = build_pipeline(self.image_size)
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(stage, ("train", "val", "test"))
        for split in wanted:
            if split not in self.splits:
                transform = build_pipeline(self.image_size, self.augmentations) if split == "train" else plain
                self.splits[split] = LaPaSplit(self.root, split, transform)

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        return DataLoader(
            self.splits[split],
            batch_size=self.batch_size,
            shuffle=train,
            drop_last=train,  # BatchNorm after global pooling (PSPNet) fails on a last batch of one image
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
