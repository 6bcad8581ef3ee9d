"""A test pass's memory is bounded by the batch, not by the test split; a run whose test cannot fit says so before it
trains (facseg.scoring.footprint)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facseg.data.formats import SplitFiles
from facseg.data.synthetic import SyntheticSpec, generate
from facseg.runtime.memory import available_bytes, peak_bytes, reset_peak
from facseg.scoring.footprint import TestWillNotFit, batch_bytes, largest_photo, spooled_bytes
from facseg.training.job import train
from tests.helpers import TINY, compose_train, subprocess_env, tiny_data

# One untrained U-Net's test pass with every default condition, in a process of its own; prints its peak resident
# memory. The time and memory of scoring do not depend on the weights.
TEST_PASS = """
import sys, hydra, pytorch_lightning as pl
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
import facseg
from facseg.models.module import FaceSegModule
from facseg.runtime.memory import peak_bytes
from facseg.scoring.evaluator import TestEvaluator
with initialize_config_dir(config_dir=str(facseg.CONFIG_DIR), version_base="1.3"):
    cfg = compose("train", overrides=["model=unet", "data.root=" + sys.argv[1], "data.synthetic=null"])
datamodule = hydra.utils.instantiate(cfg.data)
module = FaceSegModule(model=OmegaConf.to_container(cfg.model, resolve=True), **datamodule.recorded_settings)
trainer = pl.Trainer(logger=False, callbacks=[TestEvaluator()], enable_progress_bar=False, enable_model_summary=False)
trainer.test(module, datamodule=datamodule, verbose=False)
print("PEAK", peak_bytes())
"""


def peak_of_a_test_pass(root: Path) -> int:
    result = subprocess.run(
        [sys.executable, "-c", TEST_PASS, str(root)], env=subprocess_env(), capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return int(result.stdout.split("PEAK")[-1])


@pytest.mark.slow
def test_a_peak_of_a_test_pass_does_not_grow_with_the_test_split(tmp_path):
    """Twice the test photos (512 px, every default condition: 11 loaders) moves the peak by at most 25 %. Before
    the heap was trimmed per batch, the peak grew with every photo (8.2 GB for 48 photos at 512 px, 2.9 GB with
    half of them and four conditions)."""
    peaks = []
    for photos in (8, 16):
        root = tmp_path / f"test{photos}"
        generate(root, SyntheticSpec(train=2, val=2, test=photos, size=512, seed=3))
        peaks.append(peak_of_a_test_pass(root))
    growth = peaks[1] / peaks[0] - 1
    assert growth <= 0.25, f"peak {peaks[0] / 1e9:.2f} GB with 8 test photos, {peaks[1] / 1e9:.2f} GB with 16"


def test_the_largest_photo_is_read_from_the_label_headers(tmp_path):
    generate(tmp_path / "set", SyntheticSpec(train=1, val=1, test=6, size=64, max_size=160, seed=2))
    labels = sorted((tmp_path / "set" / "test" / "labels").glob("*.png"))
    files = SplitFiles(images=labels, labels=labels, landmarks=[None] * len(labels), num_classes=11)
    shapes = [np.asarray(Image.open(p)).shape for p in labels]
    assert largest_photo(files) == (max(s[0] for s in shapes), max(s[1] for s in shapes))
    assert len(set(shapes)) > 1  # sizes vary, so the maxima are of height and width apart


def test_the_memory_estimate_grows_with_the_batch_and_the_disk_estimate_with_the_split():
    assert batch_bytes((512, 512), 16) == 2 * batch_bytes((512, 512), 8) == 16 * 512 * 512 * 260
    assert spooled_bytes(4000, 63, 19) == 2 * spooled_bytes(2000, 63, 19) == 4000 * 63 * (19 * 19 + 3) * 8


def test_a_run_whose_test_cannot_fit_stops_before_training(tmp_path, tiny_root):
    """A batch of test photos larger than the machine's free memory: the run stops with one line that says what
    the test would need and what to change, before its first training step (no checkpoint written)."""
    free = available_bytes()
    assert free is not None  # Linux: /proc/meminfo
    batch = 2 * free // (260 * 96 * 96)  # the tiny set's 96 px photos: twice what the machine has free
    run_dir = tmp_path / "run"
    cfg = compose_train([*TINY, *tiny_data(tiny_root), "logger=csv", f"data.batch_size={batch}"], run_dir)
    reset_peak()
    with pytest.raises(TestWillNotFit, match=r"4 test photos of up to 96x96 px in batches of \d+.*data.batch_size"):
        train(cfg)
    assert not (run_dir / "checkpoints").exists()
    assert peak_bytes() < free  # nothing was allocated for the batch


def test_a_run_checks_its_test_once_its_data_is_generated(tmp_path, caplog):
    """The check runs as training starts, after the synthetic set is generated (before it, the set's test split
    does not exist yet), and logs its estimate."""
    spec = ["data.synthetic.train=8", "data.synthetic.val=4", "data.synthetic.test=4", "data.synthetic.size=96"]
    root = f"data.root={tmp_path / 'fresh'}"
    cfg = compose_train([*TINY, *spec, root, "logger=csv", "data.occluded_test=null"], tmp_path / "run")
    caplog.set_level("INFO", logger="facseg.scoring.footprint")
    train(cfg)
    assert "Test pass: about 0.0 GB beyond" in caplog.text and "4 photos of up to 96x96 px, batch 4)" in caplog.text
