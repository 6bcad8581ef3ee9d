"""The debug presets (conf/debug), each a real run that ends with the best-checkpoint test step and metrics.json."""

import csv
import json

import pytest

from facseg.training.job import train
from tests.helpers import compose_train, tiny_data

SMALL = ["data.image_size=64", "data.batch_size=4", "trainer.enable_progress_bar=false"]


def run_preset(preset, run_dir, tiny_root, *extra):
    best = train(compose_train([f"debug={preset}", *SMALL, *tiny_data(tiny_root), *extra], run_dir))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["val/f1_fg"] == pytest.approx(best) and 0 <= metrics["test/miou"] <= 1
    return metrics


def epochs_logged(run_dir, key):
    with (run_dir / "csv" / "metrics.csv").open() as f:
        return [float(row[key]) for row in csv.DictReader(f) if row.get(key)]


def test_fast_dev_run_ends_with_a_test_of_the_weights_as_they_are(tmp_path, tiny_root):
    metrics = run_preset("fdr", tmp_path, tiny_root)
    assert metrics["best_checkpoint"] is None and not list(tmp_path.rglob("best-*.ckpt"))
    assert (tmp_path / "per_image.npz").is_file()  # one test batch scored, and its files written


@pytest.mark.slow
def test_overfitting_two_batches_fits_them(tmp_path, tiny_root):
    run_preset("overfit", tmp_path, tiny_root)
    train_miou = epochs_logged(tmp_path, "train/miou")
    print(f"\ndebug=overfit: train/miou {train_miou[0]:.3f} after the first epoch, {train_miou[-1]:.3f} after 150")
    assert len(train_miou) == 150 and train_miou[-1] > 0.9


@pytest.mark.slow
def test_limit_runs_a_few_batches_of_each_stage(tmp_path, tiny_root):
    run_preset("limit", tmp_path, tiny_root)
    assert len(epochs_logged(tmp_path, "val/miou")) == 3
    assert list((tmp_path / "checkpoints").glob("best-*.ckpt"))


@pytest.mark.slow
def test_profiler_writes_where_the_time_goes(tmp_path, tiny_root):
    run_preset("profiler", tmp_path, tiny_root)
    fit, test = ((tmp_path / f"{stage}-profile.txt").read_text() for stage in ("fit", "test"))
    assert "run_training_epoch" in fit and "SingleDeviceStrategy.training_step" in fit
    assert "SingleDeviceStrategy.test_step" in test and "TestEvaluator.on_test_batch_end" in test
