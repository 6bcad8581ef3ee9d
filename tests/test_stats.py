"""Intervals and paired tests (facseg.report.bootstrap): the numbers a comparison's reading rests on."""

import numpy as np
import pytest
import torch

from facseg.models.ensemble import fit_weights
from facseg.report.bootstrap import Bootstrap, Runs, holm, interval, paired
from facseg.scoring.confusion import metrics
from facseg.scoring.metrics import SegmentationMetrics

CLASSES = ["background", "a", "b"]
FOREGROUND = [1, 2]


def per_image(rng, images: int, accuracy: float, pixels: int = 400) -> np.ndarray:
    """N x 3 x 3 confusion matrices of a predictor right on `accuracy` of each image's pixels."""
    out = np.zeros((images, 3, 3))
    for i in range(images):
        truth = rng.integers(0, 3, pixels)
        wrong = rng.random(pixels) > accuracy
        pred = np.where(wrong, (truth + 1) % 3, truth)
        np.add.at(out[i], (truth, pred), 1)
    return out


def runs(*seeds: np.ndarray) -> Runs:
    confusion = np.stack(seeds)
    return Runs(confusion, np.ones(confusion.shape[:2]), confusion.sum((2, 3)))


def test_metrics_agree_with_the_torchmetrics_metric():
    logits, target = torch.randn(4, 3, 16, 16), torch.randint(0, 3, (4, 16, 16))
    metric = SegmentationMetrics(CLASSES, per_image=True)
    metric.update(logits, target, index=torch.arange(4))
    expected, images = metric.compute(), metric.per_image_results()
    ours = metrics(images["confusion"].numpy().sum(0).astype(float), FOREGROUND)
    assert ours["f1_fg"] == pytest.approx(float(expected["f1_fg"]), abs=1e-6)
    assert ours["miou"] == pytest.approx(float(expected["miou"]), abs=1e-6)
    assert ours["f1"][2] == pytest.approx(float(expected["f1/b"]), abs=1e-6)


def test_a_run_without_spread_has_an_interval_of_no_width():
    same = per_image(np.random.default_rng(0), 1, 0.8).repeat(20, 0)  # 20 identical images, 2 identical seeds
    found = interval(Bootstrap(20, replicates=200), runs(same, same), FOREGROUND, CLASSES, "f1_fg")
    assert found.low == pytest.approx(found.mean) and found.high == pytest.approx(found.mean) and found.seeds == 2


def test_the_interval_covers_the_mean_and_narrows_with_more_images():
    rng = np.random.default_rng(1)
    widths = []
    for images in (20, 320):
        data = runs(per_image(rng, images, 0.7), per_image(rng, images, 0.72))
        found = interval(Bootstrap(images, replicates=500), data, FOREGROUND, CLASSES, "f1/a")
        assert found.low < found.mean < found.high
        widths.append(found.high - found.low)
    assert widths[1] < widths[0] / 2  # ~1/sqrt(16) of it


def test_paired_differences_find_a_real_gap_and_no_gap_between_equals():
    rng = np.random.default_rng(2)
    worse, better = per_image(rng, 40, 0.70), per_image(rng, 40, 0.80)
    boot = Bootstrap(40, replicates=500)
    (same,) = paired(boot, runs(worse), runs(worse), FOREGROUND, CLASSES, ["f1_fg"], permutations=500)
    assert same.difference == 0 and same.p == 1.0
    (gap,) = paired(boot, runs(better), runs(worse), FOREGROUND, CLASSES, ["f1_fg"], permutations=500)
    assert gap.difference > 0.05 and gap.low > 0 and gap.p < 0.01


def test_an_interval_does_not_depend_on_what_else_the_report_computed():
    rng = np.random.default_rng(3)
    a, b = runs(per_image(rng, 30, 0.7), per_image(rng, 30, 0.75)), runs(per_image(rng, 30, 0.8))
    alone = interval(Bootstrap(30, replicates=300), a, FOREGROUND, CLASSES, "f1_fg")
    boot = Bootstrap(30, replicates=300)
    paired(boot, b, a, FOREGROUND, CLASSES, ["f1_fg"], permutations=300)
    interval(boot, b, FOREGROUND, CLASSES, "f1/a")
    assert interval(boot, a, FOREGROUND, CLASSES, "f1_fg") == alone
    first = paired(Bootstrap(30, replicates=300), a, b, FOREGROUND, CLASSES, ["f1_fg"], permutations=300)
    assert paired(boot, a, b, FOREGROUND, CLASSES, ["f1_fg"], permutations=300) == first


def test_holm_adjusts_in_step_down_order():
    assert holm([0.01, 0.04, 0.03, float("nan")])[:3] == pytest.approx([0.03, 0.06, 0.06])


def test_fitted_ensemble_weights_favour_the_member_that_predicts_the_held_out_pixels():
    good, poor = torch.full((1000,), 0.9).log(), torch.full((1000,), 0.2).log()
    weights = fit_weights(torch.stack([poor, good]))
    assert weights[1] > 0.95 and sum(weights) == pytest.approx(1)
    assert fit_weights(torch.stack([good, good])) == pytest.approx([0.5, 0.5])
