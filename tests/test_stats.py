"""Intervals and paired tests (facseg.report.bootstrap): the numbers a comparison's reading rests on."""

import json

import numpy as np
import pytest
import torch
from scipy.special import stdtrit

from facseg.metrics.confusion import metrics
from facseg.metrics.region import SegmentationMetrics
from facseg.models.ensemble import fit_weights
from facseg.report import calibration
from facseg.report.bootstrap import Bootstrap, ClassSet, Runs, holm, interval, paired
from facseg.report.calibration import REGIMES, simulate

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


def classes(images: np.ndarray) -> ClassSet:
    return ClassSet.of(CLASSES, FOREGROUND, runs(images))


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
    found = interval(Bootstrap(20, replicates=200), runs(same, same), classes(same), "f1_fg")
    assert found.low == pytest.approx(found.mean) and found.high == pytest.approx(found.mean) and found.seeds == 2


def test_the_interval_covers_the_mean_and_narrows_with_more_images():
    rng = np.random.default_rng(1)
    widths = []
    for images in (20, 320):
        first = per_image(rng, images, 0.7)
        data = runs(first, first)  # no seed spread: the width is the images' alone
        found = interval(Bootstrap(images, replicates=500), data, classes(first), "f1/a")
        assert found.low < found.mean < found.high
        widths.append(found.high - found.low)
    assert widths[1] < widths[0] / 2  # ~1/sqrt(16) of it


def test_the_seed_component_uses_t_with_seeds_minus_one_degrees_of_freedom():
    """Identical images, seeds that differ: the interval is the t interval of the seeds' values."""
    rng = np.random.default_rng(4)
    seeds = [per_image(rng, 1, accuracy, pixels=4000).repeat(10, 0) for accuracy in (0.6, 0.7, 0.8)]
    data = runs(*seeds)
    found = interval(Bootstrap(10, replicates=200), data, classes(seeds[0]), "f1_fg")
    values = [metrics(s.sum(0), FOREGROUND)["f1_fg"] for s in seeds]
    angles = np.arcsin(np.sqrt(values))  # a fraction's interval is made on the angular scale, then mapped back
    half = stdtrit(2, 0.975) * np.std(angles, ddof=1) / np.sqrt(3)
    assert found.mean == pytest.approx(np.mean(values))
    assert found.high == pytest.approx(np.sin(angles.mean() + half) ** 2, rel=1e-6) and found.df == pytest.approx(2)
    assert found.low == pytest.approx(np.sin(angles.mean() - half) ** 2, rel=1e-6)


def test_a_bounded_metrics_interval_stays_inside_its_range():
    """A rare class a run finds once in a while: F1 near 0, whose interval on the metric's own scale went below 0
    (a record read F1 0.1 [-7.2, 7.4]); on the angular scale it stays in [0, 1] and holds the mean."""
    rng = np.random.default_rng(6)
    found_pixels = [0, 0, 0, 0, 60]  # of class a's pixels, a run finds these on its first image only
    seeds = []
    for found in found_pixels:
        images = per_image(rng, 10, 0.0)
        images[0, 1, 1], images[0, 1, 2] = found, images[0, 1, 2] - found  # taken from its wrong pixels
        seeds.append(images)
    data = runs(*seeds)
    estimate = interval(Bootstrap(10, replicates=200), data, classes(seeds[0]), "f1/a")
    assert 0 <= estimate.low <= estimate.mean <= estimate.high <= 1 and estimate.mean > 0
    raw = np.array([metrics(s.sum(0), FOREGROUND)["f1"][1] for s in seeds])
    assert raw.mean() - stdtrit(4, 0.975) * raw.std(ddof=1) / np.sqrt(5) < 0  # where the metric's scale goes


def test_paired_differences_find_a_real_gap_and_no_gap_between_equals():
    rng = np.random.default_rng(2)
    worse, better = per_image(rng, 40, 0.70), per_image(rng, 40, 0.80)
    boot, fixed = Bootstrap(40, replicates=500), classes(worse)
    (same,) = paired(boot, runs(worse), runs(worse), fixed, ["f1_fg"])
    assert same.mean == 0 and same.p == 1.0 and same.conditional
    (gap,) = paired(boot, runs(better), runs(worse), fixed, ["f1_fg"])
    assert gap.mean > 0.05 and gap.low > 0 and gap.p < 0.01


def test_two_runs_of_one_architecture_are_not_called_different():
    """Seeds vary much more than the images: the runs, not the images, decide (the conditional test said p < 0.001)."""
    rng = np.random.default_rng(5)
    images = per_image(rng, 50, 0.75)
    seed = lambda shift: images + shift * np.eye(3)[None]  # noqa: E731  a run a little better or worse everywhere
    a, b = runs(seed(8), seed(-4), seed(2)), runs(seed(-8), seed(4), seed(-2))
    (d,) = paired(Bootstrap(50, replicates=500), a, b, classes(images), ["f1_fg"])
    assert d.mean > 0 and d.low < 0 < d.high and d.p > 0.05 and not d.conditional


def test_p_below_005_exactly_when_the_interval_leaves_out_zero():
    rng = np.random.default_rng(6)
    boot = Bootstrap(30, replicates=300)
    for gap in (0.0, 0.02, 0.05, 0.1):
        a = runs(*(per_image(rng, 30, 0.7 + gap) for _ in range(3)))
        b = runs(*(per_image(rng, 30, 0.7) for _ in range(3)))
        (d,) = paired(boot, a, b, classes(a.confusion[0]), ["f1_fg"])
        assert (d.p < 0.05) == (d.low > 0 or d.high < 0)


def test_one_class_set_for_every_replicate_and_model():
    """A class the split's truth holds counts in every replicate (1 where a draw lacks it in truth and prediction,
    0 where a model predicts it there); one the truth lacks counts for nobody, even a model that predicts it."""
    rare = np.zeros((4, 3, 3))
    rare[:, 0, 0], rare[:, 1, 1] = 90, 10
    rare[0, 2, 2] = 5  # class b in the first image only
    table = metrics(rare[1:].sum(0), FOREGROUND, present=[0, 1, 2])
    assert table["f1"][2] == 1.0 and table["f1_fg"] == 1.0
    guessed = rare[1:].copy()
    guessed[:, 0, 2] = 1  # predicted where the draw's truth has none
    assert metrics(guessed.sum(0), FOREGROUND, present=[0, 1, 2])["f1"][2] == 0.0
    absent = rare[1:].copy()
    absent[:, 0, 2] = 1
    assert np.isnan(metrics(absent.sum(0), FOREGROUND)["f1"][2])  # the split's own truth lacks b: left out
    assert metrics(absent.sum(0), FOREGROUND)["f1_fg"] == 1.0


def test_rmse_is_the_root_of_the_brier_score_summed_over_classes():
    confusion = np.zeros((2, 3, 3))
    confusion[:, 0, 0] = 10
    table = metrics(confusion.sum(0), FOREGROUND, np.array(5.0), np.array(20.0))
    assert table["rmse"] == pytest.approx(0.5)
    wider = np.zeros((2, 4, 4))
    wider[:, 0, 0] = 10  # a fourth class nobody predicts or holds: the same squared error, the same RMSE
    assert metrics(wider.sum(0), FOREGROUND, np.array(5.0), np.array(20.0))["rmse"] == pytest.approx(0.5)


def test_holm_adjusts_in_step_down_order():
    assert holm([0.01, 0.04, 0.03, float("nan")])[:3] == pytest.approx([0.03, 0.06, 0.06])


def test_fitted_ensemble_weights_favour_the_member_that_predicts_the_held_out_pixels():
    good, poor = torch.full((1000,), 0.9).log(), torch.full((1000,), 0.2).log()
    weights = fit_weights(torch.stack([poor, good]))
    assert weights[1] > 0.95 and sum(weights) == pytest.approx(1)
    assert fit_weights(torch.stack([good, good])) == pytest.approx([0.5, 0.5])


@pytest.mark.parametrize("regime", REGIMES, ids=lambda r: r.name)
def test_the_paired_test_and_intervals_hold_their_rates_in_simulated_null_studies(regime):
    """`make calibrate-stats` at a small size: 5 + 5 runs of one architecture are called different at about the
    nominal 5 %, and 95 % intervals hold the truth about 95 % of the time (bounds leave room for 200 studies)."""
    rates = simulate(regime, studies=200, replicates=200)
    assert set(rates["coverage"]) == set(calibration.COVERED)  # mean F1, a rare class and the kinds of error
    assert max(rates["false_positive"].values()) <= 0.1, rates
    assert min(rates["coverage"].values()) >= 0.89 and rates["coverage_difference"] >= 0.89, rates


def write_study(folder, regime, configurations=("a", "b"), seeds=6, images=100):
    """A study folder as facseg.study leaves it (runs/NAME-sK/per_image.npz, metrics.json), from the model."""
    rng = np.random.default_rng(0)
    truth = calibration._truth(rng, images)
    image_offsets = calibration._offsets(rng, images, regime.image_sd)
    labels = {"names": list(calibration.CLASSES), "mean_f1": list(calibration.CLASSES[1:])}
    for name in configurations:
        wrong = calibration._errors(rng, regime, truth, image_offsets, calibration._offsets(rng, seeds, regime.seed_sd))
        for seed, run in enumerate(calibration._matrices(truth[None], wrong), 1):
            out = folder / "runs" / f"{name}-s{seed}"
            out.mkdir(parents=True)
            np.savez(
                out / "per_image.npz",
                **{"test/confusion": run, "test/squared_error": np.zeros(images), "test/pixels": run.sum((1, 2))},
            )
            (out / "metrics.json").write_text(json.dumps({"labels": labels}))


def test_a_regime_fitted_to_a_studys_runs_matches_their_seed_share_and_spread(tmp_path):
    balanced = REGIMES[1]
    write_study(tmp_path, balanced)
    share, run_sd, names = calibration.measured_spread(tmp_path)
    assert names == ["a (6 runs)", "b (6 runs)"]
    model_share, model_sd = calibration.seed_share(balanced, 1)
    assert share == pytest.approx(model_share, abs=0.2) and run_sd == pytest.approx(model_sd, rel=0.5)
    regime, note = calibration.fitted_regime(tmp_path, images=100)
    fitted_share, fitted_sd = calibration.seed_share(regime, 1, trials=100)
    assert fitted_share == pytest.approx(share, abs=0.1) and fitted_sd == pytest.approx(run_sd, rel=0.2), note
    with pytest.raises(SystemExit, match="no configuration there has two runs"):
        calibration.measured_spread(tmp_path / "runs" / "a-s1")
