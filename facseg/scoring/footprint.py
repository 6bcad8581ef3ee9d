"""What a run's test pass will need in memory, known before training: a run that cannot fit its test says so in
its first seconds, not after hours of training.

The test pass holds one batch of photo-sized tensors at a time (the padded targets, the occluder masks, each
scoring's arg-max and squared errors, the metrics' temporaries) and, for the whole split, each image's counts per
scored stage (a confusion matrix, a squared error and a pixel count: what the report's intervals resample). The
first is measured, not derived: a batch's working set over the resident size before the test, per photo pixel,
on CelebAMask-HQ's 19 classes with every default condition (batch 2 and 8 of 512 px photos: 0.22 and 0.61 GB, so
66 MB a photo, about 250 bytes a pixel; docs/performance.md). A batch is padded to its largest photo: the estimate
takes the split's largest height and width together.
"""

from __future__ import annotations

import logging

import pytorch_lightning as pl
from PIL import Image
from pytorch_lightning.accelerators import CPUAccelerator

from facseg.data.formats import SplitFiles
from facseg.runtime.memory import available_bytes, resident_bytes

log = logging.getLogger(__name__)

BYTES_PER_PHOTO_PIXEL = 260  # a test batch's working set per pixel of each photo (measured, rounded up)


class TestWillNotFit(ValueError):
    """The settings ask for a test pass larger than the machine's free memory (a user's setting: its one line)."""

    __test__ = False  # not a pytest test class


def largest_photo(files: SplitFiles) -> tuple[int, int]:
    """The largest height and width among the split's label maps (the resolution scored), from their headers."""
    height = width = 0
    for path in files.labels:
        with Image.open(path) as label:  # reads the header only
            height, width = max(height, label.height), max(width, label.width)
    return height, width


def needed_bytes(photo: tuple[int, int], batch_size: int, images: int, stages: int, classes: int) -> int:
    """Bytes a test pass adds to the process: one batch of `batch_size` photos of `photo` (height, width) pixels,
    and `images` x `stages` per-image counts of a `classes`-class confusion matrix."""
    batch = BYTES_PER_PHOTO_PIXEL * batch_size * photo[0] * photo[1]
    counts = images * stages * (classes * classes + 3) * 8  # int64 counts and float64 sums, held once
    return batch + counts


def scored_stages(conditions: int, occluder_classes: bool) -> int:
    """The stages the evaluator scores (facseg.scoring.evaluator): test, its crop and the ceiling; six per occluded
    condition; and the naturally occluded subsets where the class set has occluder classes."""
    return 3 + 6 * conditions + (2 if occluder_classes else 0)


def check_test_fits(datamodule, processes: int = 1) -> int:
    """Raise before training when the test pass's estimate, for each of `processes` on this machine (DDP), exceeds
    the memory still available (a FaceDataModule, set up or not); return one process's estimate in bytes."""
    files = datamodule.layout.files("test")
    if datamodule.eval_resolution == "original":
        photo = largest_photo(files)
    else:
        photo = (datamodule.settings.image_size,) * 2
    labels = datamodule.labels
    stages = scored_stages(len(datamodule.conditions), bool(labels.occluders))
    need = needed_bytes(photo, datamodule.batch_size, len(files.images), stages, len(labels))
    free = available_bytes()
    log.info(
        "Test pass: about %.1f GB beyond the %.1f GB resident now (%d photos of up to %dx%d px, batch %d, %d stages)",
        need / 1e9,
        resident_bytes() / 1e9,
        len(files.images),
        photo[1],
        photo[0],
        datamodule.batch_size,
        stages,
    )
    if free is not None and need * processes > free:
        each = f" in each of {processes} processes" if processes > 1 else ""
        raise TestWillNotFit(
            f"the test pass would need about {need / 1e9:.1f} GB more{each} than is held now, and {free / 1e9:.1f} "
            f"GB is available: {len(files.images)} test photos of up to {photo[1]}x{photo[0]} px in batches of "
            f"{datamodule.batch_size}, {len(datamodule.conditions)} occluded conditions ({stages} scored stages). "
            "Lower data.batch_size, score fewer conditions (data.occluded_test), or train with test=false and score "
            "the checkpoint later with `facseg evaluate` on a larger machine"
        )
    return need


class TestMemoryCheck(pl.Callback):
    """check_test_fits as training starts: after the data is prepared (a generated set exists by then) and before
    the first step. On a GPU the photos are scored there, and the check is left out."""

    __test__ = False  # not a pytest test class

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if isinstance(trainer.accelerator, CPUAccelerator):
            check_test_fits(trainer.datamodule, processes=trainer.num_devices)
