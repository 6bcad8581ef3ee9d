"""One split of a dataset as a Dataset of aligned crops, and the samplers and collate that load it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, default_collate

from facseg.data.cache import CropCache
from facseg.data.conditions import Condition, realigned_matrix
from facseg.data.crop import CropSettings, crop_matrix, warp_to_crop
from facseg.data.detect import FaceFinder
from facseg.data.formats import SplitFiles
from facseg.data.landmarks import NUM_LANDMARKS
from facseg.data.transforms import seed_pipeline


class FaceSplit(Dataset):
    """One split of a dataset (its SplitFiles), as aligned square crops.

    Each sample is a dict: `image` (3 x S x S float, normalised), `label` (S x S long), `index` (its place in the
    split); with `keep_original`, also `original_label` (H x W long, the label as published) and `matrix` (2 x 3,
    photo -> crop), for scoring at the original resolution. Under an occluded test `condition`
    (facseg.data.conditions), every image carries its fixed occluder (`occluder`, S x S bool, or
    `original_occluder`, H x W, when scored at the original resolution), labelled background underneath, and its
    clean label (`clean_label` / `original_clean_label`), which says what the occluder hides. `visible`: conditions
    whose occluders the clean images carry too (`occluder/<name>`, `original_occluder/<name>`), so that the clean
    prediction is scored on the pixels each condition leaves visible. `mapping` turns the dataset's labels into
    another class set's (facseg.data.labels).
    """

    def __init__(
        self,
        files: SplitFiles,
        settings: CropSettings,
        transform: A.Compose,
        keep_original: bool = False,
        cache: CropCache | None = None,
        seed: int = 0,
        condition: Condition | None = None,
        mapping: Callable[[np.ndarray], np.ndarray] | None = None,
        visible: Sequence[Condition] = (),
    ) -> None:
        self.files = files
        self.settings = settings
        self.transform = transform
        self.keep_original = keep_original
        self.cache = cache
        self.seed = seed
        self.condition = condition
        self.mapping = mapping
        self.visible = list(visible)
        self._finder = None  # YuNet, made in the process that uses it (OpenCV's detector does not pickle)
        if cache is not None and cache.names != self.names:
            raise ValueError(
                f"the crop cache {cache.folder} lists other images than {files.images[0].parent}; "
                "rebuild it with `python -m facseg.data.cache`"
            )

    @property
    def names(self) -> list[str]:
        return self.files.names

    def __len__(self) -> int:
        return len(self.files.images)

    def crop(self, index: int) -> dict[str, Any]:
        """`crop`, `crop_label`, `matrix` (photo -> crop), `label` (the photo's; None from the cache); under a
        condition also `occluder` and `clean_label` at the resolution the image is scored at (the photo with
        `keep_original`, else the crop), `aligned_by` when the condition realigns, and the photo's `landmarks`
        (None without a file) when read from the photo."""
        out: dict[str, Any] = {}
        occlusion = None
        if self.cache is not None and not self.keep_original:
            (crop, crop_label, matrix), label = self.cache.get(index), None
            if self.mapping is not None:
                crop_label = self.mapping(crop_label)
        else:
            image, label = self.files.read(index)
            if self.mapping is not None:
                label = self.mapping(label)
            landmarks = out["landmarks"] = self.files.points(index)
            matrix = crop_matrix(landmarks, image.shape[:2], self.settings)
            if self.condition is not None and self.keep_original:
                occlusion = self.condition.occlusion(index, label, image)
                out["clean_label"] = label
                image, label = occlusion.apply(image, label)
                if self.condition.realign:
                    matrix, out["aligned_by"] = realigned_matrix(
                        self.condition, index, image, occlusion.mask, landmarks, self.settings, self.finder
                    )
            elif self.keep_original:
                out["visible"] = self._occluders(index, label, image)
            crop, crop_label = warp_to_crop(image, label, matrix, self.settings.image_size)
        if self.condition is not None and not self.keep_original:
            occlusion = self.condition.occlusion(index, crop_label, crop)
            out["clean_label"] = crop_label
            crop, crop_label = occlusion.apply(crop, crop_label)
        elif not self.keep_original:
            out["visible"] = self._occluders(index, crop_label, crop)
        if occlusion is not None:
            out["occluder"], out["occluder_kind"] = occlusion.mask, occlusion.kind
        return {**out, "crop": crop, "crop_label": crop_label, "matrix": matrix, "label": label}

    @property
    def finder(self):
        if self._finder is None:
            self._finder = FaceFinder(self.settings.image_size, self.settings.margin, align=self.settings.align)
        return self._finder

    def _occluders(self, index: int, label: np.ndarray, image: np.ndarray) -> dict[str, np.ndarray]:
        """Each `visible` condition's occluder mask for this clean image (drawn once per occluder generator)."""
        drawn: dict[int, np.ndarray] = {}
        for condition in self.visible:
            key = id(condition.occlusion)
            if key not in drawn:
                drawn[key] = condition.occlusion(index, label, image).mask
        return {condition.name: drawn[id(condition.occlusion)] for condition in self.visible}

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """`key`: an index, or (epoch, index) from EpochShuffle, which fixes the sample's augmentation."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        found = self.crop(index)
        seed_pipeline(self.transform, self.seed, epoch, index)
        out = self.transform(image=found["crop"], mask=found["crop_label"])
        sample = {"image": out["image"], "label": out["mask"].long(), "index": index}
        prefix = "original_" if self.keep_original else ""
        if self.keep_original:
            sample["original_label"] = torch.from_numpy(found["label"]).long()
            sample["matrix"] = torch.from_numpy(found["matrix"])
            # what the jawline's error is measured against (facseg.metrics.jaw); NaN without a landmark file
            points = found["landmarks"]
            sample["landmarks"] = torch.from_numpy(np.full((NUM_LANDMARKS, 2), np.nan) if points is None else points)
        if "occluder" in found:
            sample[f"{prefix}occluder"] = torch.from_numpy(found["occluder"])
            sample[f"{prefix}clean_label"] = torch.from_numpy(found["clean_label"]).long()
            sample["occluder_kind"] = found["occluder_kind"]
        for name, mask in found.get("visible", {}).items():
            sample[f"{prefix}occluder/{name}"] = torch.from_numpy(mask)
        if "aligned_by" in found:
            sample["aligned_by"] = found["aligned_by"]
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
    """Stack the crops; keep original-resolution labels and masks (each its own size) as lists."""
    ragged = {key for key in samples[0] if key.startswith("original_")}
    batch = default_collate([{k: v for k, v in s.items() if k not in ragged} for s in samples])
    for key in ragged & samples[0].keys():
        batch[key] = [s[key] for s in samples]
    return batch
