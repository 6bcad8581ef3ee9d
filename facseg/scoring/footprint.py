"""What a run's test pass will need, known as training starts: a run that cannot fit its test says so in its first
seconds, not after hours of training.

Memory: one batch of photo-sized tensors at a time (the padded targets, the occluder masks, each scoring's arg-max
and squared errors, the metrics' temporaries). Measured, not derived: a batch's working set over the resident size
before the test, on CelebAMask-HQ's 19 classes with every default condition (batch 2 and 8 of 512 px photos: 0.22
and 0.61 GB, so 66 MB a photo, about 250 bytes a pixel; docs/performance.md). A batch is padded to its largest
photo: the estimate takes the split's largest height and width together. Disk: each image's counts per scored stage
(a confusion matrix, a squared error and a pixel count: what the report's intervals resample), spooled to the
temporary folder (facseg.runtime.spool).
"""

from __future__ import annotations

import logging
import shutil
import tempfile

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


def batch_bytes(photo: tuple[int, int], batch_size: int) -> int:
    """Memory a test pass adds to the process: one batch of `batch_size` photos of `photo` (height, width) pixels."""
    return BYTES_PER_PHOTO_PIXEL * batch_size * photo[0] * photo[1]


def spooled_bytes(images: int, stages: int, classes: int) -> int:
    """Temporary disk for `images` x `stages` per-image counts of a `classes`-class confusion matrix (int64 counts,
    the index and the pixel count, a float64 squared error)."""
    return images * stages * (classes * classes + 3) * 8


def scored_stages(conditions: int, occluder_classes: bool) -> int:
    """The stages the evaluator scores (facseg.scoring.evaluator): test, its crop and the ceiling; six per occluded
    condition; and the naturally occluded subsets where the class set has occluder classes."""
    return 3 + 6 * conditions + (2 if occluder_classes else 0)


def check_test_fits(datamodule, processes: int = 1) -> int:
    """Raise when the test pass, in each of `processes` on this machine (DDP), would need more memory than is still
    available, or more temporary disk than is free (a FaceDataModule whose data is prepared); return one process's
    memory estimate in bytes."""
    files = datamodule.layout.files("test")
    if datamodule.eval_resolution == "original":
        photo = largest_photo(files)
    else:
        photo = (datamodule.settings.image_size,) * 2
    labels = datamodule.labels
    stages = scored_stages(len(datamodule.conditions), bool(labels.occluders))
    need, spool = batch_bytes(photo, datamodule.batch_size), spooled_bytes(len(files.images), stages, len(labels))
    free, temporary = available_bytes(), tempfile.gettempdir()
    log.info(
        "Test pass: about %.1f GB beyond the %.1f GB resident now (%d photos of up to %dx%d px, batch %d), %.2f GB of "
        "per-image counts (%d stages) in %s",
        need / 1e9,
        resident_bytes() / 1e9,
        len(files.images),
        photo[1],
        photo[0],
        datamodule.batch_size,
        spool / 1e9,
        stages,
        temporary,
    )
    what = (
        f"{len(files.images)} test photos of up to {photo[1]}x{photo[0]} px in batches of {datamodule.batch_size}, "
        f"{len(datamodule.conditions)} occluded conditions ({stages} scored stages)"
    )
    if free is not None and need * processes > free:
        each = f" in each of {processes} processes" if processes > 1 else ""
        raise TestWillNotFit(
            f"the test pass would need about {need / 1e9:.1f} GB more{each} than is held now, and {free / 1e9:.1f} "
            f"GB is available: {what}. Lower data.batch_size, score fewer conditions (data.occluded_test), or train "
            "with test=false and score the checkpoint later with `facseg evaluate` on a larger machine"
        )
    disk = shutil.disk_usage(temporary).free
    if spool * processes > disk:
        raise TestWillNotFit(
            f"the test pass would spool about {spool * processes / 1e9:.1f} GB of per-image counts to {temporary}, "
            f"which has {disk / 1e9:.1f} GB free: {what}. Point TMPDIR at a larger disk"
        )
    return need


class TestMemoryCheck(pl.Callback):
    """check_test_fits as training starts: after the data is prepared (a generated set exists by then) and before
    the first step. On a GPU the photos are scored there, and the check is left out."""

    __test__ = False  # not a pytest test class

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if isinstance(trainer.accelerator, CPUAccelerator):
            check_test_fits(trainer.datamodule, processes=trainer.num_devices)
