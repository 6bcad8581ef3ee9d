"""One split of a dataset as a Dataset of aligned crops, and the samplers and collate that load it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, default_collate

from facseg.data.crop import CropSettings, crop_matrix, warp_to_crop
from facseg.data.formats import SplitFiles
from facseg.data.occlusion import FixedOcclusion
from facseg.data.prepare import CropCache
from facseg.data.transforms import seed_pipeline


class FaceSplit(Dataset):
    """One split of a dataset (its SplitFiles), as aligned square crops.

    Each sample is a dict: `image` (3 x S x S float, normalised), `label` (S x S long), `index` (its place in the
    split); with `keep_original`, also `original_label` (H x W long, the label as published) and `matrix` (2 x 3,
    photo -> crop), for scoring at the original resolution. With `occlusion`, every image carries its fixed occluder
    (`occluder`, S x S bool, or `original_occluder`, H x W, when scored at the original resolution), labelled
    background underneath. `mapping` turns the dataset's labels into another class set's (facseg.data.labels).
    """

    def __init__(
        self,
        files: SplitFiles,
        settings: CropSettings,
        transform: A.Compose,
        keep_original: bool = False,
        cache: CropCache | None = None,
        seed: int = 0,
        occlusion: FixedOcclusion | None = None,
        mapping: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.files = files
        self.settings = settings
        self.transform = transform
        self.keep_original = keep_original
        self.cache = cache
        self.seed = seed
        self.occlusion = occlusion
        self.mapping = mapping
        if cache is not None and cache.names != self.names:
            raise ValueError(
                f"the crop cache {cache.folder} lists other images than {files.images[0].parent}; "
                "rebuild it with `python -m facseg.data.prepare`"
            )

    @property
    def names(self) -> list[str]:
        return self.files.names

    def __len__(self) -> int:
        return len(self.files.images)

    def crop(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(crop image, crop label, photo->crop matrix, photo label, occluder mask), from the cache when there is one.

        The photo label is None from the cache. With `occlusion`, the occluder is drawn at the resolution the image
        is scored at (on the photo with `keep_original`, else on the crop) and its mask is that resolution's.
        """
        occluder = None
        if self.cache is not None and not self.keep_original:
            (crop, crop_label, matrix), label = self.cache.get(index), None
            if self.mapping is not None:
                crop_label = self.mapping(crop_label)
        else:
            image, label = self.files.read(index)
            if self.mapping is not None:
                label = self.mapping(label)
            if self.occlusion is not None and self.keep_original:
                occlusion = self.occlusion(index, label)
                (image, label), occluder = occlusion.apply(image, label), occlusion.mask
            matrix = crop_matrix(self.files.landmarks[index], image.shape[:2], self.settings)
            crop, crop_label = warp_to_crop(image, label, matrix, self.settings.image_size)
        if self.occlusion is not None and not self.keep_original:
            occlusion = self.occlusion(index, crop_label)
            (crop, crop_label), occluder = occlusion.apply(crop, crop_label), occlusion.mask
        return crop, crop_label, matrix, label, occluder

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """`key`: an index, or (epoch, index) from EpochShuffle, which fixes the sample's augmentation."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        crop, crop_label, matrix, original, occluder = self.crop(index)
        seed_pipeline(self.transform, self.seed, epoch, index)
        out = self.transform(image=crop, mask=crop_label)
        sample = {"image": out["image"], "label": out["mask"].long(), "index": index}
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
